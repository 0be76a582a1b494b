"""One machine on its embedded default: the Procfile's web process on an SQLite file, over real
HTTP with Twilio-signed requests; what it remembers survives a restart of the server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mbcsms.catalog import catalog_path, default_locales_dir
from tests.helpers import HELPLINE
from tests.procfile_servers import is_silent, procfile_command, send, server_env, start, stop, wait_until_up

NUMBERS = ("+15550107001", "+15550107002")


def test_conversation_state_through_the_procfile_server_and_a_restart(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    env = server_env(tmp_path, MBCSMS_DB=str(database), DATABASE_URL="", WEB_CONCURRENCY="2")
    spanish, english = NUMBERS
    server = start(tmp_path, "first", env)
    try:
        wait_until_up(server)
        assert "español" in send(server, "ESPAÑOL", spanish)
        assert "HER2 positivo" in send(server, "HER2", spanish)
        assert "English" in send(server, "ENGLISH", english)
        assert "HER2-positive" in send(server, "HER2", english)
        help_en, help_es = send(server, "HELP", english), send(server, "AYUDA", spanish)
        assert HELPLINE in help_en and "STOP" in help_en
        assert HELPLINE in help_es and "PARAR" in help_es
        assert is_silent(send(server, "STOP", english))
        assert is_silent(send(server, "HER2", english))
        assert "Welcome back" in send(server, "START", english)
        assert is_silent(send(server, "STOP", english))
    finally:
        stop(server)
    first_log = server.output()

    restarted = start(tmp_path, "second", env)
    try:
        wait_until_up(restarted)
        assert is_silent(send(restarted, "HER2", english))  # the opt-out outlived the server
        assert "HER2 positivo" in send(restarted, "kadcyla", spanish)  # and so did the language
        # A webhook URL with escapes in its query is checked as Twilio signed it, byte for byte.
        assert "HER2 positivo" in send(restarted, "HER2", spanish, path="/sms?next=%2Fa&x=%C3%A9")
    finally:
        stop(restarted)

    logged = first_log + restarted.output()
    assert '"event": "reply"' in logged
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("state.db*"))
    for number in NUMBERS:
        digits = number.lstrip("+")
        assert digits not in logged and digits[1:] not in logged
        assert digits.encode() not in stored and digits[1:].encode() not in stored


def run_release(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = server_env(tmp_path, MBCSMS_DB=str(tmp_path / "state.db"), DATABASE_URL="", **overrides)
    return subprocess.run(["bash", "-c", procfile_command("release")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_the_release_phase_passes_the_shipped_catalogs_and_migrates(tmp_path: Path) -> None:
    result = run_release(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "state.db").is_file()
    assert "schema is ready" in result.stdout


def test_the_release_phase_stops_on_a_catalog_syntax_error_before_migrating(tmp_path: Path) -> None:
    broken = tmp_path / "locales"
    shutil.copytree(default_locales_dir(), broken, ignore=shutil.ignore_patterns("*.mo"))
    po = catalog_path(broken, "es")
    # A line that is not PO syntax, in the middle of the Spanish catalog.
    text = po.read_text(encoding="utf-8")
    middle = text.index('msgctxt "answer:', len(text) // 2)
    po.write_text(text[:middle] + 'msgi d "a typo"\n' + text[middle:], encoding="utf-8")
    result = run_release(tmp_path, MBCSMS_LOCALES=str(broken))
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mbcsms: {po}:"), result.stderr
    assert not (tmp_path / "state.db").exists()  # checked before the migration: nothing touched
    # The very line a web worker would stop with on the same catalogs.
    web = subprocess.run(
        [sys.executable, "-c", "from mbcsms.cli import wsgi_app; wsgi_app()"],
        env=server_env(tmp_path, MBCSMS_LOCALES=str(broken), MBCSMS_DB=str(tmp_path / "w.db")),
        capture_output=True, text=True, timeout=120,
    )
    assert web.returncode == 4 and web.stderr == result.stderr
