"""The translation catalogs, for the staff who maintain them: extract, update, compile, create,
check and preview.

English lives in ``content/topics.toml``; every other language in
``<locales>/<lang>/LC_MESSAGES/messages.po``. ``check`` finds everything a translator must fix
before the bot may send a language (untranslated or fuzzy entries, stale ones, broken
placeholders, replies over their SMS budget, keywords claimed twice, topics with no keywords),
each with file and line; ``preview_html`` shows every reply in every language with the same
findings next to them. The ``mbcsms translations`` commands are thin wrappers around these.
"""

from __future__ import annotations

import html
import io
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.catalog import Message
from babel.messages.extract import extract as run_extractor
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, write_po

from .babel_extract import extract as content_extractor
from .catalog import (
    CONTENT_FILE,
    DOMAIN,
    PLACEHOLDER,
    SOURCE_LANGUAGE,
    Catalog,
    CatalogError,
    SourceContent,
    Translations,
    available_languages,
    catalog_path,
    join_keywords,
    load_source,
    load_translations,
    read_catalog,
)
from .sms import GSM7_BASIC, GSM7_EXTENDED, UCS2, SegmentCount, count_segments
from .understand import tokenize

MAPPING_FILE = "babel.cfg"
TEMPLATE_FILE = f"{DOMAIN}.pot"
PROJECT = "mbcsms"

# Kinds of problem, as printed by ``check`` and shown as badges by ``preview``.
BROKEN = "broken"
MISSING = "missing"
UNTRANSLATED = "untranslated"
FUZZY = "fuzzy"
STALE = "stale"
DUPLICATE = "duplicate"
PLACEHOLDERS = "placeholders"
BUDGET = "over budget"
KEYWORD_CONFLICT = "keyword conflict"
NO_KEYWORDS = "no keywords"


class TranslationsError(Exception):
    """A command that cannot run as asked; the message says what to do instead."""


@dataclass(frozen=True)
class Problem:
    """One thing a translator must fix, located as precisely as the files allow."""

    lang: str
    kind: str
    path: Path
    line: int  # 1-based; 0 when the entry is not in the file at all
    context: str  # the msgctxt ("answer:her2"), or "" for the file as a whole
    detail: str
    msgid: str = ""
    topic: str | None = None  # the topic whose reply this concerns, for the preview

    def location(self, relative_to: Path | None = None) -> str:
        path = self.path
        if relative_to is not None:
            try:
                path = path.resolve().relative_to(relative_to.resolve())
            except ValueError:
                pass
        return f"{path}:{self.line}" if self.line else str(path)

    def describe(self, relative_to: Path | None = None) -> str:
        """One line: ``file:line: [lang] msgctxt "msgid…": kind: what to do``."""
        what = self.context or "(file)"
        if self.msgid:
            what += f' "{shorten(self.msgid, 40)}"'
        return f"{self.location(relative_to)}: [{self.lang}] {what}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Measure:
    """A reply exactly as the bot sends it, and what it costs."""

    topic: str
    lang: str
    text: str
    count: SegmentCount
    budget: int

    @property
    def over_budget(self) -> bool:
        return self.count.segments > self.budget


@dataclass
class CheckResult:
    """Everything ``check`` found; ``preview_html`` draws the same data."""

    languages: list[str]
    source: SourceContent | None
    catalog: Catalog | None
    problems: list[Problem] = field(default_factory=list)
    measures: dict[tuple[str, str], Measure] = field(default_factory=dict)
    broken: dict[str, Problem] = field(default_factory=dict)  # lang -> why it cannot be read

    @property
    def ok(self) -> bool:
        return not self.problems

    def problems_for(self, lang: str, topic: str | None = None) -> list[Problem]:
        return [p for p in self.problems if p.lang == lang and (topic is None or p.topic == topic)]

    def summary(self) -> str:
        if self.ok:
            replies = len(self.measures)
            languages = len(self.languages)
            return (
                f"OK: {languages} language{'s' if languages != 1 else ''} ({', '.join(self.languages)}), "
                f"{replies} replies within budget, no problems."
            )
        counts = defaultdict(int)
        for problem in self.problems:
            counts[problem.lang] += 1
        per_lang = ", ".join(f"{counts[lang]} in {lang}" for lang in self.languages if counts[lang])
        count = len(self.problems)
        return f"{count} problem{'s' if count != 1 else ''} ({per_lang}): fix them, then run the check again."


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


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
    return Path(__file__).resolve().parents[2]


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
        method_map, options_map = parse_mapping_cfg(handle, filename=str(mapping))
    template = PoCatalog(project=PROJECT, version=project_version(), fuzzy=False)
    try:
        for filename, lineno, message, comments, context in extract_from_dir(
            str(root), method_map, options_map
        ):
            template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    except CatalogError as error:
        raise TranslationsError(str(error)) from None
    return template


