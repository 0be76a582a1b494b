"""Settings from the environment (12-factor): the one module that reads it.

Each command reads, and so checks, only the variables it uses (``Settings.from_env`` for the web
app and ``mbcsms serve``; the ``for_*`` constructors for the other commands), and passes the
Settings down. A missing or malformed variable stops start-up with one line naming it, so a bad
deploy fails at release time instead of on a patient's message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DB = "mbcsms.db"
DEV_SECRET = "mbcsms-dev-only-not-secret"
MIN_SECRET_LENGTH = 16


class ConfigError(Exception):
    """One line naming the variable that is missing or bad."""


def environment(overrides: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """The process environment, with ``overrides`` on top (handy in tests)."""
    return {**os.environ, **overrides} if overrides else os.environ


@dataclass(frozen=True)
class Settings:
    """What the app and the commands are configured with. A field a command does not read keeps
    its default here.

    Outside dev mode a Settings always has a Twilio Auth Token and a real secret, however it is
    made (``from_env``, ``dataclasses.replace``, a test): ``__post_init__`` refuses it otherwise.
    """

    twilio_auth_token: str | None = None
    secret: str = DEV_SECRET
    database_url: str | None = None
    sqlite_path: Path = Path(DEFAULT_DB)
    proxy_hops: int = 1
    rate_limit: int = 20
    rate_window_seconds: float = 600.0
    locales: Path | None = None  # MBCSMS_LOCALES; None: the catalogs shipped with the package
    log_level: str = "INFO"
    dev: bool = False  # `serve --dev`, and the commands that answer no request: signatures not checked
    port: int = 5000
    web_concurrency: int = 2
    # Rotation: older MBCSMS_SECRET values still looked up (and re-keyed), newest first.
    previous_secrets: tuple[str, ...] = ()
    twilio_secondary_auth_token: str | None = None
    # Outages: how long a request may wait on the store, how long the breaker stays open, and how
    # old the local mirror of opt-outs (PostgreSQL) may be when the store fails.
    store_timeout_seconds: float = 1.0
    store_retry_seconds: float = 5.0
    mirror_max_age_seconds: float = 5.0
    local_state: Path | None = None  # MBCSMS_LOCAL_STATE; None: see local_state_path()
    # GET /metrics: served only with this bearer token (None: 404), from prometheus-client's
    # multiprocess directory when gunicorn runs several workers (mbcsms.gunicorn_config).
    metrics_token: str | None = None
    metrics_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.dev:
            return
        if not (self.twilio_auth_token or "").strip():
            raise ConfigError(
                "TWILIO_AUTH_TOKEN is not set: it is needed to verify that requests come "
                "from Twilio (use `mbcsms serve --dev` to try the bot locally without it)"
            )
        if not self.secret.strip() or self.secret == DEV_SECRET:
            raise ConfigError(
                "MBCSMS_SECRET is not set: it keys the hash that stands in for phone "
                "numbers (any long random string, e.g. `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`)"
            )
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"MBCSMS_SECRET is too short: use at least {MIN_SECRET_LENGTH} characters")

    def local_state_path(self) -> Path:
        """The local file of this server (opt changes taken during an outage, and the mirror of
        opt-outs for PostgreSQL): MBCSMS_LOCAL_STATE, else beside the SQLite file (a persistent
        disk), else in the temp directory, named after a hash of DATABASE_URL."""
        if self.local_state is not None:
            return self.local_state
        if not self.database_url:
            return self.sqlite_path.with_name(self.sqlite_path.name + "-local")
        import hashlib
        import tempfile

        digest = hashlib.sha256(self.database_url.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"mbcsms-local-{digest}.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dev: bool = False) -> Settings:
        """Everything the web app and gunicorn use (``create_app``, ``mbcsms serve``), all checked.
        ``dev``: `mbcsms serve --dev`, which needs no token and no secret."""
        env = environment() if env is None else env
        database_url, sqlite_path = _store(env)
        log_level = env.get("MBCSMS_LOG_LEVEL", "INFO").strip().upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("MBCSMS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        locales = _locales(env)
        port = _integer(env, "PORT", 5000, minimum=1)
        if port > 65535:
            raise ConfigError(f"PORT must be a port number, not {port}")
        web_concurrency = _integer(env, "WEB_CONCURRENCY", 2, minimum=1)
        rate_limit, rate_window_seconds = _rate_limit(env)
        secret = _text(env, "MBCSMS_SECRET") or DEV_SECRET
        return cls(
            twilio_auth_token=_text(env, "TWILIO_AUTH_TOKEN") or None,
            twilio_secondary_auth_token=_text(env, "TWILIO_SECONDARY_AUTH_TOKEN") or None,
            secret=secret,
            previous_secrets=_previous_secrets(env, secret),
            database_url=database_url,
            sqlite_path=sqlite_path,
            proxy_hops=_integer(env, "MBCSMS_PROXY_HOPS", 1, minimum=0),
            rate_limit=rate_limit,
            rate_window_seconds=rate_window_seconds,
            locales=locales,
            log_level=log_level,
            dev=dev,
            port=port,
            web_concurrency=web_concurrency,
            metrics_token=_metrics_token(env),
            metrics_dir=_metrics_dir(env),
            **_outage(env),
        )

    @classmethod
    def for_replay(cls, env: Mapping[str, str] | None = None) -> Settings:
        """`mbcsms reply --from`: the deployment's store, secret, catalogs and rate limit, and
        nothing of the web server."""
        env = environment() if env is None else env
        secret = _text(env, "MBCSMS_SECRET")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"reply --from needs the deployment's MBCSMS_SECRET ({MIN_SECRET_LENGTH}+ characters): "
                "it keys the sender hash the store uses"
            )
        database_url, sqlite_path = _store(env)
        rate_limit, rate_window_seconds = _rate_limit(env)
        return cls(
            secret=secret, database_url=database_url, sqlite_path=sqlite_path, rate_limit=rate_limit,
            rate_window_seconds=rate_window_seconds, locales=_locales(env), dev=True,
            previous_secrets=_previous_secrets(env, secret), **_outage(env),
        )

    @classmethod
    def for_store(cls, env: Mapping[str, str] | None = None) -> Settings:
        """`mbcsms migrate` (the release phase): the database only."""
        database_url, sqlite_path = _store(environment() if env is None else env)
        return cls(database_url=database_url, sqlite_path=sqlite_path, dev=True)

    @classmethod
    def for_keys(cls, env: Mapping[str, str] | None = None) -> Settings:
        """`mbcsms keys`: the database, MBCSMS_SECRET and MBCSMS_PREVIOUS_SECRETS."""
        env = environment() if env is None else env
        secret = _text(env, "MBCSMS_SECRET")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"MBCSMS_SECRET is not set (or shorter than {MIN_SECRET_LENGTH} characters)")
        database_url, sqlite_path = _store(env)
        return cls(secret=secret, previous_secrets=_previous_secrets(env, secret),
                   database_url=database_url, sqlite_path=sqlite_path, dev=True)

    @classmethod
    def for_catalogs(cls, env: Mapping[str, str] | None = None, *, must_exist: bool = True) -> Settings:
        """`mbcsms reply` without --from, and the `translations` commands: the catalogs only.
        ``must_exist`` False: a directory the command may create (`translations extract`, `new`)."""
        env = environment() if env is None else env
        return cls(locales=_locales(env, must_exist=must_exist), dev=True)


def _text(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _store(env: Mapping[str, str]) -> tuple[str | None, Path]:
    """DATABASE_URL (checked) and MBCSMS_DB: which store, and where."""
    database_url = _text(env, "DATABASE_URL") or None
    if database_url:
        _check_database_url(database_url)
    return database_url, Path(_text(env, "MBCSMS_DB") or DEFAULT_DB)


def _rate_limit(env: Mapping[str, str]) -> tuple[int, float]:
    return (
        _integer(env, "MBCSMS_RATE_LIMIT", 20, minimum=1),
        float(_integer(env, "MBCSMS_RATE_WINDOW", 600, minimum=1)),
    )


def _previous_secrets(env: Mapping[str, str], current: str) -> tuple[str, ...]:
    raw = env.get("MBCSMS_PREVIOUS_SECRETS", "")
    secrets = tuple(part.strip() for part in raw.split(",") if part.strip())
    for secret in secrets:
        # Never echo a secret: say which one, by position.
        position = secrets.index(secret) + 1
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"MBCSMS_PREVIOUS_SECRETS: secret #{position} is shorter than {MIN_SECRET_LENGTH} characters"
            )
        if secret == current:
            raise ConfigError(f"MBCSMS_PREVIOUS_SECRETS: secret #{position} is the current MBCSMS_SECRET")
    if len(set(secrets)) != len(secrets):
        raise ConfigError("MBCSMS_PREVIOUS_SECRETS lists the same secret twice")
    return secrets


MIN_METRICS_TOKEN_LENGTH = 16


def _metrics_token(env: Mapping[str, str]) -> str | None:
    token = _text(env, "MBCSMS_METRICS_TOKEN")
    if not token:
        return None
    # Never echo the token: say what is wrong with it.
    if len(token) < MIN_METRICS_TOKEN_LENGTH:
        raise ConfigError(f"MBCSMS_METRICS_TOKEN is too short: use at least {MIN_METRICS_TOKEN_LENGTH} characters")
    if not re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", token):
        raise ConfigError("MBCSMS_METRICS_TOKEN may hold only letters, digits and -._~+/ (a bearer token)")
    return token


def _metrics_dir(env: Mapping[str, str]) -> Path | None:
    """prometheus-client's own PROMETHEUS_MULTIPROC_DIR (gunicorn's config sets it)."""
    configured = _text(env, "PROMETHEUS_MULTIPROC_DIR")
    if not configured:
        return None
    if not Path(configured).is_dir():
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR is not a directory: {configured}")
    return Path(configured)


def _outage(env: Mapping[str, str]) -> dict[str, Any]:
    local = _text(env, "MBCSMS_LOCAL_STATE")
    return {
        "store_timeout_seconds": _seconds(env, "MBCSMS_STORE_TIMEOUT", 1.0, 0.05, 10.0),
        "store_retry_seconds": _seconds(env, "MBCSMS_STORE_RETRY_SECONDS", 5.0, 0.1, 600.0),
        "mirror_max_age_seconds": _seconds(env, "MBCSMS_MIRROR_MAX_AGE", 5.0, 1.0, 3600.0),
        "local_state": Path(local) if local else None,
    }


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not minimum <= value <= maximum:  # also refuses nan
        raise ConfigError(f"{name} must be between {minimum:g} and {maximum:g} seconds, not {raw}")
    return value


def _locales(env: Mapping[str, str], *, must_exist: bool = True) -> Path | None:
    configured = env.get("MBCSMS_LOCALES")
    if not configured:
        return None
    locales = Path(configured)
    if must_exist and not locales.is_dir():
        raise ConfigError(f"MBCSMS_LOCALES is not a directory: {locales}")
    return locales


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
