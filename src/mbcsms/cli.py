"""The ``mbcsms`` command: ``reply`` for staff and scripts, ``serve`` to run the webhook,
``release`` for the release phase (checks, then ``migrate``), ``translations`` for the catalogs.
Every command runs the same functions as the webhook, and reads (through ``Settings``) only the
settings it uses."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import click

from .catalog import CatalogError
from .config import ConfigError, Settings
from .conversation import Reply, SenderState
from .sms import count_segments

if TYPE_CHECKING:
    from flask import Flask

    from .store import StateStore


@click.group()
@click.version_option(package_name="mbcsms", prog_name="mbcsms")
def main() -> None:
    """mbcsms: a text-message support line for people living with metastatic breast cancer."""


def _reply_json(reply: Reply) -> str:
    """``body``: every message of the reply, a blank line between them (what the patient reads);
    ``segments``: the most any one message takes (each goes as its own SMS); ``messages``: each
    message with its own segments and encoding."""
    return json.dumps(
        {
            "topic": reply.topic,
            "lang": reply.lang,
            "body": "\n\n".join(reply.messages) if reply.body is not None else None,
            "segments": reply.segments,
            "encoding": reply.encoding,
            "messages": [
                {"body": text, "segments": count.segments, "encoding": count.encoding}
                for text, count in ((text, count_segments(text)) for text in reply.messages)
            ],
        },
        ensure_ascii=False,
    )


def _print(reply: Reply, as_json: bool) -> None:
    if as_json:
        click.echo(_reply_json(reply))
    elif reply.body is None:
        click.echo("(no reply)")
    else:
        # One line a reply in batch mode, so a script can pair answers with questions; a reply
        # of several messages shows them in order, " // " between them.
        click.echo(" // ".join(text.replace("\n", " / ") for text in reply.messages))


# Generic from click 8.2 on; our floor, 8.1.3, cannot be subscripted at run time.
class MomentType(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 date and time with its UTC offset: 2026-12-06T23:00:00-05:00."""

    name = "DATETIME"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value))
            except ValueError:
                self.fail(f"{value!r} is not an ISO date and time such as 2026-12-06T23:00:00-05:00", param, ctx)
        if moment.tzinfo is None or moment.utcoffset() is None:
            self.fail(
                f"{value!r} has no UTC offset: add one, such as 2026-12-06T23:00:00-05:00 (New York "
                "in winter) or 2026-07-06T23:00:00-04:00 (summer)", param, ctx,
            )
        return moment


