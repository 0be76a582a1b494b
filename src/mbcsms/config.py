"""Settings from the environment (12-factor), checked once at start-up.

A missing or malformed variable stops start-up with one line naming it, so a bad deploy fails at
release time instead of on a patient's message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .catalog import default_locales_dir

DEFAULT_DB = "mbcsms.db"
DEV_SECRET = "mbcsms-dev-only-not-secret"


class ConfigError(Exception):
    """One line naming the variable that is missing or bad."""


@dataclass(frozen=True)
class Settings:
    twilio_auth_token: str | None
    secret: str
    database_url: str | None
    sqlite_path: Path
    proxy_hops: int
    rate_limit: int
    rate_window_seconds: float
    locales: Path
    log_level: str
    dev: bool = False
    port: int = 5000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dev: bool = False) -> Settings:
        env = os.environ if env is None else env
        token = env.get("TWILIO_AUTH_TOKEN", "").strip() or None
        secret = env.get("MBCSMS_SECRET", "").strip()
        if not dev:
            if not token:
                raise ConfigError(
                    "TWILIO_AUTH_TOKEN is not set: it is needed to verify that requests come "
                    "from Twilio (use `mbcsms serve --dev` to try the bot locally without it)"
                )
            if not secret:
                raise ConfigError(
                    "MBCSMS_SECRET is not set: it keys the hash that stands in for phone "
                    "numbers (any long random string, e.g. `python -c 'import secrets; "
                    "print(secrets.token_hex(32))'`)"
                )
            if len(secret) < 16:
                raise ConfigError("MBCSMS_SECRET is too short: use at least 16 characters")
        database_url = env.get("DATABASE_URL", "").strip() or None
        if database_url:
            _check_database_url(database_url)
        log_level = env.get("MBCSMS_LOG_LEVEL", "INFO").strip().upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("MBCSMS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        locales = Path(env["MBCSMS_LOCALES"]) if env.get("MBCSMS_LOCALES") else default_locales_dir()
        if not locales.is_dir():
            raise ConfigError(f"MBCSMS_LOCALES is not a directory: {locales}")
        port = _integer(env, "PORT", 5000, minimum=1)
        if port > 65535:
            raise ConfigError(f"PORT must be a port number, not {port}")
        _integer(env, "WEB_CONCURRENCY", 2, minimum=1)
        return cls(
            twilio_auth_token=token,
            secret=secret or DEV_SECRET,
            database_url=database_url,
            sqlite_path=Path(env.get("MBCSMS_DB", "").strip() or DEFAULT_DB),
            proxy_hops=_integer(env, "MBCSMS_PROXY_HOPS", 1, minimum=0),
            rate_limit=_integer(env, "MBCSMS_RATE_LIMIT", 20, minimum=1),
            rate_window_seconds=float(_integer(env, "MBCSMS_RATE_WINDOW", 600, minimum=1)),
            locales=locales,
            log_level=log_level,
            port=port,
            dev=dev,
        )


def _check_database_url(url: str) -> None:
    if not re.match(r"^postgres(ql)?://", url):
        raise ConfigError("DATABASE_URL must start with postgres:// or postgresql://")
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    problem = "DATABASE_URL is not a valid PostgreSQL URL (postgres://user:password@host:port/dbname)"
    try:
        params = conninfo_to_dict(url)
    except Error:
        # libpq's own message may quote the URL, password included: name the variable only.
        raise ConfigError(problem) from None
    if not all(port.isdigit() or not port for port in str(params.get("port", "5432")).split(",")):
        raise ConfigError(problem)


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value
