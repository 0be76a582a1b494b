"""The ``mbcsms`` command: ``reply`` for staff and scripts, ``serve`` to run the webhook,
``translations`` for the catalogs. Every command runs the same functions as the webhook."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING

import click

from .catalog import Catalog, CatalogError
from .config import ConfigError, Settings
from .conversation import Conversation, RateLimit, Reply, SenderState

if TYPE_CHECKING:
    from flask import Flask


@click.group()
def main() -> None:
    """mbcsms: a text-message support line for people living with metastatic breast cancer."""


def _reply_json(reply: Reply) -> str:
    return json.dumps(
        {
            "topic": reply.topic,
            "lang": reply.lang,
            "body": reply.body,
            "segments": reply.segments,
            "encoding": reply.encoding,
        },
        ensure_ascii=False,
    )


def _print(reply: Reply, as_json: bool) -> None:
    if as_json:
        click.echo(_reply_json(reply))
    else:
        # One line a reply in batch mode, so a script can pair answers with questions.
        click.echo((reply.body or "").replace("\n", " / ") if reply.body is not None else "(no reply)")


@main.command()
@click.argument("message", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a reply.")
@click.option(
    "--from", "sender", metavar="NUMBER",
    help="Reply as to this sender, using the configured state store (MBCSMS_DB or DATABASE_URL).",
)
def reply(message: str | None, as_json: bool, sender: str | None) -> None:
    """Print the bot's reply to MESSAGE, or to each line of standard input.

    Without --from, each message is answered as from a new sender and nothing is stored.
    """
    messages = [message] if message is not None else (line.rstrip("\r\n") for line in sys.stdin)
    try:
        if sender is None:
            conversation = Conversation(Catalog.load())
            for text in messages:
                answer, _ = conversation.reply_to(text, SenderState(), time.time())
                _print(answer, as_json)
            return
        from .bot import Bot, Inbound, OptOutNotRecorded
        from .store import open_store

        settings = Settings.from_env(dev=True)
        if len(os.environ.get("MBCSMS_SECRET", "").strip()) < 16:
            raise click.UsageError(
                "reply --from needs the deployment's MBCSMS_SECRET (16+ characters): it keys the "
                "sender hash the store uses"
            )
        bot = Bot(
            Conversation(Catalog.load(settings.locales), RateLimit(settings.rate_limit, settings.rate_window_seconds)),
            open_store(settings.database_url, str(settings.sqlite_path)),
            settings.secret,
        )
        for text in messages:
            try:
                _print(bot.answer(Inbound(sender, text)), as_json)
            except OptOutNotRecorded:
                raise click.ClickException("the store is unavailable: the opt-out/opt-in was NOT recorded")
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
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", *gunicorn_arguments(port)])


# The access log says what happened, never who: method, status, latency. Not the path: gunicorn
# writes it unescaped, so a stranger's "/%22" or "/%0A{...}" would break the JSON line or forge
# another, and a path can carry whatever they type (a phone number). The app logs its own events.
ACCESS_LOG_FORMAT = '{"event": "http", "method": "%(m)s", "status": %(s)s, "latency_ms": %(M)s}'
WSGI_APP = "mbcsms.cli:wsgi_app()"


def gunicorn_arguments(port: int) -> list[str]:
    """The Procfile's web command, word for word (a test holds them together)."""
    workers = os.environ.get("WEB_CONCURRENCY", "2")
    return ["--bind", f"0.0.0.0:{port}", "--workers", workers, "--access-logfile", "-",
            "--access-logformat", ACCESS_LOG_FORMAT, WSGI_APP]


def wsgi_app() -> Flask:
    """The app gunicorn runs: create_app, but a bad setting stops the server with one line naming
    it instead of a traceback per worker."""
    from . import create_app

    try:
        return create_app()
    except (CatalogError, ConfigError) as error:
        click.echo(f"mbcsms: {error}", err=True)
        # gunicorn's "App failed to load" exit status: the arbiter stops rather than respawning.
        raise SystemExit(4) from None


@main.command()
def migrate() -> None:
    """Create the database tables (the Procfile's release phase); safe to run any number of times."""
    from .store import StoreError

    try:
        settings = Settings.from_env(dev=True)  # the release phase needs only the database
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    try:
        if settings.database_url:
            from .store_postgres import PostgresStore

            store = PostgresStore(settings.database_url, prepare=False)
            try:
                store.migrate()
            finally:
                store.close()
            click.echo("mbcsms: PostgreSQL schema is ready")
        else:
            from .store_sqlite import SQLiteStore

            sqlite = SQLiteStore(settings.sqlite_path)
            try:
                sqlite.check()
            finally:
                sqlite.close()
            click.echo(f"mbcsms: SQLite schema is ready in {settings.sqlite_path}")
    except StoreError as error:
        raise click.ClickException(str(error)) from None


from .translations_cli import translations  # noqa: E402  (the staff's catalog commands)

main.add_command(translations)
from .training.cli import model  # noqa: E402  (build-time: train and measure the classifiers)
main.add_command(model)