@main.command()
@click.argument("message", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a reply.")
@click.option(
    "--from", "sender", metavar="NUMBER",
    help="Reply as to this sender, using the configured state store (MBCSMS_DB or DATABASE_URL).",
)
@click.option(
    "--at", "at", type=MomentType(), default=None, metavar="DATETIME",
    help="Answer as of this moment (ISO date and time with its offset, e.g. "
    "2026-12-06T23:00:00-05:00): what the helpline hours say, and the rate limit. Default: now.",
)
def reply(message: str | None, as_json: bool, sender: str | None, at: datetime | None) -> None:
    """Print the bot's reply to MESSAGE, or to each line of standard input.

    Without --from, each message is answered as from a new sender and nothing is stored.
    """
    from .bot import Inbound, OptOutNotRecorded, build_bot, build_conversation

    messages = [message] if message is not None else (line.rstrip("\r\n") for line in sys.stdin)

    def now() -> float:
        return at.timestamp() if at is not None else time.time()

    try:
        if sender is None:
            conversation = build_conversation(Settings.for_catalogs())
            for text in messages:
                answer, _ = conversation.reply_to(text, SenderState(), now())
                _print(answer, as_json)
            return
        bot = build_bot(Settings.for_replay())
        for text in messages:
            try:
                _print(bot.answer(Inbound(sender, text), now=now()), as_json)
            except OptOutNotRecorded:
                raise click.ClickException(
                    "the store is unavailable: the opt-out/opt-in was NOT recorded") from None
    except (CatalogError, ConfigError) as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option("--dev", is_flag=True, help="Local trial: 127.0.0.1 only, signatures NOT checked.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, show_default="$PORT or 5000")
def serve(dev: bool, port: int | None) -> None:
    """Run the webhook. Production runs gunicorn exactly as the Procfile does."""
    try:
        settings = Settings.from_env(dev=dev)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    port = port or settings.port
    if dev:
        from . import create_app

        try:
            app = create_app(settings)
        except (CatalogError, ConfigError) as error:
            raise click.ClickException(str(error)) from None
        click.secho(
            "DEVELOPMENT MODE: Twilio signatures are NOT checked. Listening on 127.0.0.1 only; "
            "never expose this to the internet.",
            fg="red", bold=True, err=True,
        )
        app.run(host="127.0.0.1", port=port, debug=False)
        return
    # gunicorn from the same environment as this command, activated or not.
    arguments = gunicorn_arguments(port, settings.web_concurrency)
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", *arguments])


# The access log says what happened, never who: method, status, latency. Not the path: gunicorn
# writes it unescaped, so a stranger's "/%22" or "/%0A{...}" would break the JSON line or forge
# another, and a path can carry whatever they type (a phone number). The app logs its own events.
ACCESS_LOG_FORMAT = '{"event": "http", "method": "%(m)s", "status": %(s)s, "latency_ms": %(M)s}'
WSGI_APP = "mbcsms.cli:wsgi_app()"
# Sets up prometheus-client's multiprocess mode for the workers (mbcsms/gunicorn_config.py).
GUNICORN_CONFIG = "python:mbcsms.gunicorn_config"


def gunicorn_arguments(port: int, workers: int) -> list[str]:
    """The Procfile's web command, word for word (a test holds them together)."""
    return ["--config", GUNICORN_CONFIG, "--bind", f"0.0.0.0:{port}", "--workers", str(workers),
            "--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT, WSGI_APP]


def _startup_errors() -> tuple[type[Exception], ...]:
    """What stops the web process at start with one line (a setting, a catalog, the understanding
    model's weights): the same for gunicorn's workers and the release phase."""
    from .understanding.model import ModelError

    return (CatalogError, ConfigError, ModelError)


def wsgi_app() -> Flask:
    """The app gunicorn runs: create_app, but a bad setting stops the server with one line naming
    it instead of a traceback per worker."""
    from . import create_app

    try:
        return create_app()
    except _startup_errors() as error:
        click.echo(f"mbcsms: {error}", err=True)
        # gunicorn's "App failed to load" exit status: the arbiter stops rather than respawning.
        raise SystemExit(4) from None


def check_startup(settings: Settings) -> None:
    """Load what the web process loads at start, without the store: the catalogs and the
    content file through the same wiring (``build_conversation``: keywords and everything the
    understander reads), and the understanding model's weights."""
    from .bot import build_conversation
    from .understanding.model import Model

    build_conversation(settings)
    Model.load()


@main.command()
def release() -> None:
    """The release phase (the Procfile's `release:`): check everything the web process will load
    (its settings, catalogs, content and understanding data), then migrate. A problem stops it
    with the line the web process would stop with, before the database is touched, so the
    running release keeps serving."""
    try:
        settings = Settings.from_env()
        check_startup(settings)
    except _startup_errors() as error:
        click.echo(f"mbcsms: {error}", err=True)
        raise SystemExit(1) from None
    click.echo("mbcsms: settings, catalogs, content and understanding data load")
    _migrate(lambda: settings)


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema (`mbcsms release` runs it after its checks); safe to
    run any number of times, and by several machines at once."""
    _migrate(Settings.for_store)


def _migrate(settings_of: Callable[[], Settings]) -> None:
    from .store import StoreError

    with _store(settings_of) as store:
        try:
            ready = store.migrate()
        except StoreError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"mbcsms: {ready}")


DEFAULT_INACTIVE_DAYS = 365


@main.command()
@click.option(
    "--inactive-days", type=click.IntRange(min=1), default=DEFAULT_INACTIVE_DAYS, show_default=True,
    help="Delete senders with no message for this many days (never one who opted out).",
)
def purge(inactive_days: int) -> None:
    """Retention: delete inactive senders (never an opted-out one: their opt-out is honoured
    forever) and answered message ids older than a day. Schedule it daily (docs/deploy.md)."""
    from .store import StoreError

    with _store(Settings.for_store) as store:
        try:
            store.migrate()
            senders, answered = store.purge(time.time(), inactive_days * 86400.0)
        except StoreError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"mbcsms: purged {senders} senders inactive for {inactive_days}+ days and {answered} old message ids")


@main.command()
def keys() -> None:
    """How many sender rows each secret still holds: MBCSMS_SECRET and each of
    MBCSMS_PREVIOUS_SECRETS. An old secret can leave the list once it holds none."""
    from .senders import key_id
    from .store import StoreError

    try:
        settings = Settings.for_keys()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    with _store(lambda: settings) as store:
        try:
            store.migrate()
            counts = {count.key_id: count for count in store.key_counts()}
        except StoreError as error:
            raise click.ClickException(str(error)) from None
    listed = [("MBCSMS_SECRET", settings.secret)] + [
        (f"MBCSMS_PREVIOUS_SECRETS #{n}", secret) for n, secret in enumerate(settings.previous_secrets, 1)
    ]
    for name, secret in listed:
        found = counts.pop(key_id(secret), None)
        held, opted_out = (found.senders, found.opted_out) if found else (0, 0)
        click.echo(f"{name} (key id {key_id(secret)}): {held} senders, {opted_out} opted out")
    unknown = counts.pop(None, None)
    if unknown is not None:
        click.echo(
            f"from before key ids were stored: {unknown.senders} senders, {unknown.opted_out} opted out"
            " (re-keyed when next seen; keep every secret they may be under listed)"
        )
    for other in counts.values():
        click.echo(f"a secret not listed (key id {other.key_id}): {other.senders} senders, "
                   f"{other.opted_out} opted out")


@contextmanager
def _store(settings_of: Callable[[], Settings]) -> Iterator[StateStore]:
    """The configured store, opened for a command and closed after it."""
    from .store import StoreError, open_store

    try:
        settings = settings_of()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    try:
        store = open_store(settings.database_url, settings.sqlite_path, prepare=False)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    try:
        yield store
    finally:
        store.close()


from .translations.cli import translations  # noqa: E402  (the staff's catalog commands)

main.add_command(translations)
from .training.cli import model  # noqa: E402  (build-time: train and measure the classifiers)

main.add_command(model)
