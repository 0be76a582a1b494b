"""The ``mbcsms`` command through click's runner: each command runs the webhook's own functions
and needs only the settings it uses."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime

import pytest
from click.testing import CliRunner, Result

from mbcsms.catalog import Catalog
from mbcsms.cli import main, wsgi_app
from mbcsms.helpline_hours import status
from mbcsms.store import SCHEMA_VERSION
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


# -- reply --at: the helpline's hours as of a moment (issue 12) --------------------------------

TUESDAY_3PM = "2026-12-08T15:00:00-05:00"
SUNDAY_11PM = "2026-12-06T23:00:00-05:00"
HELPLINE_QUESTIONS = {"en": "what is the helpline number", "es": "numero de la linea de ayuda"}
FALLBACKS = {"en": "can you refill my prescription", "es": "donde puedo estacionar"}


def replies_at(at: str, *texts: str) -> list[dict]:
    result = run("reply", "--json", "--at", at, stdin="".join(text + "\n" for text in texts))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


@pytest.mark.parametrize("lang", ["en", "es"])
def test_reply_at_a_tuesday_3pm_shows_the_helpline_open(lang):
    catalog = Catalog.load()
    for answer in replies_at(TUESDAY_3PM, HELPLINE_QUESTIONS[lang], FALLBACKS[lang]):
        assert answer["lang"] == lang and answer["topic"] in ("helpline", "fallback")
        assert catalog.render("hours_open", lang) in answer["body"]
        assert catalog.render("hours_closed", lang).split("{")[0] not in answer["body"]


@pytest.mark.parametrize(("lang", "opens"), [("en", "It usually opens tomorrow at 9am ET."),
                                             ("es", "abre mañana a las 9 a. m. ET")])
def test_reply_at_a_sunday_11pm_shows_it_closed_and_when_it_opens(lang, opens):
    # Sunday 11 pm in New York: it opens "tomorrow", Monday, at 9am.
    assert status(datetime.fromisoformat(SUNDAY_11PM)).opens == datetime.fromisoformat("2026-12-07T09:00:00-05:00")
    catalog = Catalog.load()
    for answer in replies_at(SUNDAY_11PM, HELPLINE_QUESTIONS[lang], FALLBACKS[lang]):
        assert answer["lang"] == lang and opens in answer["body"], answer
        assert catalog.render("hours_open", lang) not in answer["body"]
        assert "911" in answer["body"] and "988" in answer["body"]
    # The same moment in another offset is the same moment; a Saturday names Monday.
    assert opens in replies_at("2026-12-07T04:00:00+00:00", HELPLINE_QUESTIONS[lang])[0]["body"]
    saturday = replies_at("2026-12-12T12:00:00-05:00", HELPLINE_QUESTIONS[lang])[0]["body"]
    assert ("Monday at 9am ET" if lang == "en" else "el lunes a las 9 a. m. ET") in saturday


@pytest.mark.parametrize(("at", "says"), [("2026-12-06T23:00:00", "has no UTC offset"),
                                          ("next sunday", "is not an ISO date and time"),
                                          ("2026-13-06T23:00:00-05:00", "is not an ISO date and time")])
def test_reply_at_refuses_a_naive_or_malformed_moment(at, says):
    result = run("reply", "--at", at, "helpline")
    assert result.exit_code == 2 and "Invalid value for '--at'" in result.output and says in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("text", "lang", "topic", "part"), [
    ("START", "en", "start", "Welcome to MBC Text Line"), ("YES", "en", "start", "Msg & data rates may apply"),
    ("ALTA", "es", "start", "Línea de texto MBC"), ("iniciar", "es", "start", "tarifas de mensajes y datos"),
])
def test_reply_an_opt_in_from_a_new_sender_gets_the_first_welcome(text, lang, topic, part):
    answer = replies_at(TUESDAY_3PM, text)[0]
    assert (answer["topic"], answer["lang"]) == (topic, lang) and part in answer["body"]
    assert "Welcome back" not in answer["body"]


def test_reply_every_reply_within_its_budget_at_any_hour_and_the_spanish_crisis_in_3_segments():
    texts = [
        "what is mbc", "que es el cancer de mama metastasico", "her2", "que es her2 positivo",
        "treatment options", "que tratamientos hay", "support group", "grupo de apoyo", "survival rate",
        "cuanto tiempo de vida", "can it be cured", "tiene cura", *HELPLINE_QUESTIONS.values(),
        *FALLBACKS.values(), "MENU", "MENÚ", "HELP", "AYUDA", "START", "ALTA", "PARAR", "stop please",
        "ESPAÑOL", "ENGLISH", "", "I want to kill myself", "no puedo respirar", "quiero morir",
    ]
    for at in (TUESDAY_3PM, SUNDAY_11PM, "2026-12-08T08:00:00-05:00", "2026-12-11T23:00:00-05:00"):
        for text, answer in zip(texts, replies_at(at, *texts), strict=True):
            budget = Catalog.load().topic(answer["topic"]).budget
            for message in answer["messages"]:
                assert message["segments"] <= budget <= 4, (text, at, message)
            assert answer["segments"] <= budget
            if answer["topic"] == "crisis":
                assert answer["segments"] <= 3, (text, answer)
    crisis = replies_at(SUNDAY_11PM, "no puedo respirar")[0]
    assert crisis["lang"] == "es" and crisis["encoding"] == "UCS-2" and crisis["segments"] <= 3
    assert "911" in crisis["body"] and "988" in crisis["body"]


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
        assert result.output == f"mbcsms: SQLite schema is ready in {database} (version {SCHEMA_VERSION})\n"
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


def test_version_names_the_installed_release():
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0 and result.output == f"mbcsms, version {version('mbcsms')}\n"


def test_release_checks_the_web_settings_before_it_migrates(tmp_path):
    database = tmp_path / "state.db"
    refused = run("release", env={"MBCSMS_SECRET": SECRET, "MBCSMS_DB": str(database)})
    assert refused.exit_code == 1 and refused.output.startswith("mbcsms: TWILIO_AUTH_TOKEN is not set")
    assert not database.exists()
    env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "MBCSMS_SECRET": SECRET, "MBCSMS_DB": str(database)}
    result = run("release", env=env)
    assert result.exit_code == 0, result.output
    assert result.output.endswith(f"mbcsms: SQLite schema is ready in {database} (version {SCHEMA_VERSION})\n")
