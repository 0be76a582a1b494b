"""Settings: the one reader of the environment. The app refuses a bad deploy with one line naming
the variable; each command reads, and so checks, only the variables it uses."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from mbcsms import create_app
from mbcsms.config import DEV_SECRET, ConfigError, Settings, environment
from tests.helpers import AUTH_TOKEN, SECRET, app_env

# Unrelated to the commands below, and each one bad: none of them may stop those commands.
STRAY = {
    "PORT": "abc", "WEB_CONCURRENCY": "many", "MBCSMS_PROXY_HOPS": "two", "MBCSMS_LOG_LEVEL": "LOUD",
    "MBCSMS_RATE_LIMIT": "0", "DATABASE_URL": "mysql://x", "MBCSMS_LOCALES": "/no/such/directory",
    "TWILIO_AUTH_TOKEN": "", "MBCSMS_SECRET": "short",
}


# -- the app refuses a bad deploy -------------------------------------------------------------


@pytest.mark.parametrize("missing", ["TWILIO_AUTH_TOKEN", "MBCSMS_SECRET"])
def test_app_refuses_to_start_without_required_variable(tmp_path, missing, monkeypatch):
    monkeypatch.delenv(missing, raising=False)
    with pytest.raises(ConfigError) as error:
        create_app(app_env(tmp_path, **{missing: ""}))
    assert missing in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("name", "value"), [("MBCSMS_PROXY_HOPS", "two"), ("MBCSMS_RATE_LIMIT", "0"),
                                             ("DATABASE_URL", "mysql://x"), ("MBCSMS_SECRET", "short")])
def test_bad_values_are_named(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        create_app(app_env(tmp_path, **{name: value}))


def test_settings_without_a_token_outside_dev_mode_are_refused(tmp_path):
    settings = Settings.from_env(app_env(tmp_path))
    # Not even built: create_app can never be handed one.
    for token in (None, "", "   "):
        with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
            replace(settings, twilio_auth_token=token)


@pytest.mark.parametrize("name", ["PORT", "WEB_CONCURRENCY"])
def test_bad_port_or_worker_count_is_named(tmp_path, name):
    with pytest.raises(ConfigError, match=name):
        create_app(app_env(tmp_path, **{name: "abc"}))


def test_a_port_past_65535_is_named():
    with pytest.raises(ConfigError, match="PORT must be a port number"):
        Settings.from_env({"PORT": "70000"}, dev=True)


# -- what a Settings holds ----------------------------------------------------------------------


def test_every_variable_reaches_its_setting(tmp_path):
    env = {
        "TWILIO_AUTH_TOKEN": f" {AUTH_TOKEN} ", "MBCSMS_SECRET": SECRET,
        "DATABASE_URL": "postgres://u:p@db.example.com:5432/d", "MBCSMS_DB": "elsewhere.db",
        "MBCSMS_PROXY_HOPS": "0", "MBCSMS_RATE_LIMIT": "7", "MBCSMS_RATE_WINDOW": "60",
        "MBCSMS_LOCALES": str(tmp_path), "MBCSMS_LOG_LEVEL": "debug", "PORT": "8123", "WEB_CONCURRENCY": "3",
    }
    assert Settings.from_env(env) == Settings(
        twilio_auth_token=AUTH_TOKEN, secret=SECRET, database_url="postgres://u:p@db.example.com:5432/d",
        sqlite_path=Path("elsewhere.db"), proxy_hops=0, rate_limit=7, rate_window_seconds=60.0,
        locales=tmp_path, log_level="DEBUG", port=8123, web_concurrency=3,
    )


def test_the_defaults_need_nothing_set_in_dev_mode():
    settings = Settings.from_env({}, dev=True)
    assert settings == Settings(dev=True)
    assert (settings.twilio_auth_token, settings.secret, settings.database_url) == (None, DEV_SECRET, None)
    assert (settings.sqlite_path, settings.locales, settings.log_level) == (Path("mbcsms.db"), None, "INFO")
    assert (settings.proxy_hops, settings.rate_limit, settings.rate_window_seconds) == (1, 20, 600.0)
    assert (settings.port, settings.web_concurrency) == (5000, 2)


def test_outside_dev_mode_a_settings_needs_a_real_secret_however_it_is_built():
    Settings(twilio_auth_token=AUTH_TOKEN, secret=SECRET)  # the one shape that may exist
    for secret in (DEV_SECRET, "", "   "):
        with pytest.raises(ConfigError, match="MBCSMS_SECRET is not set"):
            Settings(twilio_auth_token=AUTH_TOKEN, secret=secret)
    with pytest.raises(ConfigError, match="MBCSMS_SECRET is too short"):
        Settings(twilio_auth_token=AUTH_TOKEN, secret="x" * 15)
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        Settings(secret=SECRET)
    Settings(dev=True)  # `serve --dev` and the commands that answer no request need neither


def test_the_app_reads_the_process_environment_under_its_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("MBCSMS_RATE_LIMIT", "7")
    monkeypatch.setenv("MBCSMS_RATE_WINDOW", "30")
    app = create_app(app_env(tmp_path, MBCSMS_RATE_LIMIT="3"))
    settings = app.config["MBCSMS_SETTINGS"]
    assert (settings.rate_limit, settings.rate_window_seconds) == (3, 30.0)
    assert environment() is os.environ
    assert environment({"MBCSMS_RATE_LIMIT": "3"})["MBCSMS_RATE_WINDOW"] == "30"


# -- each command reads only what it uses -------------------------------------------------------


def test_the_catalog_commands_read_only_the_locales_directory(tmp_path):
    assert Settings.for_catalogs({**STRAY, "MBCSMS_LOCALES": str(tmp_path)}).locales == tmp_path
    assert Settings.for_catalogs({}).locales is None  # the shipped catalogs
    with pytest.raises(ConfigError, match="MBCSMS_LOCALES is not a directory"):
        Settings.for_catalogs(STRAY)
    # `translations extract` and `new` may create it: they take it as it is.
    assert Settings.for_catalogs(STRAY, must_exist=False).locales == Path("/no/such/directory")


def test_the_release_phase_reads_only_the_database(tmp_path):
    url = "postgresql://postgres@127.0.0.1:5432/mbcsms"
    settings = Settings.for_store({**STRAY, "DATABASE_URL": url, "MBCSMS_DB": str(tmp_path / "x.db")})
    assert (settings.database_url, settings.sqlite_path) == (url, tmp_path / "x.db")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.for_store(STRAY)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.for_store({"DATABASE_URL": "postgres://user:pw@host:notaport/db"})


def test_a_replay_reads_the_deployment_secret_store_catalogs_and_rate_limit(tmp_path):
    needed = {"MBCSMS_SECRET": SECRET, "DATABASE_URL": "", "MBCSMS_RATE_LIMIT": "5", "MBCSMS_LOCALES": ""}
    settings = Settings.for_replay({**STRAY, **needed, "MBCSMS_DB": str(tmp_path / "x.db")})
    assert (settings.secret, settings.sqlite_path, settings.rate_limit) == (SECRET, tmp_path / "x.db", 5)
    # Without the deployment's secret the replay would hash senders to keys the store never saw.
    for secret in ("", "x" * 15):
        with pytest.raises(ConfigError, match="MBCSMS_SECRET"):
            Settings.for_replay({**needed, "MBCSMS_SECRET": secret})
    with pytest.raises(ConfigError, match="MBCSMS_RATE_LIMIT"):
        Settings.for_replay({**needed, "MBCSMS_RATE_LIMIT": "0"})
