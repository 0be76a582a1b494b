"""Servers started from the Procfile's web command, as a PaaS runs them, and Twilio-signed
requests to them over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import AUTH_TOKEN, SECRET, new_sid, sign
from tests.pg_server import free_port

ROOT = Path(__file__).resolve().parent.parent
SMS_SENDER = "+15550102030"


def procfile_command(process: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"no {process}: line in the Procfile")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MBCSMS_", "TWILIO_"))}
    env.update({
        # The Procfile finds gunicorn and mbcsms on PATH, as on a dyno.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "MBCSMS_SECRET": SECRET,
        "MBCSMS_DB": str(tmp_path / "must-not-exist.db"),
        "MBCSMS_PROXY_HOPS": "0",  # called directly, no router in front
        "WEB_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return {key: value for key, value in env.items() if value != ""}


def start(tmp_path: Path, name: str, env: dict[str, str]) -> Server:
    port = free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        # As a PaaS does: the Procfile line through a shell, so $PORT and ${WEB_CONCURRENCY} expand.
        process = subprocess.Popen(
            ["bash", "-c", procfile_command("web")], env={**env, "PORT": str(port)}, cwd=tmp_path,
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Server(process, port, log)


def stop(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


def wait_until_up(server: Server, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.output()
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):  # not listening yet, or still booting
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not come up:\n{server.output()}")


def send(server: Server, body: str, sender: str = SMS_SENDER, path: str = "/sms",
         extra: dict[str, str] | None = None) -> str:
    """POST /sms exactly as Twilio would, signed over the URL actually called; the TwiML back.
    ``extra``: more of Twilio's fields (NumMedia, MessageSid for a retry...)."""
    url = server.url + path
    form = {"From": sender, "To": "+15550009999", "Body": body, "MessageSid": new_sid(),
            "AccountSid": "AC" + "0" * 32}
    form.update(extra or {})
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), method="POST",
        headers={"X-Twilio-Signature": sign(url, form),
                 "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def is_silent(twiml: str) -> bool:
    return "<Message" not in twiml
