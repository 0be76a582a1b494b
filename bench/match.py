"""Understanding stays flat as the catalog grows; one worker's memory; start-up time.

    .venv/bin/python bench/match.py                 # all three
    .venv/bin/python bench/match.py --only match    # or model, memory, startup

match: time of Understander.understand per message (the real messages: ../shared/eval/dev.jsonl,
tests/data/*.jsonl and bench/load.py's built-ins) with the real catalog and with catalogs made 10x
and 100x larger in memory, by adding generated topics whose keywords are random pseudo-words
(the repo's data files are not touched). Target: at most 1.3x slower at 100x.

memory: RSS of one process that runs the app (create_app, signed requests through the Flask test
client, a real SQLite file) after 10,000 messages from 2,000 senders.

startup: create_app() wall time in a fresh process, and the wall time of `mbcsms reply hello`.

model: the learned classifiers (mbcsms.understanding.model, both models on one message) per
message, alone and after Understander.understand (the two together), for the real messages up to
320 characters: median and p99 of each message's best of the passes; and a 4,096-character
message. Target: the model well under 0.3 ms median; the two together under 0.5 ms median, 2 ms
p99.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import AUTH_TOKEN, SECRET, load_messages  # noqa: E402

from mbcsms.catalog import Catalog, Topic, TopicKind  # noqa: E402
from mbcsms.understanding import Understander  # noqa: E402
from mbcsms.understanding.model import Model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"


def pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 5)))


def tables(understander: Understander) -> list[dict[tuple[str, ...], object]]:
    """Every phrase table: each language's topics and crisis words, and the commands."""
    return [*understander.phrases.values(), *understander.crisis.values(), understander.control]  # type: ignore[list-item]


def phrase_count(understander: Understander) -> int:
    return sum(len(table) for table in tables(understander))


