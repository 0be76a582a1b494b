"""One machine on its embedded default: the Procfile's web process on an SQLite file, over real
HTTP with Twilio-signed requests; what it remembers survives a restart of the server."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import HELPLINE
from tests.procfile_servers import is_silent, send, server_env, start, stop, wait_until_up

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
