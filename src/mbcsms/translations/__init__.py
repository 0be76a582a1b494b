"""The translation catalogs' workflow, for the staff who maintain them: extract the template
from the English content, update every language from it, compile, and start a new language.

English lives in ``content/topics.toml``; every other language in
``<locales>/<lang>/LC_MESSAGES/messages.po``. Only answers and menu titles are translations: the
keyword lists are plain files, ``<locales>/<lang>/keywords/<name>.txt``, that no command here
writes over (``new`` starts a language's empty ones). Beside this module, in this package:
:mod:`~mbcsms.translations.check` checks the catalogs, :mod:`~mbcsms.translations.preview` draws
the staff's HTML page, :mod:`~mbcsms.translations.babel_extract` is the Babel extractor that
reads the English content (``pybabel extract`` uses it too), and :mod:`~mbcsms.translations.cli`
holds the ``mbcsms translations`` commands, thin wrappers around the rest.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.catalog import Message
from babel.messages.extract import extract as run_extractor
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import denormalize, normalize, read_po, write_po

from ..catalog import (
    CONTENT_FILE,
    DOMAIN,
    PLACEHOLDER,
    SOURCE_LANGUAGE,
    CatalogError,
    available_languages,
    catalog_path,
    keyword_file,
    keyword_names,
    load_source,
    read_catalog,
    write_word_file,
)
from .babel_extract import extract as content_extractor

MAPPING_FILE = "babel.cfg"
TEMPLATE_FILE = f"{DOMAIN}.pot"
PROJECT = "mbcsms"

class TranslationsError(Exception):
    """A command that cannot run as asked; the message says what to do instead."""


# --- the template --------------------------------------------------------------------------


def project_version() -> str:
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        return "0"


def source_root() -> Path:
    """The source checkout the translation commands work on: the current directory when it
    holds babel.cfg (staff run the commands from the repo root, whatever the install), else
    the checkout this package runs from (an editable install).

    Extraction runs from there, so the .pot's references read
    "src/mbcsms/content/topics.toml:NN" wherever the command is started.
    """
    here = Path.cwd()
    if (here / MAPPING_FILE).is_file():
        return here
    return Path(__file__).resolve().parents[3]


def build_template(root: Path | None = None) -> PoCatalog:
    """Run Babel's extraction with the committed ``babel.cfg``: every string of the English
    content, with its msgctxt, translator comment and source line."""
    root = root or source_root()
    mapping = root / MAPPING_FILE
    if not mapping.is_file():
        raise TranslationsError(
            f"{mapping} not found: run the translation commands from a source checkout of mbcsms"
        )
    with mapping.open(encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(  # type: ignore[no-untyped-call]
            handle, filename=str(mapping)
        )
    template = PoCatalog(project=PROJECT, version=project_version(), fuzzy=False)
    try:
        for filename, lineno, message, comments, context in extract_from_dir(
            str(root), method_map, options_map
        ):
            template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context,
                         flags=_flags(message))
    except CatalogError as error:
        raise TranslationsError(str(error)) from None
    return template


def source_template(source_path: Path = CONTENT_FILE) -> PoCatalog:
    """The template of one content file, through the same extractor but without babel.cfg:
    ``check`` measures exactly the file it is given, checkout or not."""
    template = PoCatalog(project=PROJECT, version=project_version(), fuzzy=False)
    with source_path.open("rb") as handle:
        # The extractor keeps babel's protocol; babel's stub types it more narrowly than it calls
        # it.
        extracted = run_extractor(content_extractor, handle)  # type: ignore[arg-type]
        for lineno, message, comments, context in extracted:
            template.add(message, None, [(str(source_path), lineno)], auto_comments=comments, context=context,
                         flags=_flags(message))
    return template


def _flags(message: str | tuple[str, ...]) -> tuple[str, ...]:
    """``python-brace-format`` on every entry with a placeholder ({helpline}), whatever Babel's
    version detects: Poedit, Weblate and ``msgfmt --check`` then catch a broken one. A plural
    entry (a tuple of forms) has it if any of its forms has a placeholder."""
    forms = (message,) if isinstance(message, str) else message
    return ("python-brace-format",) if any(PLACEHOLDER.search(form) for form in forms) else ()


def template_entries(template: PoCatalog) -> dict[tuple[str, str], Message]:
    """(msgctxt, msgid) -> template message; the header entry left out."""
    return {(m.context or "", m.id): m for m in template if m.id and isinstance(m.id, str)}


def render_po(catalog: PoCatalog, omit_header: bool = False) -> bytes:
    # Unwrapped lines keep one answer on one line: diffs stay readable and grep finds them.
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=0, omit_header=omit_header, include_previous=True)
    return _previous_unwrapped(buffer.getvalue(), catalog)


def _previous_unwrapped(rendered: bytes, catalog: PoCatalog) -> bytes:
    """Babel wraps the previous English (``#| msgid``) as a comment at 76 columns whatever the
    width, and its continuation lines then read back as stray comments. Each such block is
    written again as gettext writes it, in catalog order (the order write_po follows)."""
    previous = [m.previous_id[0] for m in catalog if m.id and m.previous_id]
    if not previous:
        return rendered
    lines = rendered.decode("utf-8").split("\n")
    out: list[str] = []
    blocks = iter(previous)
    index = 0
    while index < len(lines):
        if not lines[index].startswith("#|"):
            out.append(lines[index])
            index += 1
            continue
        while index < len(lines) and lines[index].startswith("#|"):
            index += 1
        out.extend(f"#| msgid {normalize(next(blocks), prefix='#| ', width=0)}".split("\n"))
    return "\n".join(out).encode("utf-8")


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step, so an interrupted run never leaves half a catalog. The file
    gets the mode any new file of the user's gets (mkstemp's is 0600, which would lock out the
    rest of a team or a web server reading the preview)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it: put it straight back
    os.umask(mask)
    return mask


# --- extract, update, compile, new ---------------------------------------------------------


def translated_languages(locales: Path, lang: str | None = None) -> list[str]:
    """The languages with a catalog under ``locales`` (English is the source, never one)."""
    if not locales.is_dir():
        raise TranslationsError(f"{locales} is not a directory of catalogs")
    found = [code for code in available_languages(locales) if code != SOURCE_LANGUAGE]
    if lang is None:
        return found
    if lang not in found:
        raise TranslationsError(
            f"no catalog for {lang!r} in {locales} (found: {', '.join(found) or 'none'}); "
            f"create one with `mbcsms translations new {lang}`"
        )
    return [lang]


def extract(locales: Path, root: Path | None = None) -> Path:
    """Write ``<locales>/messages.pot`` from the English content file."""
    return _write_template(locales, build_template(root))


def _write_template(locales: Path, template: PoCatalog) -> Path:
    """With a header (charset, so msgfmt and msginit read it as UTF-8), rewritten only when more
    than its creation date would change: a date-only change is noise in git."""
    path = locales / TEMPLATE_FILE
    rendered = render_po(template)
    if path.is_file():
        try:
            with path.open("rb") as handle:
                old_date = read_po(handle).creation_date
        except Exception:  # unreadable: written afresh below
            old_date = None
        if old_date is not None:
            new_date = template.creation_date
            template.creation_date = old_date
            same = render_po(template) == path.read_bytes()
            template.creation_date = new_date
            if same:
                return path
    write_atomically(path, rendered)
    return path


def update(locales: Path, lang: str | None = None, root: Path | None = None) -> dict[str, bool]:
    """Extract afresh, then merge the template into each catalog, as ``pybabel update`` does.

    Changed English text keeps its old translation, marked fuzzy with the previous English
    shown (``#|``), so the translator sees what changed; entries whose English is gone are
    dropped (git keeps them). Returns, per language, whether its file changed.
    """
    languages = translated_languages(locales, lang)
    template = build_template(root)
    _write_template(locales, template)
    changed: dict[str, bool] = {}
    for code in languages:
        path = catalog_path(locales, code)
        catalog = read_catalog(path)  # a broken file stops here, naming file and line
        before = path.read_bytes()
        previous = _previous_from_comments(catalog)
        catalog.update(template, update_creation_date=False)
        catalog.obsolete.clear()
        for message in catalog:  # still fuzzy on the same English: keep what it was before
            key = (message.context or "", message.id)
            if message.id and message.fuzzy and not message.previous_id and key in previous:
                message.previous_id = [previous[key]]
        after = render_po(catalog)
        if after != before:
            catalog.creation_date = template.creation_date
            write_atomically(path, render_po(catalog))
        changed[code] = after != before
    return changed


def _previous_from_comments(catalog: PoCatalog) -> dict[tuple[str, str], str]:
    """Babel reads ``#|`` lines back as user comments ("| msgid ..."), and its update keeps them
    as such: take them out, and return each entry's previous English to put back."""
    found: dict[tuple[str, str], str] = {}
    for message in catalog:
        bars = [comment for comment in message.user_comments if comment.startswith("|")]
        if not message.id or not bars:
            continue
        message.user_comments = [comment for comment in message.user_comments if not comment.startswith("|")]
        parts = [bar[1:].strip() for bar in bars]
        if parts[0].startswith("msgid "):
            parts[0] = parts[0].removeprefix("msgid ")
            # An old wrapped block (ValueError, IndexError): not readable, dropped.
            with contextlib.suppress(ValueError, IndexError):
                found[(message.context or "", str(message.id))] = denormalize("\n".join(parts))
    return found


def compile_catalogs(locales: Path, lang: str | None = None) -> list[Path]:
    """Write ``messages.mo`` next to each catalog, for tools that want one (the bot reads the
    ``.po`` itself, and ``.mo`` files are never committed). Fuzzy entries are left out.

    Babel's own ``python-format`` check is not run: it fires on any "%" in the English ("6% of
    women"), but the bot never %-formats; ``check`` is the validation that matters here.
    """
    written = []
    for code in translated_languages(locales, lang):
        path = catalog_path(locales, code)
        catalog = read_catalog(path)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        target = path.with_suffix(".mo")
        write_atomically(target, buffer.getvalue())
        written.append(target)
    return written


def language_name(lang: str) -> str:
    try:
        return Locale.parse(lang).english_name or lang
    except (ValueError, TypeError, UnknownLocaleError):
        return lang


def new_language(locales: Path, lang: str, root: Path | None = None) -> Path:
    """Create ``<locales>/<lang>/LC_MESSAGES/messages.po`` with every entry untranslated."""
    if lang == SOURCE_LANGUAGE:
        raise TranslationsError("English is the source language: edit src/mbcsms/content/topics.toml")
    try:
        # Babel must know the language: the catalog header names it and its plural rules.
        locale = Locale.parse(lang)
    except (ValueError, UnknownLocaleError):
        raise TranslationsError(
            f"{lang!r} is not a language code Babel knows; use a code such as pt, vi, zh, ht or pt_BR"
        ) from None
    if str(locale) != lang:
        raise TranslationsError(f"write the language code as {str(locale)!r}, not {lang!r}")
    path = catalog_path(locales, lang)
    if path.exists():
        raise TranslationsError(f"{path} already exists; run `mbcsms translations update` to refresh it")
    template = build_template(root)
    catalog = PoCatalog(
        locale=locale,
        project=PROJECT,
        version=project_version(),
        language_team=f"{locale.english_name} <helpline-staff@example.org>",
        last_translator="mbcsms helpline staff",
        creation_date=template.creation_date,
        revision_date=datetime.now(UTC),
        fuzzy=False,
    )
    for message in template:
        if message.id:
            catalog.add(
                message.id, "", list(message.locations),
                auto_comments=list(message.auto_comments), context=message.context,
            )
    write_atomically(path, render_po(catalog))
    _write_template(locales, template)  # keep the template next to the catalogs, for Weblate and Poedit
    start_keyword_files(locales, lang, locale.english_name or lang)
    return path


def start_keyword_files(locales: Path, lang: str, name: str) -> list[Path]:
    """An empty keyword file for each list English has, saying what goes in it. Not a
    translation of the English list: people in danger, or asking, write their own words."""
    written = []
    for list_name in keyword_names(load_source()):
        english = keyword_file(locales, SOURCE_LANGUAGE, list_name)
        target = keyword_file(locales, lang, list_name)
        if not english.is_file() or target.exists():
            continue
        comment = (f"{name}: the {list_name!r} list, one phrase a line. Not a translation of\n"
                   f"{SOURCE_LANGUAGE}/keywords/{list_name}.txt: list what people really write in {name}.\n"
                   "See docs/translating.md, then run `mbcsms translations check`.")
        write_word_file(target, (), comment)
        written.append(target)
    return written
