"""Instructions a request costs, counted by valgrind's cachegrind: the same figure on a busy
machine as on an idle one, where timings on a shared VM vary by a fifth from run to run.

    apt-get install -y valgrind
    .venv/bin/python bench/instructions.py                       # this checkout
    .venv/bin/python bench/instructions.py --baseline /work/wt/base  # and another, with its venv
    .venv/bin/python bench/instructions.py --ll 1048576   # misses of a 1 MiB last-level cache

Each checkout's app is called in-process as gunicorn calls it, with the same requests for both
(this directory's ``profile_request.environs``: signed, varied requests with the fields
``load.py`` sends, a MessageSid each, a real SQLite file), once for ``--few`` and once for
``--many`` requests after the same warm-up; the difference, divided by the difference in
requests, is what one request costs: start-up and warm-up cancel out. Printed: instructions
and first-level data cache misses a request. Gunicorn's own work (accept, parse, write, access
log) is not in it; on the 2-vCPU VM of bench/README.md it is worth about 750k instructions a
request, so that ours/baseline under ``bench/load.py`` came out close to
(baseline + 750k) / (ours + 750k).

Run by hand, like the other benchmarks: a pair of runs takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Run inside each checkout (its src/ first on the path, and this bench/ for the requests: both
# checkouts get the same ones), under valgrind.
_REQUESTS = """
import collections, os, sys, tempfile
sys.path[:0] = [sys.argv[4], "src"]
import profile_request as pr
from mbcsms import create_app
work = tempfile.mkdtemp()
sys.stdout = open(os.devnull, "w")
app = create_app({"TWILIO_AUTH_TOKEN": pr.AUTH_TOKEN, "MBCSMS_SECRET": pr.SECRET, "DATABASE_URL": "",
                  "MBCSMS_DB": os.path.join(work, "s.db"), "MBCSMS_LOG_LEVEL": "INFO"})
warm, count = int(sys.argv[1]), int(sys.argv[2])
batch = pr.environs(warm + int(sys.argv[3]))
pr.call_all(app, batch[:warm])
collections.deque(map(lambda environ: pr.call_all(app, [environ]), batch[warm:warm + count]), maxlen=0)
"""


def counted(checkout: Path, warm: int, count: int, most: int, last_level: int | None = None) -> tuple[int, int]:
    """(instructions, D1 misses) of one whole run; with ``last_level`` (bytes), misses of a
    last-level cache that size instead of D1's."""
    python = checkout / ".venv" / "bin" / "python"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(_REQUESTS)
    try:
        result = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--cachegrind-out-file=/dev/null",
             *([f"--LL={last_level},16,64"] if last_level else []),
             str(python), script.name, str(warm), str(count), str(most), str(HERE)],
            cwd=checkout, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, check=False,
        )
    finally:
        os.unlink(script.name)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    misses = re.search(r"LL misses:\s+([\d,]+)" if last_level else r"D1\s+misses:\s+([\d,]+)", result.stderr)
    if result.returncode != 0 or refs is None or misses is None:
        raise SystemExit(f"{checkout}: valgrind failed:\n{result.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(misses.group(1).replace(",", ""))


def per_request(checkout: Path, warm: int, few: int, many: int, last_level: int | None = None) -> tuple[float, float]:
    with ThreadPoolExecutor(2) as pool:  # the two runs side by side: one per core
        low, high = pool.map(lambda count: counted(checkout, warm, count, many, last_level), (few, many))
    requests = many - few
    return (high[0] - low[0]) / requests, (high[1] - low[1]) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout with its own .venv")
    # bench/load.py sends its distinct messages (about 1,400) over and over: counted after each
    # was seen once, as in its rounds (a message's first sight fills the bot's word caches).
    parser.add_argument("--warm", type=int, default=1500, help="requests before counting")
    parser.add_argument("--few", type=int, default=50)
    parser.add_argument("--many", type=int, default=550)
    # Under load.py a worker keeps only part of its core's L2 between requests (wrk and the
    # kernel run there too): misses of a small last-level cache count what a request touches.
    parser.add_argument("--ll", type=int, metavar="BYTES",
                        help="count misses of a last-level cache of this size (e.g. 1048576), not D1's")
    args = parser.parse_args()
    rows = [("ours", HERE.parent)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results = {}
    for name, checkout in rows:
        instructions, misses = per_request(checkout, args.warm, args.few, args.many, args.ll)
        results[name] = instructions
        cache = f"LL ({args.ll:,} B)" if args.ll else "D1"
        print(f"{name:9s} {instructions:12,.0f} instructions a request  {misses:9,.0f} {cache} misses  ({checkout})")
    if "baseline" in results:
        print(f"ours/baseline in instructions: {results['ours'] / results['baseline']:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
