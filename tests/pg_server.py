"""Real PostgreSQL for the tests: the shared server CI starts (MBCSMS_TEST_DATABASE_URL) and
throwaway servers a test can stop and start.

Without a server or PostgreSQL's programs these tests skip on a developer's machine, but fail in
CI (env CI set), where .ci/postgres.sh must have provided them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import psycopg
import pytest

URL_VARIABLE = "MBCSMS_TEST_DATABASE_URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip here, fail in CI: a CI run that silently skips PostgreSQL proves nothing."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: PostgreSQL tests must run, see .ci/postgres.sh)")
    pytest.skip(reason)


def shared_url() -> str:
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        unavailable(f"{URL_VARIABLE} is not set")
    return url


def with_search_path(url: str, schema: str) -> str:
    """The URL with every session's search_path set to ``schema``: a private set of tables."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}', safe='')}"


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new empty schema in the shared test database, dropped afterwards; yields its URL."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as error:
        unavailable(f"cannot reach the test database: {str(error).splitlines()[0]}")
    try:
        yield with_search_path(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's answer, Debian's versioned directories, or PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    candidates.extend(debian)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclass
class PgServer:
    """A throwaway cluster on 127.0.0.1 with trust authentication, for stop/start tests."""

    bindir: Path
    datadir: Path
    port: int

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *command: str) -> None:
        # initdb and postgres refuse to run as root: as root, run them as the postgres user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir / "data"), "-A", "trust",
                  "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -F"
                   " -c max_connections=40")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-l",
                  str(self.datadir / "server.log"), "-w", "-t", "30", "-o", options, "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m", "fast", "-w", "stop")


@contextmanager
def throwaway_server() -> Iterator[PgServer]:
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL's initdb/pg_ctl are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root without runuser: cannot run initdb as postgres")
    # Not pytest's tmp_path: as root it sits in a directory the postgres user cannot enter.
    datadir = Path(tempfile.mkdtemp(prefix="mbcsms-pg-"))
    if os.geteuid() == 0:
        shutil.chown(datadir, user="postgres", group="postgres")
    server = PgServer(bindir, datadir, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        with suppress(RuntimeError, OSError, subprocess.SubprocessError):  # already stopped
            server.stop()
        shutil.rmtree(datadir, ignore_errors=True)
