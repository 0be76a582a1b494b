"""``mbcsms translations``: the catalog commands helpline staff run.

Thin on purpose: the work is in the rest of :mod:`mbcsms.translations`, so tests and scripts
call the same functions. Every command prints what it did and what to do next, and any unusable
file is reported as ``file:line: what is wrong`` instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from .. import translations as tr
from ..catalog import CatalogError, default_locales_dir
from ..config import Settings
from . import check as checking
from . import preview as previewing

locales_option = click.option(
    "--locales", "locales", type=click.Path(file_okay=False, path_type=Path),
    default=None, show_default="$MBCSMS_LOCALES, else the project's locales/",
    help="Directory holding <lang>/LC_MESSAGES/messages.po and <lang>/keywords/*.txt.",
)
lang_option = click.option("--lang", metavar="LANG", default=None, help="Only this language (e.g. es).")


def _locales(locales: Path | None) -> Path:
    """--locales, else $MBCSMS_LOCALES, else the source checkout's locales/ (the files staff
    edit, not the installed copy), else the catalogs shipped in the package."""
    if locales is not None:
        return locales
    configured = Settings.for_catalogs(must_exist=False).locales  # a command may create it
    if configured is not None:
        return configured
    checkout = tr.source_root() / "locales"
    return checkout if checkout.is_dir() else default_locales_dir()


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextmanager
def _errors() -> Iterator[None]:
    """Our expected failures become a one-line ``Error: file:line: ...`` and exit status 1."""
    try:
        yield
    except (tr.TranslationsError, CatalogError) as error:
        raise click.ClickException(str(error)) from None


@click.group()
def translations() -> None:
    """Extract, update, compile, check and preview the translation catalogs.

    \b
    Keywords are plain files, locales/<lang>/keywords/<name>.txt: edit them directly.
    Typical round after the English changed (src/mbcsms/content/topics.toml):
      mbcsms translations update     # new/changed English into every messages.po
      (translate in Poedit or Weblate)
      mbcsms translations check      # everything still to fix, with file and line
      mbcsms translations preview --html replies.html
    """


@translations.command()
@locales_option
def extract(locales: Path | None) -> None:
    """Write messages.pot (the template) from the English content, with babel.cfg."""
    with _errors():
        path = tr.extract(_locales(locales))
    click.echo(f"wrote {_shown(path)}")


@translations.command()
@lang_option
@locales_option
def update(lang: str | None, locales: Path | None) -> None:
    """Bring every language's messages.po up to date with the English.

    Extracts the template first. New English entries arrive empty, changed ones keep their old
    translation marked fuzzy (with the previous English shown), removed ones are dropped.
    """
    with _errors():
        changed = tr.update(_locales(locales), lang)
    for code, did_change in changed.items():
        click.echo(f"{code}: {'updated' if did_change else 'already up to date'}")
    click.echo("next: translate what is empty or fuzzy, then run `mbcsms translations check`")


@translations.command(name="compile")
@lang_option
@locales_option
def compile_(lang: str | None, locales: Path | None) -> None:
    """Write messages.mo files for tools that want them (the bot reads the .po itself)."""
    with _errors():
        written = tr.compile_catalogs(_locales(locales), lang)
    for path in written:
        click.echo(f"wrote {_shown(path)}")


@translations.command()
@click.argument("lang")
@locales_option
def new(lang: str, locales: Path | None) -> None:
    """Start a new language: create LANG/LC_MESSAGES/messages.po with every entry empty."""
    with _errors():
        path = tr.new_language(_locales(locales), lang)
    click.echo(f"created {_shown(path)} ({tr.language_name(lang)})")
    click.echo(
        f"next: translate every answer and title, and list the words people write in "
        f"{lang}/keywords/*.txt (crisis.txt first; common.txt and filler.txt too), one phrase a "
        "line, then run `mbcsms translations check`. No code change is needed."
    )


@translations.command()
@lang_option
@locales_option
def check(lang: str | None, locales: Path | None) -> None:
    """List everything a translator must fix; exit status 1 if there is anything."""
    with _errors():
        result = checking.check(_locales(locales), lang)
    cwd = Path.cwd()
    for problem in result.problems:
        click.echo(problem.describe(cwd))
    if result.ok:
        click.echo(result.summary())
        return
    click.echo(result.summary(), err=True)
    raise SystemExit(1)


@translations.command()
@click.option("--html", "html_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the page.")
@locales_option
def preview(html_file: Path, locales: Path | None) -> None:
    """Write one HTML page with every reply in every language, problems flagged."""
    with _errors():
        result = checking.check(_locales(locales))
        tr.write_atomically(html_file, previewing.preview_html(result, Path.cwd()).encode("utf-8"))
    flagged = f", {len(result.problems)} problems flagged" if result.problems else ", no problems"
    click.echo(f"wrote {_shown(html_file)} ({len(result.measures)} replies{flagged})")