def source_template(source_path: Path = CONTENT_FILE) -> PoCatalog:
    """The template of one content file, through the same extractor but without babel.cfg:
    ``check`` measures exactly the file it is given, checkout or not."""
    template = PoCatalog(project=PROJECT, version=project_version(), fuzzy=False)
    with source_path.open("rb") as handle:
        for lineno, message, comments, context in run_extractor(content_extractor, handle):
            template.add(message, None, [(str(source_path), lineno)], auto_comments=comments, context=context)
    return template


def template_entries(template: PoCatalog) -> dict[tuple[str, str], Message]:
    """(msgctxt, msgid) -> template message; the header entry left out."""
    return {(m.context or "", m.id): m for m in template if m.id and isinstance(m.id, str)}


def render_po(catalog: PoCatalog, omit_header: bool = False) -> bytes:
    # Unwrapped lines keep one answer on one line: diffs stay readable and grep finds them.
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=None, omit_header=omit_header, include_previous=True)
    return buffer.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step, so an interrupted run never leaves half a catalog."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
    path = locales / TEMPLATE_FILE
    # No header: it would only carry a creation date, and a date-only change is noise in git.
    write_atomically(path, render_po(template, omit_header=True))
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
        catalog.update(template, update_creation_date=False)
        catalog.obsolete.clear()
        after = render_po(catalog)
        if after != before:
            catalog.creation_date = template.creation_date
            write_atomically(path, render_po(catalog))
        changed[code] = after != before
    return changed


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
        revision_date=datetime.now(timezone.utc),
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
    return path


# --- check ---------------------------------------------------------------------------------


def describe_catalog_error(error: CatalogError) -> tuple[int, str]:
    """The line (1-based, 0 if unknown) and the message of an unreadable catalog."""
    cause = error.__cause__
    line = cause.lineno + 1 if isinstance(cause, PoFileError) else 0
    return line, str(error)


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def non_gsm_characters(text: str) -> str:
    """The characters that force a reply into UCS-2, for a translator looking for room."""
    found: list[str] = []
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED and ch not in found:
            found.append(ch)
    return " ".join(found)


def context_lines(path: Path) -> dict[str, list[int]]:
    """Lines of each live (not ``#~``) single-line msgctxt: Babel silently merges an entry that
    appears twice, so a duplicate is only visible in the text itself."""
    lines: dict[str, list[int]] = defaultdict(list)
    pattern = re.compile(r'^msgctxt "((?:[^"\\]|\\.)+)"\s*$')
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = pattern.match(line)
        if match:
            lines[match.group(1)].append(number)
    return lines


def _topic_of(context: str) -> str | None:
    kind, _, name = context.partition(":")
    return name if kind in ("answer", "title", "keywords") and name else None


