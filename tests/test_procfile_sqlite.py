"""One machine on its embedded default: the Procfile's web process on an SQLite file, over real
HTTP with Twilio-signed requests; what it remembers survives a restart of the server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from mbcsms.catalog import Catalog, catalog_path, default_locales_dir
from mbcsms.helpline_hours import hours_key
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


def bodies(twiml: str) -> list[str]:
    return [element.text or "" for element in ET.fromstring(twiml).iter("Message")]


def test_issue_12_through_the_procfile_server(tmp_path: Path) -> None:
    """Media, a WhatsApp STOP then content withheld, first welcome vs welcome back, and the
    open-now hours line, in English and Spanish, over real HTTP to the Procfile's gunicorn."""
    env = server_env(tmp_path, MBCSMS_DB=str(tmp_path / "state.db"), DATABASE_URL="", WEB_CONCURRENCY="2")
    catalog = Catalog.load()
    server = start(tmp_path, "issue12", env)
    try:
        wait_until_up(server)
        for lang, number, stop_word, start_word, fallback in [
            ("en", "+15550107011", "STOP", "START", "can you refill my prescription"),
            ("es", "+15550107012", "PARAR", "ALTA", "donde puedo estacionar"),
        ]:
            whatsapp = "whatsapp:" + number
            if lang == "es":
                assert "español" in send(server, "ESPAÑOL", number)
            # A picture with no text: the media line, in the sender's language.
            assert bodies(send(server, "", number, extra={"NumMedia": "1"})) == [catalog.render("media", lang)]
            # The fallback says whether the helpline is open now.
            before = catalog.hours_line(lang, hours_key(datetime.now(UTC)))
            answer = bodies(send(server, fallback, number))
            after = catalog.hours_line(lang, hours_key(datetime.now(UTC)))
            assert len(answer) == 1 and (before in answer[0] or after in answer[0]) and HELPLINE in answer[0]
            # First welcome, from someone who never opted out.
            assert bodies(send(server, start_word, number)) == [catalog.render("welcome", lang)]
            # A WhatsApp STOP: our confirmation, then nothing on either channel.
            assert bodies(send(server, stop_word, whatsapp)) == [catalog.render("stop", lang)]
            assert is_silent(send(server, "HER2", whatsapp))
            assert is_silent(send(server, "HER2", number))
            assert is_silent(send(server, "", whatsapp, extra={"NumMedia": "1"}))
            # Welcome back, after the opt-out.
            assert bodies(send(server, start_word, whatsapp)) == [catalog.render("start", lang)]
    finally:
        stop(server)