def grown(catalog: Catalog, factor: int, seed: int = 7) -> Catalog:
    """The catalog with (factor - 1) times as many keyword phrases and keyword words again, in
    generated topics of 30 keywords each, as the real catalog has."""
    if factor == 1:
        return catalog
    real = Understander(catalog)
    real_phrases = phrase_count(real)
    real_words = {word for table in tables(real) for phrase in table for word in phrase}
    rng = random.Random(seed)
    pool = sorted({pseudo_word(rng) for _ in range(len(real_words) * (factor - 1) * 11 // 10)} - real.vocabulary.keys())
    phrases = [
        " ".join(rng.choice(pool) for _ in range(rng.choice((1, 1, 2, 2, 3))))
        for _ in range(real_phrases * (factor - 1))
    ]
    extra = tuple(
        Topic(id=f"generated_{i}", kind=TopicKind.CONTENT, answer=f"Generated topic {i}.", source=(), budget=4)
        for i, start in enumerate(range(0, len(phrases), 30))
    )
    lists = {lang: dict(words) for lang, words in catalog.keyword_lists.items()}
    for i, start in enumerate(range(0, len(phrases), 30)):
        lists["en"][f"generated_{i}"] = tuple(phrases[start : start + 30])
    source = dataclasses.replace(catalog.source, topics=catalog.source.topics + extra)
    return Catalog(source, catalog.translations, catalog.locales, lists)


def one_pass(understander: Understander, messages: list[str]) -> float:
    """CPU microseconds a message for one pass over them all (CPU time: other processes on the
    machine stretch the wall clock, not this)."""
    started = time.process_time()
    for text in messages:
        understander.understand(text)
    return (time.process_time() - started) / len(messages) * 1e6


def bench_match(repeats: int) -> dict[str, object]:
    catalog = Catalog.load()
    messages = load_messages()
    understanders: dict[int, Understander] = {}
    builds: dict[int, float] = {}
    for factor in (1, 10, 100):
        started = time.perf_counter()
        understanders[factor] = Understander(grown(catalog, factor))
        builds[factor] = time.perf_counter() - started
    # Passes take turns, so a busy moment on the machine hits every size alike; keep the best.
    passes: dict[int, list[float]] = {factor: [] for factor in understanders}
    for _ in range(repeats):
        for factor, understander in understanders.items():
            passes[factor].append(one_pass(understander, messages))
    results: dict[str, object] = {"messages": len(messages), "passes": repeats}
    base = min(passes[1])
    for factor, understander in understanders.items():
        per_message = min(passes[factor])
        phrases = phrase_count(understander)
        results[f"{factor}x"] = {
            "phrases": phrases, "vocabulary": len(understander.vocabulary),
            "build_s": round(builds[factor], 2), "us_per_message": round(per_message, 1),
            "median_us_per_message": round(statistics.median(passes[factor]), 1),
            "vs_1x": round(per_message / base, 2),
        }
        print(f"  {factor:>3}x catalog: {phrases:>6} phrases, {len(understander.vocabulary):>6} words, "
              f"built in {builds[factor]:5.2f} s; understand {per_message:6.1f} us/message "
              f"({per_message / base:.2f}x; median of passes {statistics.median(passes[factor]):.1f})")
    return results


def per_message_us(work, messages: list[str], repeats: int) -> list[float]:
    """Each message's best CPU time of ``repeats`` passes, in microseconds."""
    best = [float("inf")] * len(messages)
    for _ in range(repeats):
        for i, text in enumerate(messages):
            started = time.process_time_ns()
            work(text)
            best[i] = min(best[i], (time.process_time_ns() - started) / 1000)
    return best


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_model(repeats: int) -> dict[str, object]:
    model = Model.load()
    understander = Understander(Catalog.load())
    messages = [text for text in load_messages() if len(text) <= 320]
    longest = (" ".join(messages) * 2)[:4096]

    def together(text: str) -> None:
        understander.understand(text)
        model.score(text)

    results: dict[str, object] = {"messages": len(messages), "passes": repeats}
    for name, work in (("model", model.score), ("understand", understander.understand), ("both", together)):
        times = per_message_us(work, messages, repeats)
        long_times = per_message_us(work, [longest] * 5, max(3, repeats // 4))
        results[name] = {"median_us": round(statistics.median(times), 1), "p99_us": round(percentile(times, 0.99), 1),
                         "max_us": round(max(times), 1), "4096_chars_us": round(statistics.median(long_times), 1)}
        print(f"  {name:>10}: median {statistics.median(times):6.1f} us, p99 {percentile(times, 0.99):7.1f} us, "
              f"max {max(times):7.1f} us (messages up to 320 characters); 4,096 characters "
              f"{statistics.median(long_times):7.1f} us")
    return results


MEMORY_SCRIPT = textwrap.dedent("""
    import io, json, sys, tempfile, urllib.parse
    from twilio.request_validator import RequestValidator
    from mbcsms import create_app

    def rss_kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    token, secret, messages, count = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
    work = tempfile.mkdtemp()
    sys.stdout = open(work + "/log.jsonl", "w")  # the bot's log lines, as gunicorn would write them
    before_app = rss_kib("VmRSS")
    app = create_app({"TWILIO_AUTH_TOKEN": token, "MBCSMS_SECRET": secret, "DATABASE_URL": "",
                      "MBCSMS_DB": work + "/state.db"})
    client = app.test_client()
    after_app = rss_kib("VmRSS")
    validator = RequestValidator(token)
    url = "http://localhost/sms"
    for i in range(count):
        form = {"From": f"+1555{i % 2000:07d}", "Body": messages[i % len(messages)],
                "MessageSid": f"SM{i:032d}"}
        response = client.post("/sms", data=form, headers={
            "X-Twilio-Signature": validator.compute_signature(url, form)})
        assert response.status_code == 200, response.status_code
        if i == 999:
            after_1000 = rss_kib("VmRSS")
    sys.stdout = sys.__stdout__
    print(json.dumps({"before_app_mib": before_app / 1024, "after_create_app_mib": after_app / 1024,
                      "after_1000_mib": after_1000 / 1024, "after_all_mib": rss_kib("VmRSS") / 1024,
                      "peak_mib": rss_kib("VmHWM") / 1024}))
""")


def bench_memory(count: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, AUTH_TOKEN, SECRET, json.dumps(load_messages()), str(count)],
        capture_output=True, text=True, check=True,
    ).stdout
    result = {k: round(v, 1) for k, v in json.loads(output.strip().splitlines()[-1]).items()}
    print(f"  RSS: {result['after_create_app_mib']} MiB after create_app, {result['after_1000_mib']} MiB after "
          f"1,000 messages, {result['after_all_mib']} MiB after {count:,} (peak {result['peak_mib']} MiB)")
    return result


STARTUP_SCRIPT = textwrap.dedent("""
    import sys, tempfile, time
    started = time.perf_counter()
    from mbcsms import create_app
    imported = time.perf_counter()
    sys.stdout = open(tempfile.mkdtemp() + "/log", "w")
    create_app({"TWILIO_AUTH_TOKEN": sys.argv[1], "MBCSMS_SECRET": sys.argv[2], "DATABASE_URL": "",
                "MBCSMS_DB": tempfile.mkdtemp() + "/state.db"})
    done = time.perf_counter()
    sys.stdout = sys.__stdout__
    print(imported - started, done - imported)
""")


def bench_startup(repeats: int) -> dict[str, float]:
    imports, creates, replies = [], [], []
    mbcsms = Path(sys.executable).parent / "mbcsms"
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, AUTH_TOKEN, SECRET],
                             capture_output=True, text=True, check=True).stdout.split()
        imports.append(float(out[0]))
        creates.append(float(out[1]))
        started = time.perf_counter()
        subprocess.run([str(mbcsms), "reply", "hello"], capture_output=True, check=True)
        replies.append(time.perf_counter() - started)
    result = {
        "import_s": round(statistics.median(imports), 3),
        "create_app_s": round(statistics.median(creates), 3),
        "mbcsms_reply_hello_s": round(statistics.median(replies), 3),
    }
    print(f"  import mbcsms {result['import_s']} s, create_app() {result['create_app_s']} s, "
          f"`mbcsms reply hello` {result['mbcsms_reply_hello_s']} s (medians of {repeats})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("match", "model", "memory", "startup"))
    parser.add_argument("--repeats", type=int, default=20, help="timing passes (startup: runs)")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, object] = {}
    if args.only in (None, "match"):
        print("match: understanding per message as the catalog grows")
        results["match"] = bench_match(args.repeats)
    if args.only in (None, "model"):
        print("model: the learned classifiers per message")
        results["model"] = bench_model(args.repeats)
    if args.only in (None, "memory"):
        print("memory: one worker")
        results["memory"] = bench_memory(args.messages)
    if args.only in (None, "startup"):
        print("startup")
        results["startup"] = bench_startup(args.repeats)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