def _entry_problems(
    lang: str, path: Path, template: dict[tuple[str, str], Message]
) -> tuple[list[Problem], Translations | None, dict[str, int]]:
    """Problems of one catalog file entry by entry; when it could be read, its translations
    (as the bot loads them) and the line of each msgctxt's msgid."""
    try:
        po = read_catalog(path)
    except CatalogError as error:
        line, message = describe_catalog_error(error)
        return [Problem(lang, BROKEN, path, line, "", f"{message} (the bot will not start)")], None, {}

    problems: list[Problem] = []
    found: dict[tuple[str, str], Message] = {
        (m.context or "", m.id): m for m in po if m.id and isinstance(m.id, str)
    }
    for key in template:
        context, msgid = key
        topic = _topic_of(context)
        message = found.get(key)
        no_keywords = (
            " (until then this topic has no keywords in this language)"
            if context.startswith("keywords:") else ""
        )
        if message is None:
            problems.append(Problem(
                lang, MISSING, path, 0, context,
                "not in the file: run `mbcsms translations update`, then translate it" + no_keywords,
                msgid, topic,
            ))
            continue
        text = message.string if isinstance(message.string, str) else ""
        if not text.strip():
            problems.append(Problem(
                lang, UNTRANSLATED, path, message.lineno, context,
                "no translation: the bot sends the English" + no_keywords
                if context.startswith(("answer:", "title:")) else "no translation" + no_keywords,
                msgid, topic,
            ))
            continue
        if message.fuzzy:
            problems.append(Problem(
                lang, FUZZY, path, message.lineno, context,
                "marked fuzzy (the English changed or the text is a guess): check it, then clear "
                "the fuzzy mark; until then the bot ignores it" + no_keywords,
                msgid, topic,
            ))
        expected, actual = placeholders(msgid), placeholders(text)
        if expected != actual:
            problems.append(Problem(
                lang, PLACEHOLDERS, path, message.lineno, context,
                f"placeholders must be exactly as in the English: expected {' '.join(expected) or 'none'}, "
                f"found {' '.join(actual) or 'none'}",
                msgid, topic,
            ))
        if context.startswith("keywords:") and not message.fuzzy and not any(
            tokenize(word) for word in text.replace("\n", ",").split(",")
        ):
            problems.append(Problem(
                lang, NO_KEYWORDS, path, message.lineno, context,
                "no usable keyword: list the words people type, separated by commas", msgid, topic,
            ))

    for key, message in found.items():
        if key not in template:
            problems.append(Problem(
                lang, STALE, path, message.lineno, key[0],
                "its English no longer exists: run `mbcsms translations update`, or delete the entry",
                key[1], _topic_of(key[0]),
            ))
    for key, message in po.obsolete.items():
        problems.append(Problem(
            lang, STALE, path, message.lineno, message.context or "",
            "old entry kept as a comment (#~): delete it", message.id if isinstance(message.id, str) else "",
        ))
    for context, lines in context_lines(path).items():
        for line in lines[1:]:
            problems.append(Problem(
                lang, DUPLICATE, path, line, context,
                f"the same entry appears more than once (lines {', '.join(map(str, lines))}): keep one",
                topic=_topic_of(context),
            ))

    translations = load_translations(path.parents[2], lang)
    lines = {context: message.lineno for (context, _), message in found.items()}
    return problems, translations, lines


def _source_location(template: dict[tuple[str, str], Message], context: str) -> int:
    for (entry_context, _), message in template.items():
        if entry_context == context and message.locations:
            return int(message.locations[0][1] or 0)
    return 0


def _entry_line(po_lines: dict[str, dict[str, int]], lang: str, context: str) -> int:
    return po_lines.get(lang, {}).get(context, 0)


def check(locales: Path, lang: str | None = None, source_path: Path = CONTENT_FILE) -> CheckResult:
    """Everything a translator must fix in ``locales`` (and in the English, for budgets and
    keywords), with file and line. ``lang`` limits the report to one language."""
    if not locales.is_dir():
        raise TranslationsError(f"{locales} is not a directory of catalogs")
    languages = available_languages(locales)
    if lang is not None and lang not in languages:
        raise TranslationsError(
            f"no catalog for {lang!r} in {locales} (found: {', '.join(languages)})"
        )
    try:
        source = load_source(source_path)
    except CatalogError as error:
        problem = Problem(SOURCE_LANGUAGE, BROKEN, source_path, 0, "", str(error))
        return CheckResult(languages, None, None, [problem], broken={SOURCE_LANGUAGE: problem})
    template = template_entries(source_template(source_path))

    result = CheckResult(languages, source, None)
    translations: dict[str, Translations] = {}
    paths: dict[str, Path] = {SOURCE_LANGUAGE: source_path}
    po_lines: dict[str, dict[str, int]] = {
        SOURCE_LANGUAGE: {context: _source_location(template, context) for context, _ in template}
    }
    for code in languages:
        if code == SOURCE_LANGUAGE:
            continue
        path = catalog_path(locales, code)
        paths[code] = path
        problems, loaded, lines = _entry_problems(code, path, template)
        result.problems.extend(problems)
        if loaded is None:
            result.broken[code] = problems[0]
            continue
        translations[code] = loaded
        po_lines[code] = lines

    catalog = Catalog(source, translations)
    result.catalog = catalog
    readable = catalog.languages

    # Budgets: the reply exactly as sent, menu and placeholders included.
    for code in readable:
        for topic in source.topics:
            text = catalog.render(topic.id, code)
            measure = Measure(topic.id, code, text, count_segments(text), topic.budget)
            result.measures[(topic.id, code)] = measure
            if measure.over_budget:
                count = measure.count
                why = ""
                if count.encoding == UCS2:
                    why = (f"; it needs UCS-2 (67 characters a segment) because of: "
                           f"{non_gsm_characters(text)}")
                composed = " (with the menu it includes)" if topic.id == "start" else ""
                context = f"answer:{topic.id}"
                result.problems.append(Problem(
                    code, BUDGET, paths[code], _entry_line(po_lines, code, context), context,
                    f"the reply{composed} takes {count.segments} SMS segments "
                    f"({count.units} characters, {count.encoding}), its budget is "
                    f"{topic.budget}{why}: shorten it",
                    topic.answer, topic.id,
                ))

    # Keywords: a phrase may lead to one topic only, in its own language and across languages
    # (the bot keeps one table for all languages, so the second claim would never win).
    claimed: dict[tuple[str, ...], tuple[str, str, str]] = {}  # phrase -> topic, lang, as written
    for code in readable:
        own: dict[tuple[str, ...], tuple[str, str]] = {}
        for topic in source.topics:
            context = f"keywords:{topic.id}"
            words = catalog.keywords(topic, code)
            if topic.keywords and not words and not _already_reported(result.problems, code, context):
                result.problems.append(Problem(
                    code, NO_KEYWORDS, paths[code], _entry_line(po_lines, code, context), context,
                    "this topic has keywords in English but none in this language",
                    join_keywords(topic.keywords), topic.id,
                ))
            for word in words:
                phrase = tuple(tokenize(word))
                if not phrase:
                    continue
                line = _entry_line(po_lines, code, context)
                mine = own.get(phrase)
                if mine is not None and mine[0] != topic.id:
                    other_line = _entry_line(po_lines, code, f"keywords:{mine[0]}")
                    result.problems.append(Problem(
                        code, KEYWORD_CONFLICT, paths[code], line, context,
                        f"keyword {word!r} is also a keyword of topic {mine[0]} ({mine[1]!r}, "
                        f"line {other_line}): keep it in one topic only",
                        join_keywords(topic.keywords), topic.id,
                    ))
                    continue
                own.setdefault(phrase, (topic.id, word))
                other = claimed.get(phrase)
                if other is not None and other[0] != topic.id and other[1] != code:
                    result.problems.append(Problem(
                        code, KEYWORD_CONFLICT, paths[code], line, context,
                        f"keyword {word!r} is a keyword of topic {other[0]} in {other[1]} "
                        f"({other[2]!r}); the bot cannot tell which is meant: use another word",
                        join_keywords(topic.keywords), topic.id,
                    ))
                claimed.setdefault(phrase, (topic.id, code, word))

    if lang is not None:
        result.problems = [p for p in result.problems if p.lang == lang]
        result.languages = [lang]
        result.measures = {key: m for key, m in result.measures.items() if m.lang == lang}
    order = {code: index for index, code in enumerate(languages)}
    result.problems.sort(key=lambda p: (order.get(p.lang, 99), str(p.path), p.line, p.context))
    return result


