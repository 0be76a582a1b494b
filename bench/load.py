"""Throughput of the real webhook against the ceiling of its stack, under wrk on loopback.

Starts the Procfile's ``web:`` command twice on two loopback ports: once as written (the bot,
``mbcsms:create_app()``, with signature check, understanding, SQLite state and TwiML all on) and
once with the app swapped for ``bench/bare_app.py`` (Flask answering one static TwiML), so the
gunicorn settings (workers, worker class, timeouts) are identical. wrk then drives each in
alternating rounds with signed, varied Twilio requests, and the ratio ours/bare is printed,
over all rounds and round by round (median and range): on a shared VM the machine's speed moves
by a fifth between rounds, and the same commit measured against itself gave 0.93-1.03, so a
change smaller than that needs many rounds (or ``bench/instructions.py``) to be seen.

    apt-get install -y wrk          # Debian/Ubuntu; brew install wrk on macOS
    .venv/bin/python bench/load.py  # --rounds 3 --duration 10 --connections 8 --threads 1

Every request is signed for the exact URL wrk hits, and every request body in a round has its own
MessageSid and comes from one of many senders (each sends at most RATE_LIMIT/2 messages a
round, rounds use distinct senders), so the bot does its full work on every request: no
rate-limit short cut. A round that outruns its pre-signed bodies starts them again; those repeats
are answered from the dedupe table and are counted from the bot's own log lines.

``--floor STEPS`` (repeatable) adds ``bench/floor_app.py`` to the rounds, with only the named
steps of the required work (signature, understand, store, log) done in the plainest way: what
the bot could reach at best if its own code cost nothing beyond those steps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from twilio.request_validator import RequestValidator

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROCFILE = ROOT / "Procfile"
LUA_SCRIPT = BENCH / "wrk_messages.lua"
# The app gunicorn loads, the command's last argument: 'mbcsms:create_app()',
# 'mbcsms.cli:wsgi_app()'.
OUR_APP = re.compile(r"""(['"]?)mbcsms[\w.]*:\w+(?:\(\))?\1\s*$""")
# What the Procfile says (issue #perf), used only until the Procfile lands in the repo.
FALLBACK_WEB = "gunicorn --bind 0.0.0.0:$PORT --workers ${WEB_CONCURRENCY:-2} 'mbcsms:create_app()'"

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
SECRET = "bench-secret-0123456789abcdef0123456789"
# Each sender sends at most this many messages a round: well inside the default rate limit (20
# replies in 600 s), so every request takes the full path. Rounds use distinct senders.
MESSAGES_PER_SENDER = 8

# Used when the shared evaluation set is not next to the repo; English, Spanish, typos, mixes.
BUILTIN_MESSAGES = (
    "hello", "hi", "menu", "1", "2", "3", "what is her2", "what is HER2+?", "side effects of chemo",
    "i am so tired all the time", "can i get a second opinion", "clinical trials near me",
    "how do i pay for treatment", "i feel alone", "tengo miedo", "que es her2",
    "efectos secundarios de la quimio", "necesito ayuda para pagar", "ensayos clinicos",
    "metastatic breast cancer", "mbc", "stage 4 meaning", "bone mets pain", "scanxiety",
    "my oncologist", "trastuzumab", "what does triple negative mean", "sidde efects",
    "clincal trails", "finacial help", "ESPAÑOL", "English please", "thank you",
    "¿Qué es el cáncer de mama metastásico?", "no entiendo", "help", "who are you",
)


@dataclass
class Round:
    target: str
    round: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def web_command() -> tuple[str, str]:
    """The Procfile's web command (and where it came from), waiting briefly if it is not there."""
    for _ in range(2):
        if PROCFILE.is_file():
            for line in PROCFILE.read_text(encoding="utf-8").splitlines():
                if line.startswith("web:"):
                    return line[len("web:"):].strip(), str(PROCFILE)
        time.sleep(1)
    return FALLBACK_WEB, "fallback (no Procfile web: line)"


def swapped_command(command: str, app: str) -> str:
    """The web command with its last argument, the mbcsms app, replaced by ``app``."""
    if not OUR_APP.search(command):
        sys.exit(f"cannot find the mbcsms app (last argument) in the web command to swap: {command}")
    return OUR_APP.sub(app, command)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_messages() -> list[str]:
    texts: list[str] = []
    labelled = sorted((ROOT / "tests" / "data").glob("*_messages.jsonl"))
    for path in [ROOT.parent / "shared" / "eval" / "dev.jsonl", *labelled]:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    text = json.loads(line).get("text")
                    if isinstance(text, str):
                        texts.append(text)
    return texts + list(BUILTIN_MESSAGES)


def write_bodies(path: Path, url: str, messages: list[str], count: int, round_no: int) -> None:
    """One pre-signed request a line: ``signature<TAB>form body``, for the exact URL wrk hits."""
    validator = RequestValidator(AUTH_TOKEN)
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            form = {
                "ToCountry": "US",
                "To": "+15550009999",
                # 555-01xx numbers are fictional; round and sender in the digits keep them distinct.
                "From": f"+1555{round_no:02d}{i // MESSAGES_PER_SENDER:06d}",
                "Body": messages[i % len(messages)],
                "MessageSid": f"SM{round_no:04d}{i:028d}",
                "AccountSid": "AC" + "0" * 32,
                "NumMedia": "0",
                "ApiVersion": "2010-04-01",
            }
            signature = validator.compute_signature(url, form)
            out.write(f"{signature}\t{urllib.parse.urlencode(form)}\n")


LUA = r"""-- Generated by bench/load.py; regenerated on every run.
-- Cycles through pre-signed Twilio webhook requests read from the file named by the first
-- script argument (one "signature<TAB>urlencoded form" a line). Thread k of n sends lines
-- k, k+n, k+2n, ... so no two threads repeat each other's MessageSid.
local created = 0

function setup(thread)
  thread:set("thread_id", created)
  created = created + 1
end

local prepared = {}
local count = 0
local index = 0

function init(args)
  local threads = tonumber(args[2])
  local line_no = 0
  for line in io.lines(args[1]) do
    if line_no % threads == thread_id then
      local tab = line:find("\t", 1, true)
      count = count + 1
      prepared[count] = wrk.format("POST", wrk.path, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = line:sub(1, tab - 1),
      }, line:sub(tab + 1))
    end
    line_no = line_no + 1
  end
end

function request()
  index = index % count + 1
  return prepared[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode}; see {log}:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{port}/healthz"), timeout=1
            ).read()
            return
        except urllib.error.HTTPError:
            return  # the bare app answers 405 to GET: it is up
        except OSError:
            time.sleep(0.2)
    sys.exit(f"server on port {port} did not come up; see {log}")


def start(command: str, port: int, env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    # Its own session, so stopping it stops gunicorn's workers too and nothing else.
    process = subprocess.Popen(
        ["sh", "-c", "exec " + command], env={**env, "PORT": str(port)},
        stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd,
    )
    wait_ready(port, process, log)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def sanity_check(port: int, checks_signature: bool) -> None:
    """One signed request must get TwiML with a message; where signatures are checked, an
    unsigned one must get 403."""
    url = f"http://127.0.0.1:{port}/sms"
    form = {"From": "+15559990000", "Body": "what is her2", "MessageSid": "SM" + "9" * 32}
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers={
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, form)})
    with urllib.request.urlopen(request, timeout=5) as response:
        root = ET.fromstring(response.read())
    if root.tag != "Response" or not [m.text for m in root.iter("Message") if m.text]:
        sys.exit(f"port {port}: the signed request did not get a TwiML message")
    if checks_signature:
        unsigned = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode())
        try:
            urllib.request.urlopen(unsigned, timeout=5)
            sys.exit("the bot answered an unsigned request: the signature check is off")
        except urllib.error.HTTPError as error:
            if error.code != 403:
                sys.exit(f"unsigned request got {error.code}, expected 403")


def run_wrk(port: int, bodies: Path, args: argparse.Namespace) -> dict[str, int]:
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "5s",
        "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}/sms", "--", str(bodies), str(args.threads),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    sys.exit(f"no result from wrk:\n{output}")


def as_round(target: str, round_no: int, raw: dict[str, int]) -> Round:
    seconds = raw["duration_us"] / 1e6
    return Round(
        target, round_no, raw["requests"], round(seconds, 2), round(raw["requests"] / seconds, 1),
        raw["p50_us"] / 1000, raw["p99_us"] / 1000, raw["status"],
        raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    )


def summary(rounds: list[Round]) -> dict[str, float]:
    requests = sum(r.requests for r in rounds)
    return {
        "rps": round(requests / sum(r.seconds for r in rounds), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in rounds), 2),
        "p99_ms": round(max(r.p99_ms for r in rounds), 2),  # the worst round: conservative
        "non_2xx": sum(r.non_2xx for r in rounds),
        "socket_errors": sum(r.socket_errors for r in rounds),
        "requests": requests,
    }


def paired_ratios(results: list[Round], ours: str, other: str) -> list[float]:
    """``ours`` / ``other`` in each round: the two ran back to back, so a round's ratio shares
    the machine's speed of the moment, which on a shared VM moves by a fifth between rounds."""
    rps = {(r.target, r.round): r.rps for r in results}
    rounds = sorted({r.round for r in results})
    return [rps[(ours, n)] / rps[(other, n)] for n in rounds if rps.get((other, n))]


def log_counts(log: Path) -> Counter[str]:
    """What the bot logged: events, topics, and replays of a MessageSid already answered."""
    counts: Counter[str] = Counter()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        counts["event:" + str(entry.get("event"))] += 1
        if entry.get("event") == "reply":
            counts["topic:" + str(entry.get("topic"))] += 1
            if entry.get("retry"):
                counts["replayed"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds a round")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--bodies", type=int, default=40_000, help="pre-signed requests a round")
    parser.add_argument("--workers", type=int, help="sets WEB_CONCURRENCY (default: the Procfile's)")
    parser.add_argument("--floor", action="append", default=[], metavar="STEPS",
                        help="also run bench/floor_app.py with these steps, e.g. signature,understand,store,log")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also run another checkout's Procfile web command, with its own .venv "
                             "(e.g. a git worktree of an earlier commit): ours/baseline in the same run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk")

    command, origin = web_command()
    venv_bin = str(Path(sys.executable).parent)
    work = Path(tempfile.mkdtemp(prefix="mbcsms-load-"))
    env = {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": str(BENCH) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "MBCSMS_SECRET": SECRET,
        "MBCSMS_DB": str(work / "state.db"),
        "DATABASE_URL": "",
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    LUA_SCRIPT.write_text(LUA, encoding="utf-8")
    messages = load_messages()
    # Each target: the command gunicorn runs and the environment it adds.
    targets: dict[str, tuple[str, dict[str, str]]] = {
        "ours": (command, {}), "bare": (swapped_command(command, "bare_app:app"), {}),
    }
    where: dict[str, Path] = {}
    if args.baseline:
        baseline = args.baseline.resolve()
        old_command = next(line[len("web:"):].strip() for line in (baseline / "Procfile").read_text().splitlines()
                           if line.startswith("web:"))
        targets["baseline"] = (old_command, {
            "PATH": str(baseline / ".venv" / "bin") + os.pathsep + os.environ.get("PATH", ""),
            "MBCSMS_DB": str(work / "baseline.db"),
        })
        where["baseline"] = baseline
    for steps in args.floor:
        targets[f"floor:{steps}"] = (swapped_command(command, "floor_app:app"), {"FLOOR_STEPS": steps})
    ports = {name: free_port() for name in targets}
    logs = {name: work / f"{name.replace(':', '-')}.log" for name in targets}
    print(f"web command ({origin}): {command}")
    print(f"{len(messages)} distinct messages, {args.bodies} signed bodies a round, "
          f"{args.bodies // MESSAGES_PER_SENDER} senders a round; state in {work}")

    processes = {}
    try:
        for name, (target_command, extra_env) in targets.items():
            processes[name] = start(target_command, ports[name], {**env, **extra_env}, logs[name], where.get(name))
            checks_signature = name in ("ours", "baseline") or "signature" in extra_env.get("FLOOR_STEPS", "")
            sanity_check(ports[name], checks_signature=checks_signature)
        results: list[Round] = []
        for round_no in range(1, args.rounds + 1):
            # Signed for the URL each server sees: the one wrk hits (the bare app ignores it).
            bodies = {name: work / f"bodies-{round_no}-{name.replace(':', '-')}.txt" for name in targets}
            for name, path in bodies.items():
                if name == "bare":
                    continue
                write_bodies(path, f"http://127.0.0.1:{ports[name]}/sms", messages, args.bodies, round_no)
            bodies["bare"] = bodies["ours"]
            # Rotate who goes first, so no one always gets the warmer machine.
            names = list(targets)
            shift = (round_no - 1) % len(names)
            order = names[shift:] + names[:shift]
            for target in order:
                result = as_round(target, round_no, run_wrk(ports[target], bodies[target], args))
                results.append(result)
                print(f"  round {round_no} {target:5}: {result.rps:8.1f} req/s  p50 {result.p50_ms:6.2f} ms"
                      f"  p99 {result.p99_ms:6.2f} ms  non-2xx {result.non_2xx}  socket errors {result.socket_errors}")
    finally:
        for process in processes.values():
            stop(process)

    totals = {name: summary([r for r in results if r.target == name]) for name in targets}
    ratio = totals["ours"]["rps"] / totals["bare"]["rps"]
    counts = log_counts(logs["ours"])
    print()
    width = max(len(name) for name in targets)
    print(f"{'':{width}} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8} {'/bare':>6}")
    for name, t in totals.items():
        print(f"{name:{width}} {t['rps']:9.1f} {t['p50_ms']:8.2f} {t['p99_ms']:8.2f} {t['non_2xx']:8d}"
              f" {t['socket_errors']:8d} {t['rps'] / totals['bare']['rps']:6.2f}")
    print(f"ratio ours/bare: {ratio:.2f} (target >= 0.80)")
    if "baseline" in totals:
        print(f"ratio ours/baseline: {totals['ours']['rps'] / totals['baseline']['rps']:.2f}")
    paired = {other: paired_ratios(results, "ours", other) for other in ("bare", "baseline") if other in totals}
    for other, each in paired.items():
        print(f"  ours/{other} round by round: median {statistics.median(each):.2f}, "
              f"{min(each):.2f}-{max(each):.2f} over {len(each)} rounds")
    print(f"bot log: {counts['event:reply']} replies, {counts['replayed']} replayed from the dedupe table, "
          f"{counts['event:signature_rejected']} signatures rejected; topics: "
          + ", ".join(f"{k[6:]} {v}" for k, v in counts.most_common() if k.startswith("topic:")))
    if args.json:
        args.json.write_text(json.dumps({
            "command": command, "origin": origin,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "rounds": [asdict(r) for r in results], "totals": totals, "ratio": round(ratio, 3),
            "paired": paired,
            "log": dict(counts),
        }, indent=2), encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
