"""The Procfile as a PaaS runs it: real gunicorn processes, real HTTP, one shared PostgreSQL.

Two servers started from the Procfile's web command stand in for two dynos; an opt-out sent to
one holds on the other. Start-up with a bad setting stops with one line naming the variable.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbcsms.cli import gunicorn_arguments
from mbcsms.config import Settings
from tests.pg_server import free_port, fresh_schema, shared_url
from tests.procfile_servers import (
    ROOT,
    Server,
    is_silent,
    procfile_command,
    send,
    server_env,
    start,
    stop,
    wait_until_up,
)

WHATSAPP_SENDER = "whatsapp:+15557654321"


def test_mbcsms_serve_runs_the_procfile_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    command = procfile_command("web").replace("${WEB_CONCURRENCY:-2}", "3").replace("$PORT", "8123")
    workers = Settings.from_env(dev=True).web_concurrency  # WEB_CONCURRENCY, read by Settings
    assert shlex.split(command) == ["gunicorn", *gunicorn_arguments(8123, workers)]
    assert procfile_command("release") == "mbcsms release"
    render = (ROOT / "render.yaml").read_text()
    assert "preDeployCommand: mbcsms release\n" in render and "startCommand: mbcsms serve\n" in render


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_schema(shared_url()) as url:
        yield url


@pytest.fixture
def two_servers(tmp_path: Path, database_url: str) -> Iterator[tuple[Server, Server]]:
    env = server_env(tmp_path, DATABASE_URL=database_url)
    servers = (start(tmp_path, "a", env), start(tmp_path, "b", env))
    try:
        for server in servers:
            wait_until_up(server)
        yield servers
    finally:
        for server in servers:
            stop(server)


def test_two_servers_share_opt_outs_through_postgresql(two_servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = two_servers
    assert not is_silent(send(b, "HER2"))
    assert is_silent(send(a, "STOP"))
    assert is_silent(send(b, "HER2"))  # opted out on A: B holds its tongue
    assert not is_silent(send(b, "START"))
    assert "HER2" in send(a, "HER2")
    # A WhatsApp sender is answered like any other...
    assert "HER2" in send(a, "HER2", sender=WHATSAPP_SENDER)
    # ...and an opt-out by SMS holds on WhatsApp too (same number, another channel).
    assert is_silent(send(b, "STOP", sender="+15557654321"))
    assert is_silent(send(a, "HER2", sender=WHATSAPP_SENDER))

    for server in two_servers:
        stop(server)
    assert not (tmp_path / "must-not-exist.db").exists()
    for server in two_servers:
        logged = server.output()
        assert '"event": "reply"' in logged and '"event": "http"' in logged
        for number in ("5557654321", "5550102030"):
            assert number not in logged, f"a phone number reached the logs:\n{logged}"
        assert "whatsapp:" not in logged.lower()
        assert "?" not in "".join(line for line in logged.splitlines() if '"event": "http"' in line)


@pytest.mark.parametrize(
    ("missing", "overrides"),
    [
        ("TWILIO_AUTH_TOKEN", {"TWILIO_AUTH_TOKEN": ""}),
        ("MBCSMS_SECRET", {"MBCSMS_SECRET": ""}),
        ("DATABASE_URL", {"DATABASE_URL": "mysql://user@localhost/db"}),
        ("DATABASE_URL", {"DATABASE_URL": "postgres://user:pw@host:notaport/db"}),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, missing: str, overrides: dict[str, str]
) -> None:
    server = start(tmp_path, "bad", server_env(tmp_path, **overrides))
    try:
        server.process.wait(timeout=30)
    finally:
        stop(server)
    assert server.process.returncode != 0
    output = server.output()
    named = [line for line in output.splitlines() if re.match(rf"^mbcsms: {missing}\b", line)]
    assert named, output
    # Not our traceback (gunicorn itself may print one for its own halt when workers race to exit).
    assert "ConfigError" not in output, output
    assert "pw" not in " ".join(named)  # a password in a bad URL is never repeated


def test_the_release_phase_creates_the_schema(tmp_path: Path, database_url: str) -> None:
    env = server_env(tmp_path, DATABASE_URL=database_url)
    for _ in range(2):  # every deploy runs it again
        result = subprocess.run(["bash", "-c", procfile_command("release")], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    import psycopg

    with psycopg.connect(database_url) as connection:
        tables = {row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
    assert {"senders", "answered"} <= tables


def test_the_release_phase_fails_loudly_when_the_database_is_unreachable(tmp_path: Path) -> None:
    env = server_env(tmp_path, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    result = subprocess.run(["bash", "-c", procfile_command("release")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "postgresql:" in result.stderr and "Traceback" not in result.stderr


def test_the_release_phase_refuses_settings_the_web_process_would_refuse(tmp_path: Path, database_url: str) -> None:
    env = server_env(tmp_path, DATABASE_URL=database_url, TWILIO_AUTH_TOKEN="")
    result = subprocess.run(["bash", "-c", procfile_command("release")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.startswith("mbcsms: TWILIO_AUTH_TOKEN is not set") and "Traceback" not in result.stderr
    import psycopg

    with psycopg.connect(database_url) as connection:  # checked before migrating: nothing created
        tables = [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
    assert tables == []