def _already_reported(problems: Iterable[Problem], lang: str, context: str) -> bool:
    return any(p.lang == lang and p.context == context for p in problems)


# --- preview -------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
.lead { color: #555; margin: 0 0 1rem; }
.legend { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; padding: .6rem .8rem; background: #f5f5f7;
  border-radius: 6px; margin-bottom: 1rem; font-size: .9rem; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #d2d2d7; padding: .5rem .6rem; vertical-align: top; text-align: left; }
thead th { background: #f5f5f7; position: sticky; top: 0; }
thead th:first-child { width: 10rem; }
tbody th { background: #fafafa; font-weight: 600; }
tbody th small { display: block; font-weight: normal; color: #666; }
td.bad { background: #fff5f5; border-left: 3px solid #d70015; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; margin: .35rem 0; }
.nl { color: #a0a0a8; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .78rem;
  line-height: 1.5; font-weight: 600; white-space: nowrap; }
.ok { background: #e3f5e6; color: #1b6b2c; }
.over, .problem { background: #d70015; color: #fff; }
.gsm { background: #e8eefc; color: #1f4aa8; }
.ucs { background: #fdf0dc; color: #8a4b00; }
.meta { color: #555; font-size: .82rem; }
ul.problems { margin: .3rem 0 0; padding-left: 1.1rem; font-size: .85rem; color: #8b0010; }
details { font-size: .82rem; color: #444; margin-top: .3rem; }
.summary { margin: 0 0 1rem; }
.summary li { margin: .15rem 0; }
.clean { color: #1b6b2c; font-weight: 600; }
"""


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _text_html(text: str) -> str:
    # A visible mark where the SMS has a line break, so staff see that it is one.
    return '<span class="nl">↵</span>\n'.join(_escape(line) for line in text.split("\n"))


def _problem_item(problem: Problem, relative_to: Path | None, with_lang: bool = False) -> str:
    where = problem.location(relative_to) if with_lang or not problem.line else f"line {problem.line}"
    lang = f"<strong>{_escape(problem.lang)}</strong> " if with_lang else ""
    context = f" <code>{_escape(problem.context)}</code>" if problem.context else ""
    return (
        f'<li>{lang}<span class="badge problem">{_escape(problem.kind)}</span>{context} '
        f"({_escape(where)}): {_escape(problem.detail)}</li>"
    )


def _cell(result: CheckResult, topic_id: str, lang: str, relative_to: Path | None) -> str:
    if lang in result.broken:
        return '<td class="bad"><span class="badge problem">broken</span> catalog cannot be read</td>'
    measure = result.measures.get((topic_id, lang))
    problems = result.problems_for(lang, topic_id)
    if measure is None:
        return "<td></td>"
    count = measure.count
    segments = f"{count.segments} segment{'s' if count.segments != 1 else ''} of {measure.budget}"
    encoding = "ucs" if count.encoding == UCS2 else "gsm"
    parts = [
        f'<td class="{"bad" if problems else "good"}">',
        f'<div class="meta"><span class="badge {"over" if measure.over_budget else "ok"}">{segments}</span> '
        f'<span class="badge {encoding}">{count.encoding}</span> {count.units} characters</div>',
        f'<div class="text">{_text_html(measure.text)}</div>',
    ]
    if problems:
        parts.append('<ul class="problems">' + "".join(_problem_item(p, relative_to) for p in problems) + "</ul>")
    catalog = result.catalog
    if catalog is not None:
        topic = catalog.topic(topic_id)
        words = catalog.keywords(topic, lang)
        if topic.keywords:
            parts.append(
                f"<details><summary>{len(words)} keywords</summary>{_escape(', '.join(words)) or '(none)'}</details>"
            )
    parts.append("</td>")
    return "".join(parts)


def preview_html(result: CheckResult, relative_to: Path | None = None) -> str:
    """One self-contained page: every reply in every language side by side, with its segment
    count, encoding and budget, and each problem ``check`` found flagged where it stands."""
    languages = result.languages
    source = result.source
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>mbcsms replies: {_escape(', '.join(languages))}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
    )
    intro = (
        "<h1>mbcsms: every reply in every language</h1>\n"
        f'<p class="lead">Generated {generated}. Each cell is the whole text message exactly as the '
        "bot sends it (menu and phone number filled in). Fix problems in the language's "
        "<code>messages.po</code>, then run <code>mbcsms translations check</code>.</p>\n"
        '<div class="legend">'
        '<span><span class="badge ok">2 segments of 4</span> within its SMS budget</span>'
        '<span><span class="badge over">5 segments of 4</span> over budget: shorten it</span>'
        '<span><span class="badge gsm">GSM-7</span> plain letters: 160 characters, or 153 a segment</span>'
        '<span><span class="badge ucs">UCS-2</span> a letter outside GSM-7 (á í ó ú ç ã õ ê…): 70, or 67 a segment</span>'
        '<span><span class="badge problem">fuzzy</span> a problem to fix, with its line in the file</span>'
        '<span><span class="nl">↵</span> a line break in the message</span>'
        "</div>\n"
    )
    summary = ['<ul class="summary">']
    for lang in languages:
        count = len(result.problems_for(lang))
        name = f"{_escape(language_name(lang))} ({_escape(lang)})"
        if count:
            summary.append(f'<li>{name}: <span class="badge problem">{count} problems</span></li>')
        else:
            summary.append(f'<li>{name}: <span class="clean">no problems</span></li>')
    summary.append("</ul>\n")

    # Problems that belong to no reply (a broken file, a word list, a stale entry) go on top.
    general = [p for p in result.problems if p.topic is None or source is None
               or p.topic not in {t.id for t in source.topics}]
    general_html = ""
    if general:
        general_html = (
            "<h2>Problems outside the replies</h2>\n<ul class=\"problems\">"
            + "".join(_problem_item(p, relative_to, with_lang=True) for p in general)
            + "</ul>\n"
        )

    rows = []
    if source is not None:
        header = "".join(
            f"<th>{_escape(language_name(lang))} ({_escape(lang)})</th>" for lang in languages
        )
        rows.append(f"<table>\n<thead><tr><th>Topic</th>{header}</tr></thead>\n<tbody>\n")
        for topic in source.topics:
            label = f"menu {topic.menu} · " if topic.menu is not None else ""
            rows.append(
                f'<tr id="topic-{_escape(topic.id)}"><th>{_escape(topic.id)}'
                f"<small>{label}{_escape(topic.kind)} · budget {topic.budget} segments</small></th>"
                + "".join(_cell(result, topic.id, lang, relative_to) for lang in languages)
                + "</tr>\n"
            )
        rows.append("</tbody>\n</table>\n")
    return head + intro + "".join(summary) + general_html + "".join(rows) + "</body>\n</html>\n"
