"""The ``mbcsms`` command through click's runner: each command runs the webhook's own functions
and needs only the settings it uses."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from click.testing import CliRunner, Result

from mbcsms.cli import main, wsgi_app
from tests.helpers import AUTH_TOKEN, PATIENT, SECRET

SPANISH_HER2 = "HER2 positivo"
ENGLISH_HER2 = "HER2-positive"
SETTINGS = ("TWILIO_AUTH_TOKEN", "MBCSMS_SECRET", "DATABASE_URL", "MBCSMS_DB", "MBCSMS_PROXY_HOPS",
            "MBCSMS_RATE_LIMIT", "MBCSMS_RATE_WINDOW", "MBCSMS_LOCALES", "MBCSMS_LOG_LEVEL", "PORT",
            "WEB_CONCURRENCY")
# Set, and bad, but used by none of the commands that get them below.
STRAY = {"PORT": "abc", "WEB_CONCURRENCY": "many", "MBCSMS_PROXY_HOPS": "two", "MBCSMS_LOG_LEVEL": "LOUD",
         "TWILIO_AUTH_TOKEN": "", "MBCSMS_SECRET": "short"}


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing configured but what a test sets."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


# -- reply ----------------------------------------------------------------------------------


def test_cli_reply_json_runs_the_same_pipeline():
    result = CliRunner().invoke(main, ["reply", "--json"], input="HER2 positivo etapa 4\nSTOP\n")
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["topic"] == "her2" and first["lang"] == "es" and first["encoding"] == "UCS-2"
    assert first["segments"] <= 4
    assert second == {"topic": "stop", "lang": "en", "body": None, "segments": 0, "encoding": None, "messages": []}


def test_reply_without_from_needs_no_configuration_and_ignores_stray_variables():
    result = run("reply", env={**STRAY, "DATABASE_URL": "mysql://x", "MBCSMS_RATE_LIMIT": "0"},
                 stdin="HER2\n\nSTOP\n")
    assert result.exit_code == 0, result.output
    her2, empty, stop = result.output.splitlines()
    assert ENGLISH_HER2 in her2 and "1 What is MBC" in empty and stop == "(no reply)"


def test_reply_from_uses_the_configured_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MBCSMS_SECRET", SECRET)
    monkeypatch.setenv("MBCSMS_DB", str(tmp_path / "state.db"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()
    assert runner.invoke(main, ["reply", "--from", PATIENT, "ESPAÑOL"]).exit_code == 0
    result = runner.invoke(main, ["reply", "--from", PATIENT, "HER2"])
    assert SPANISH_HER2 in result.output
    # Without --from each message is a new sender: English by default.
    assert ENGLISH_HER2 in runner.invoke(main, ["reply", "HER2"]).output


def test_reply_from_reads_the_store_but_not_the_web_settings(tmp_path):
    env = {**STRAY, "MBCSMS_SECRET": SECRET, "MBCSMS_DB": str(tmp_path / "state.db")}
    assert run("reply", "--from", PATIENT, "STOP", env=env).exit_code == 0
    result = run("reply", "--from", PATIENT, "HER2", env=env)
    # The opt-out was stored. (Log lines may come first when an earlier test set up logging.)
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "(no reply)"


def test_reply_from_needs_the_deployment_secret(tmp_path):
    database = tmp_path / "state.db"
    for secret in ("", "x" * 15):
        result = run("reply", "--from", PATIENT, "HER2", env={"MBCSMS_SECRET": secret, "MBCSMS_DB": str(database)})
        assert result.exit_code != 0 and "MBCSMS_SECRET" in result.output
    assert not database.exists()


def test_reply_from_withholds_content_and_keeps_opt_outs_when_the_store_cannot_open(tmp_path):
    # Issue 14's rule: without the store, content goes only to a sender known not to have opted
    # out; an opt-out is kept on local disk, and only when even that fails is it refused.
    env = {"MBCSMS_SECRET": SECRET, "MBCSMS_DB": str(tmp_path)}  # a directory: the store cannot open
    withheld = run("reply", "--from", PATIENT, "HER2", env=env)
    assert withheld.exit_code == 0 and withheld.output.splitlines()[-1] == "(no reply)"
    crisis = run("reply", "--from", PATIENT, "I want to kill myself", env=env)
    assert crisis.exit_code == 0 and "988" in crisis.output
    kept = run("reply", "--from", PATIENT, "PARAR", env=env)
    assert kept.exit_code == 0 and kept.output.splitlines()[-1] != "(no reply)"  # its confirmation
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    nowhere = {**env, "MBCSMS_LOCAL_STATE": str(blocked / "local.db")}
    refused = run("reply", "--from", PATIENT, "STOP", env=nowhere)
    assert refused.exit_code == 1 and "the opt-out/opt-in was NOT recorded" in refused.output


# -- migrate --------------------------------------------------------------------------------


def test_migrate_reads_only_the_database_and_can_run_again(tmp_path):
    database = tmp_path / "state.db"
    env = {**STRAY, "MBCSMS_LOCALES": "/no/such/directory", "MBCSMS_DB": str(database)}
    for _ in range(2):
        result = run("migrate", env=env)
        assert result.exit_code == 0, result.output
        assert result.output == f"mbcsms: SQLite schema is ready in {database} (version 2)\n"
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"senders", "answered"} <= tables


def test_migrate_names_a_bad_database_url():
    result = run("migrate", env={"DATABASE_URL": "postgres://user:pw@host:notaport/db"})
    assert result.exit_code == 1 and "DATABASE_URL" in result.output and "pw" not in result.output


# -- serve and the app gunicorn runs --------------------------------------------------------


@pytest.mark.parametrize(("overrides", "named"), [
    ({"PORT": "abc"}, "PORT"), ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ({"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"), ({"MBCSMS_SECRET": ""}, "MBCSMS_SECRET"),
])
def test_serve_names_a_bad_setting_before_starting_anything(monkeypatch, tmp_path, overrides, named):
    def must_not_start(*args: object) -> None:
        raise AssertionError(f"gunicorn was started: {args}")

    monkeypatch.setattr(os, "execv", must_not_start)
    env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "MBCSMS_SECRET": SECRET, "MBCSMS_DB": str(tmp_path / "x.db"), **overrides}
    result = run("serve", env=env)
    assert result.exit_code == 1 and f"Error: {named}" in result.output


def test_the_wsgi_app_stops_with_one_line_naming_a_bad_setting(monkeypatch, capsys):
    monkeypatch.setenv("MBCSMS_SECRET", SECRET)
    with pytest.raises(SystemExit) as stopped:
        wsgi_app()
    assert stopped.value.code == 4  # gunicorn's "App failed to load": no respawning
    assert capsys.readouterr().err.startswith("mbcsms: TWILIO_AUTH_TOKEN is not set")


# -- translations ---------------------------------------------------------------------------


def test_translations_check_needs_no_configuration_and_ignores_stray_variables():
    result = run("translations", "check", env={**STRAY, "DATABASE_URL": "mysql://x", "MBCSMS_RATE_LIMIT": "0"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK:")


def test_translations_take_the_locales_directory_from_the_environment(tmp_path):
    result = run("translations", "extract", env={**STRAY, "MBCSMS_LOCALES": str(tmp_path / "draft")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "draft" / "messages.pot").is_file()
