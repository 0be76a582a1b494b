"""Where a request's time goes: the WSGI app called in-process, as gunicorn calls it, no network.

    .venv/bin/python bench/profile_request.py            # time per request, ours and bare
    .venv/bin/python bench/profile_request.py --profile  # plus cProfile of ours, by own time
    SORT=cumulative TOP=60 .venv/bin/python bench/profile_request.py --profile  # other orders

Same signed, varied requests as bench/load.py (a MessageSid each, many senders), against a real
SQLite file in a temp dir. The difference between the two per-request times is what the bot adds
on top of Flask; gunicorn's own per-request cost (accept, parse, write) is the same for both.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_app import app as bare_app  # noqa: E402
from load import AUTH_TOKEN, MESSAGES_PER_SENDER, SECRET, load_messages  # noqa: E402

from mbcsms import create_app  # noqa: E402

Environ = dict[str, Any]
HOST, PORT = "127.0.0.1", "8000"


def environs(count: int) -> list[Environ]:
    url = f"http://{HOST}:{PORT}/sms"
    validator = RequestValidator(AUTH_TOKEN)
    messages = load_messages()
    result = []
    for i in range(count):
        # The fields bench/load.py sends, as Twilio does (NumMedia among them).
        form = {
            "ToCountry": "US", "To": "+15550009999", "From": f"+1555{i // MESSAGES_PER_SENDER:08d}",
            "Body": messages[i % len(messages)], "MessageSid": f"SM{i:032d}", "AccountSid": "AC" + "0" * 32,
            "NumMedia": "0", "ApiVersion": "2010-04-01",
        }
        body = urllib.parse.urlencode(form).encode()
        result.append({
            "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/sms", "QUERY_STRING": "",
            "SERVER_NAME": HOST, "SERVER_PORT": PORT, "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": f"{HOST}:{PORT}", "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_TWILIO_SIGNATURE": validator.compute_signature(url, form),
            "wsgi.url_scheme": "http", "wsgi.input": body, "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        })
    return result


def call_all(app: Callable[..., Iterable[bytes]], batch: list[Environ]) -> None:
    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"unexpected status {status}")

    for environ in batch:
        environ = dict(environ, **{"wsgi.input": io.BytesIO(environ["wsgi.input"])})
        b"".join(app(environ, start_response))


def per_request_us(app: Callable[..., Iterable[bytes]], batch: list[Environ]) -> tuple[float, float]:
    """Wall and CPU microseconds a request (wall includes fsync waits; CPU is what the other
    processes on a busy machine cannot stretch)."""
    wall, cpu = time.perf_counter(), time.process_time()
    call_all(app, batch)
    return ((time.perf_counter() - wall) / len(batch) * 1e6, (time.process_time() - cpu) / len(batch) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mbcsms-profile-"))
    # The bot logs a JSON line a reply to stdout; send it where gunicorn's would go, a file.
    log = open(work / "log.jsonl", "w", encoding="utf-8")  # noqa: SIM115
    real_stdout, sys.stdout = sys.stdout, log
    try:
        ours = create_app({
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "MBCSMS_SECRET": SECRET, "DATABASE_URL": "",
            "MBCSMS_DB": str(work / "state.db"), "MBCSMS_LOG_LEVEL": os.environ.get("MBCSMS_LOG_LEVEL", "INFO"),
        })
        batch = environs(args.requests * 3 + 500)
        call_all(ours, batch[:500])  # warm: connection, caches, first-call imports
        call_all(bare_app, batch[:500])
        ours_us = per_request_us(ours, batch[500 : 500 + args.requests])
        bare_us = per_request_us(bare_app, batch[500 : 500 + args.requests])
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        if profiler:
            profiler.enable()
            call_all(ours, batch[500 + args.requests :])
            profiler.disable()
    finally:
        sys.stdout = real_stdout
        log.close()
    print(f"in-process, per request, wall: ours {ours_us[0]:.0f} us, bare {bare_us[0]:.0f} us; "
          f"CPU: ours {ours_us[1]:.0f} us, bare {bare_us[1]:.0f} us (the bot adds {ours_us[1] - bare_us[1]:.0f} us)")
    if profiler:
        pstats.Stats(profiler).sort_stats(os.environ.get("SORT","tottime")).print_stats(int(os.environ.get("TOP","30")))


if __name__ == "__main__":
    main()
