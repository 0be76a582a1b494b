"""Issue 13's store items on both stores: a database made by the first releases' schema upgrades
and keeps its opt-outs; purge keeps every opted-out sender; a rotated MBCSMS_SECRET keeps opt-outs;
a secondary Twilio token is accepted."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from mbcsms import create_app
from mbcsms.cli import main
from mbcsms.senders import key_id, sender_key
from mbcsms.store import SCHEMA_VERSION
from mbcsms.store.sqlite import ANSWERED_COLUMNS, PURGE_BATCH, SENDER_COLUMNS
from tests.helpers import SECRET, app_env, post_signed
from tests.pg_server import fresh_schema, shared_url
from tests.twiml import messages, one_message

# The schema exactly as the releases before versioned migrations created it (a fixture: never
# edit it to follow the code).
TODAYS_SQLITE = """
CREATE TABLE IF NOT EXISTS senders (sender TEXT PRIMARY KEY, lang TEXT, last_lang TEXT,
    opted_out INTEGER NOT NULL DEFAULT 0, last_menu TEXT, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    window_start REAL NOT NULL DEFAULT 0, window_count INTEGER NOT NULL DEFAULT 0,
    window_noticed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS answered (message TEXT PRIMARY KEY, topic TEXT NOT NULL, lang TEXT NOT NULL,
    sent INTEGER NOT NULL, answered_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS answered_by_time ON answered (answered_at);
"""
TODAYS_POSTGRES = """
CREATE TABLE IF NOT EXISTS senders (sender TEXT PRIMARY KEY, lang TEXT, last_lang TEXT,
    opted_out BOOLEAN NOT NULL DEFAULT FALSE, last_menu TEXT, first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL, window_start DOUBLE PRECISION NOT NULL DEFAULT 0,
    window_count INTEGER NOT NULL DEFAULT 0, window_noticed BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE IF NOT EXISTS answered (message TEXT PRIMARY KEY, topic TEXT NOT NULL, lang TEXT NOT NULL,
    sent BOOLEAN NOT NULL, answered_at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS answered_by_time ON answered (answered_at);
"""
# Version 2 as that release's `mbcsms migrate` left an SQLite file (a fixture, like the above).
VERSION_2_SQLITE = TODAYS_SQLITE + """
ALTER TABLE senders ADD COLUMN key_id TEXT;
ALTER TABLE senders ADD COLUMN opt_changed_at REAL NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS senders_by_last_seen ON senders (last_seen);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (2);
"""
OPTED_OUT = "+15550301001"
ACTIVE = "+15550301002"
NEW_SECRET = "rotated-secret-0123456789abcdef01234567"
DAY = 86400.0


class Database:
    """One database of either kind: raw SQL for fixtures, and the env that points the app at it."""

    def __init__(self, kind: str, tmp_path: Path, url: str | None = None) -> None:
        self.kind, self.tmp_path, self.url = kind, tmp_path, url

    def env(self, **extra: str) -> dict[str, str]:
        store = {"DATABASE_URL": self.url} if self.url else {}
        return app_env(self.tmp_path, MBCSMS_LOCAL_STATE=str(self.tmp_path / "local.db"), **store, **extra)

    def execute(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if self.url:
            with psycopg.connect(self.url, autocommit=True) as connection:
                cursor = connection.execute(sql.replace("?", "%s"), parameters)  # type: ignore[arg-type]
                return cursor.fetchall() if cursor.description else []
        with sqlite3.connect(self.tmp_path / "state.db", isolation_level=None) as connection:
            if ";" in sql.strip().rstrip(";"):
                connection.executescript(sql)
                return []
            return connection.execute(sql, parameters).fetchall()

    def make_todays(self, opted_out_key: str) -> None:
        self.execute(TODAYS_POSTGRES if self.url else TODAYS_SQLITE)
        self.execute(
            "INSERT INTO senders (sender, opted_out, first_seen, last_seen) VALUES (?, ?, ?, ?)",
            (opted_out_key, True if self.url else 1, time.time() - 400 * DAY, time.time() - 400 * DAY),
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", tmp_path)
        return
    with fresh_schema(shared_url()) as url:
        yield Database("postgresql", tmp_path, url)


def run(database: Database, *arguments: str, **extra: str) -> str:
    result = CliRunner().invoke(main, list(arguments), env={**database.env(), **extra})
    assert result.exit_code == 0, result.output
    return result.output


def test_a_database_made_by_todays_schema_upgrades_and_keeps_its_opt_out(database: Database) -> None:
    database.make_todays(sender_key(SECRET, OPTED_OUT))
    for _ in range(2):  # every release runs it; the second finds nothing to do
        assert f"(version {SCHEMA_VERSION})" in run(database, "migrate")
    assert database.execute("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    client = create_app(database.env()).test_client()
    assert messages(post_signed(client, "HER2", sender=OPTED_OUT)) == []
    assert "HER2" in one_message(post_signed(client, "HER2", sender=ACTIVE))


def test_several_servers_migrating_at_once(database: Database) -> None:
    import threading

    from mbcsms.store import open_store

    database.make_todays(sender_key(SECRET, OPTED_OUT))
    outputs: list[str] = []

    def migrate() -> None:  # as each dyno's release or start does (CliRunner is not thread-safe)
        store = open_store(database.url, database.tmp_path / "state.db", prepare=False)
        try:
            outputs.append(store.migrate())
        finally:
            store.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outputs) == 4 and all(f"(version {SCHEMA_VERSION})" in each for each in outputs)


def test_purge_removes_inactive_senders_and_keeps_every_opted_out_one(database: Database) -> None:
    database.make_todays(sender_key(SECRET, OPTED_OUT))  # inactive for 400 days, opted out
    client = create_app(database.env()).test_client()
    one_message(post_signed(client, "HER2", sender=ACTIVE))
    database.execute("INSERT INTO senders (sender, first_seen, last_seen) VALUES (?, ?, ?)",
                     ("f" * 64, time.time() - 400 * DAY, time.time() - 400 * DAY))
    database.execute("INSERT INTO answered (message, topic, lang, sent, answered_at) VALUES (?, ?, ?, ?, ?)",
                     ("old", "her2", "en", True if database.url else 1, time.time() - 2 * DAY))
    output = run(database, "purge", "--inactive-days", "365")
    assert "purged 1 senders" in output and "1 old message ids" in output
    assert len(database.execute("SELECT sender FROM senders")) == 2
    assert messages(post_signed(client, "HER2", sender=OPTED_OUT)) == []  # honoured forever
    assert "HER2" in one_message(post_signed(client, "HER2", sender=ACTIVE))


def test_a_version_2_sqlite_file_upgrades_keeping_every_row_and_column(tmp_path: Path) -> None:
    database = Database("sqlite", tmp_path)
    database.execute(VERSION_2_SQLITE)
    opted_out = sender_key(SECRET, OPTED_OUT)
    rows = [
        (opted_out, "es", "es", 1, None, 1.0e9, 1.5e9, 0.0, 0, 0, key_id(SECRET), 1.4e9),
        ("a" * 64, "en", "es", 0, "main", 1.1e9, 1.6e9, 1.6e9, 3, 1, None, 0.0),
    ]
    for row in rows:
        database.execute(f"INSERT INTO senders ({SENDER_COLUMNS}) VALUES ({', '.join('?' * 12)})", row)
    answered = ("m" * 64, "her2", "es", 1, 1.6e9)
    database.execute(f"INSERT INTO answered ({ANSWERED_COLUMNS}) VALUES (?, ?, ?, ?, ?)", answered)
    assert f"(version {SCHEMA_VERSION})" in run(database, "migrate")
    assert database.execute(f"SELECT {SENDER_COLUMNS} FROM senders ORDER BY sender") == sorted(rows)
    assert database.execute(f"SELECT {ANSWERED_COLUMNS} FROM answered") == [answered]
    client = create_app(database.env()).test_client()
    assert messages(post_signed(client, "HER2", sender=OPTED_OUT)) == []
    assert "Hola de nuevo" in one_message(post_signed(client, "ALTA", sender=OPTED_OUT))  # its "es" kept


def test_purge_walks_a_table_larger_than_one_batch(tmp_path: Path) -> None:
    database = Database("sqlite", tmp_path)
    run(database, "migrate")
    now = time.time()
    # Inactive, inactive but opted out, active: in turn over the whole key range, so every
    # batch holds some of each.
    kinds = [(now - 400 * DAY, 0), (now - 400 * DAY, 1), (now - DAY, 0)]
    count = 2 * PURGE_BATCH + 500
    rows = []
    for index in range(count):
        last_seen, opted_out = kinds[index % 3]
        rows.append((f"{index:064x}", last_seen, last_seen, opted_out))
    with sqlite3.connect(tmp_path / "state.db") as connection:
        connection.executemany(
            "INSERT INTO senders (sender, first_seen, last_seen, opted_out) VALUES (?, ?, ?, ?)", rows
        )
    inactive, opted_out_count = len(range(0, count, 3)), len(range(1, count, 3))
    output = run(database, "purge", "--inactive-days", "365")
    assert f"purged {inactive} senders" in output
    remaining = database.execute("SELECT count(*), sum(opted_out) FROM senders")
    assert remaining == [(count - inactive, opted_out_count)]
    assert run(database, "purge", "--inactive-days", "365").startswith("mbcsms: purged 0 senders")


def test_an_opt_out_survives_a_rotation_of_the_secret(database: Database) -> None:
    old = create_app(database.env()).test_client()
    assert "ALTA" in one_message(post_signed(old, "PARAR", sender=OPTED_OUT))
    one_message(post_signed(old, "ESPAÑOL", sender=ACTIVE))
    rotated_env = {"MBCSMS_SECRET": NEW_SECRET, "MBCSMS_PREVIOUS_SECRETS": SECRET}
    report = run(database, "keys", **rotated_env)
    assert f"MBCSMS_PREVIOUS_SECRETS #1 (key id {key_id(SECRET)}): 2 senders, 1 opted out" in report
    rotated = create_app(database.env(**rotated_env)).test_client()
    assert messages(post_signed(rotated, "HER2", sender=OPTED_OUT)) == []  # found under the old key
    assert "HER2 positivo" in one_message(post_signed(rotated, "HER2", sender=ACTIVE))  # language kept
    report = run(database, "keys", **rotated_env)
    assert f"MBCSMS_SECRET (key id {key_id(NEW_SECRET)}): 2 senders, 1 opted out" in report
    assert f"#1 (key id {key_id(SECRET)}): 0 senders" in report  # the old secret can go now
    assert SECRET not in report and NEW_SECRET not in report
    # Re-keyed: the old secret alone no longer finds them (and the new one does without it).
    newest = create_app(database.env(MBCSMS_SECRET=NEW_SECRET)).test_client()
    assert messages(post_signed(newest, "HER2", sender=OPTED_OUT)) == []


def test_bad_rotation_settings_stop_start_up_with_one_line(tmp_path: Path) -> None:
    from mbcsms.config import ConfigError, Settings

    env = app_env(tmp_path)
    for value, words in [("short", "shorter than"), (SECRET, "is the current MBCSMS_SECRET"),
                         (f"{NEW_SECRET},{NEW_SECRET}", "twice")]:
        with pytest.raises(ConfigError, match=words) as raised:
            Settings.from_env({**env, "MBCSMS_PREVIOUS_SECRETS": value})
        assert str(raised.value).startswith("MBCSMS_PREVIOUS_SECRETS") and "\n" not in str(raised.value)
        assert value not in str(raised.value) or value == "short"
    for name in ("MBCSMS_STORE_TIMEOUT", "MBCSMS_STORE_RETRY_SECONDS", "MBCSMS_MIRROR_MAX_AGE"):
        for bad in ("soon", "0", "-1", "nan"):
            with pytest.raises(ConfigError, match=f"^{name} must"):
                Settings.from_env({**env, name: bad})


def test_a_secondary_twilio_token_is_accepted_during_a_rotation(tmp_path: Path) -> None:
    client = create_app(app_env(tmp_path, TWILIO_SECONDARY_AUTH_TOKEN="the-new-token-0123456789")).test_client()
    assert "HER2" in one_message(post_signed(client, "HER2", token="the-new-token-0123456789"))
    assert "HER2" in one_message(post_signed(client, "HER2"))  # the primary still works
    assert post_signed(client, "HER2", token="neither-token").status_code == 403
