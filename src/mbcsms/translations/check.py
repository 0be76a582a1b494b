"""``mbcsms translations check``: everything a translator must fix before the bot may send a
language (untranslated or fuzzy entries, stale ones, broken placeholders, replies over their SMS
budget or past the reading-level limit, keywords claimed twice, topics with no keywords, a
language without crisis phrases), each with file and line. A reply that says whether the helpline
is open ({hours}) is measured in each form it can be sent in: with the "open" line and with the
"closed" line for each day it may open.

Keyword clashes are not worked out here: they are the :class:`~mbcsms.understanding.keywords.Clash`
es that :class:`~mbcsms.understanding.keywords.KeywordTables`, the builder the understander
matches with, records while it files the keyword files."""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Message
from babel.messages.pofile import PoFileError

from ..catalog import (
    CONTENT_FILE,
    FUZZY_KEPT,
    PLACEHOLDER,
    SOURCE_LANGUAGE,
    Catalog,
    CatalogError,
    SourceContent,
    Topic,
    TopicKind,
    Translations,
    available_languages,
    catalog_path,
    keyword_files,
    keyword_names,
    load_source,
    load_translations,
    read_catalog,
)
from ..helpline_hours import HOURS_KEYS, OPEN, opens_text_of
from ..sms import GSM7_BASIC, GSM7_EXTENDED, UCS2, SegmentCount, count_segments
from ..understanding.keywords import CRISIS_ALONE, Clash, Keyword, KeywordTables
from ..understanding.text import tokenize
from . import TranslationsError, source_template, template_entries
from .readability import limit_text, measured, reading_level, within_limit

# Kinds of problem, as printed by ``check`` and shown as badges by ``preview``.
BROKEN = "broken"
MISSING = "missing"
UNTRANSLATED = "untranslated"
FUZZY = "fuzzy"
STALE = "stale"
DUPLICATE = "duplicate"
PLACEHOLDERS = "placeholders"
BUDGET = "over budget"
READING = "hard to read"
KEYWORD_CONFLICT = "keyword conflict"
NO_KEYWORDS = "no keywords"
NO_CRISIS = "no crisis phrases"
KEYWORD_FILE = "keyword file"


@dataclass(frozen=True)
class Problem:
    """One thing a translator must fix, located as precisely as the files allow."""

    lang: str
    kind: str
    path: Path
    line: int  # 1-based; 0 when the entry is not in the file at all
    context: str  # the msgctxt ("answer:her2"), "keywords:<name>" for a keyword file, or "" for the file as a whole
    detail: str
    msgid: str = ""
    topic: str | None = None  # the topic whose reply this concerns, for the preview

    def location(self, relative_to: Path | None = None) -> str:
        path = self.path
        if relative_to is not None:
            with contextlib.suppress(ValueError):
                path = path.resolve().relative_to(relative_to.resolve())
        return f"{path}:{self.line}" if self.line else str(path)

    def describe(self, relative_to: Path | None = None) -> str:
        """One line: ``file:line: [lang] msgctxt "msgid…": kind: what to do``."""
        what = self.context or "(file)"
        if self.msgid:
            what += f' "{shorten(self.msgid, 40)}"'
        return f"{self.location(relative_to)}: [{self.lang}] {what}: {self.kind}: {self.detail}"


# The crisis reply must fit this many segments in every language, whatever its budget says:
# 911 and 988 arrive in one short burst.
CRISIS_MAX_SEGMENTS = 3


@dataclass(frozen=True)
class Form:
    """One form a reply can be sent in: ``hours`` is the hours key filled into {hours} ("open",
    "closed:monday"; None when the reply has no {hours})."""

    hours: str | None
    text: str
    count: SegmentCount
    level: float | None  # reading level (FK grade or Fernández-Huerta ease); None: not measured
    readable: bool  # within the reading-level limit (always True when not measured)

    @property
    def label(self) -> str:
        if self.hours is None:
            return ""
        if self.hours == OPEN:
            return "helpline open"
        return "helpline closed, opens " + self.hours.partition(":")[2]


@dataclass(frozen=True)
class Measure:
    """A reply exactly as the bot sends it, and what it costs: ``text`` and ``count`` of its
    longest form, ``forms`` every form (one, or one per hours line)."""

    topic: str
    lang: str
    text: str
    count: SegmentCount
    budget: int
    forms: tuple[Form, ...] = ()

    @property
    def over_budget(self) -> bool:
        return self.count.segments > self.budget

    @property
    def hard_to_read(self) -> list[Form]:
        return [form for form in self.forms if not form.readable]


def measure(catalog: Catalog, topic: Topic, lang: str) -> Measure:
    """Every form of a topic's reply in ``lang``, as sent."""
    budget = min(topic.budget, CRISIS_MAX_SEGMENTS) if topic.kind == TopicKind.CRISIS else topic.budget
    hours: tuple[str | None, ...] = (None,)
    opens = "{opens}" in catalog.render(topic.id, lang)  # hours_closed itself
    if catalog.needs_hours(topic.id, lang):
        hours = HOURS_KEYS
    elif opens:
        hours = tuple(key for key in HOURS_KEYS if key != OPEN)
    forms = []
    for key in hours:
        text = catalog.render(topic.id, lang, key)
        if opens and key is not None and key != OPEN:
            text = text.replace("{opens}", opens_text_of(key, lang))
        level = reading_level(text, lang) if measured(lang) else None
        forms.append(Form(key, text, count_segments(text), level, within_limit(text, lang)))
    longest = max(forms, key=lambda form: (form.count.segments, form.count.units))
    return Measure(topic.id, lang, longest.text, longest.count, budget, tuple(forms))


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
        counts: dict[str, int] = defaultdict(int)
        for problem in self.problems:
            counts[problem.lang] += 1
        per_lang = ", ".join(f"{counts[lang]} in {lang}" for lang in self.languages if counts[lang])
        count = len(self.problems)
        return f"{count} problem{'s' if count != 1 else ''} ({per_lang}): fix them, then run the check again."


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


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


def phrase_line(path: Path, phrase: str) -> int:
    """The line of ``phrase`` in a keyword file (1-based; 0 when it is not there)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    for number, line in enumerate(lines, start=1):
        if line.split("#", 1)[0].strip() == phrase:
            return number
    return 0


def _entry_problems(
    lang: str, path: Path, template: dict[tuple[str, str], Message]
) -> tuple[list[Problem], Translations | None, dict[str, int]]:
    """Problems of one catalog file entry by entry; when it could be read, its translations
    (as the bot loads them) and the line of each msgctxt's msgid."""
    try:
        po = read_catalog(path)
    except CatalogError as error:
        line, reason = describe_catalog_error(error)
        return [Problem(lang, BROKEN, path, line, "", f"{reason} (the bot will not start)")], None, {}

    problems: list[Problem] = []
    found: dict[tuple[str, str], Message] = {
        (m.context or "", m.id): m for m in po if m.id and isinstance(m.id, str)
    }
    for key in template:
        context, msgid = key
        topic = _topic_of(context)
        message = found.get(key)
        if message is None:
            problems.append(Problem(
                lang, MISSING, path, 0, context,
                "not in the file: run `mbcsms translations update`, then translate it",
                msgid, topic,
            ))
            continue
        text = message.string if isinstance(message.string, str) else ""
        if not text.strip():
            problems.append(Problem(
                lang, UNTRANSLATED, path, message.lineno or 0, context,
                "no translation: the bot sends the English", msgid, topic,
            ))
            continue
        if message.fuzzy:
            ignored = ("until then the bot still sends it, as a fuzzy crisis reply beats English"
                       if context in FUZZY_KEPT else "until then the bot sends the English")
            problems.append(Problem(
                lang, FUZZY, path, message.lineno or 0, context,
                "marked fuzzy (the English changed or the text is a guess): check it, then clear "
                f"the fuzzy mark; {ignored}",
                msgid, topic,
            ))
        expected, actual = placeholders(msgid), placeholders(text)
        if expected != actual:
            problems.append(Problem(
                lang, PLACEHOLDERS, path, message.lineno or 0, context,
                f"placeholders must be exactly as in the English: expected {' '.join(expected) or 'none'}, "
                f"found {' '.join(actual) or 'none'}",
                msgid, topic,
            ))

    for key, entry in found.items():
        if key not in template:
            problems.append(Problem(
                lang, STALE, path, entry.lineno or 0, key[0],
                "its English no longer exists: run `mbcsms translations update`, or delete the entry",
                key[1], _topic_of(key[0]),
            ))
    for obsolete in po.obsolete.values():
        problems.append(Problem(
            lang, STALE, path, obsolete.lineno or 0, obsolete.context or "",
            "old entry kept as a comment (#~): delete it", obsolete.id if isinstance(obsolete.id, str) else "",
        ))
    for context, repeated in context_lines(path).items():
        for line in repeated[1:]:
            problems.append(Problem(
                lang, DUPLICATE, path, line, context,
                f"the same entry appears more than once (lines {', '.join(map(str, repeated))}): keep one",
                topic=_topic_of(context),
            ))

    translations = load_translations(path.parents[2], lang)
    entry_lines = {context: entry.lineno or 0 for (context, _), entry in found.items()}
    return problems, translations, entry_lines


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

    catalog = Catalog(source, translations, locales)  # reads every language's keyword files
    result.catalog = catalog
    readable = catalog.languages

    # Budgets and reading level: the reply exactly as sent, menu, placeholders and each hours
    # line included.
    for code in readable:
        for topic in source.topics:
            measured_reply = measure(catalog, topic, code)
            result.measures[(topic.id, code)] = measured_reply
            context = f"answer:{topic.id}"
            line = _entry_line(po_lines, code, context)
            if measured_reply.over_budget:
                count, text = measured_reply.count, measured_reply.text
                why = ""
                if count.encoding == UCS2:
                    why = (f"; it needs UCS-2 (67 characters a segment) because of: "
                           f"{non_gsm_characters(text)}")
                composed = " (with the menu it includes)" if topic.id == "start" else ""
                longest = next(f for f in measured_reply.forms if f.text == text)
                hours = f" (with the hours line: {longest.label})" if longest.hours else ""
                rule = (
                    f" (the crisis reply must fit {CRISIS_MAX_SEGMENTS} segments in every language)"
                    if topic.kind == TopicKind.CRISIS else ""
                )
                result.problems.append(Problem(
                    code, BUDGET, paths[code], line, context,
                    f"the reply{composed}{hours} takes {count.segments} SMS segments "
                    f"({count.units} characters, {count.encoding}), its budget is "
                    f"{measured_reply.budget}{rule}{why}: shorten it",
                    topic.answer, topic.id,
                ))
            hard = measured_reply.hard_to_read
            if hard:
                worst = hard[0]
                hours = f" (with the hours line: {worst.label})" if worst.hours else ""
                result.problems.append(Problem(
                    code, READING, paths[code], line, context,
                    f"the reply{hours} reads at {worst.level:.1f}; the limit is {limit_text(code)}: "
                    "use shorter sentences and shorter words",
                    topic.answer, topic.id,
                ))

    result.problems.extend(keyword_problems(catalog, locales))

    if lang is not None:
        result.problems = [p for p in result.problems if p.lang == lang]
        result.languages = [lang]
        result.measures = {key: m for key, m in result.measures.items() if m.lang == lang}
    order = {code: index for index, code in enumerate(languages)}
    result.problems.sort(key=lambda p: (order.get(p.lang, 99), str(p.path), p.line, p.context))
    return result


# --- keyword files -------------------------------------------------------------------------


def keyword_problems(catalog: Catalog, locales: Path) -> list[Problem]:
    """What is wrong with the keyword files of every language: a file of no topic or word list,
    a line that holds more than one phrase, a list English has and the language lacks (crisis
    phrases above all), and every clash the keyword table builder met."""
    problems: list[Problem] = []
    source = catalog.source
    names = keyword_names(source)
    for code in catalog.languages:
        for name, path in keyword_files(locales, code).items():
            if name not in names:
                problems.append(Problem(
                    code, KEYWORD_FILE, path, 0, f"keywords:{name}",
                    f"no topic or word list is called {name!r}, so the bot never reads this file "
                    f"(names: {', '.join(names)})",
                ))
                continue
            for phrase in catalog.words(name, code):
                if "," in phrase:
                    problems.append(Problem(
                        code, KEYWORD_FILE, path, phrase_line(path, phrase), f"keywords:{name}",
                        f"{phrase!r} is read as one phrase: put each phrase on a line of its own",
                        topic=name if catalog.has_topic(name) else None,
                    ))
                elif not tokenize(phrase):
                    problems.append(Problem(
                        code, KEYWORD_FILE, path, phrase_line(path, phrase), f"keywords:{name}",
                        f"{phrase!r} has no word the bot can match: delete the line",
                        topic=name if catalog.has_topic(name) else None,
                    ))
        for name in names:
            if code == SOURCE_LANGUAGE or not catalog.words(name, SOURCE_LANGUAGE):
                continue
            if name == CRISIS_ALONE:
                # Optional: a language whose crisis phrases are all sure ones needs none.
                continue
            if any(tokenize(phrase) for phrase in catalog.words(name, code)):
                continue
            path = catalog.keyword_path(code, name)
            topic = name if catalog.has_topic(name) else None
            if topic is not None and catalog.topic(topic).kind == TopicKind.CRISIS:
                problems.append(Problem(
                    code, NO_CRISIS, path, 0, f"keywords:{name}",
                    "this language has no crisis phrases of its own: its messages are still "
                    "screened by every other language's crisis phrases and by the model, but list "
                    "what people in danger write in it, one phrase a line", topic=topic,
                ))
            else:
                what = "this topic has keywords" if topic is not None else "this word list has words"
                problems.append(Problem(
                    code, NO_KEYWORDS, path, 0, f"keywords:{name}",
                    f"{what} in English but none in this language: list them, one a line",
                    topic=topic,
                ))
    if SOURCE_LANGUAGE in catalog.languages:
        crisis = [t.id for t in source.topics if t.kind == TopicKind.CRISIS]
        for name in crisis:
            if not catalog.words(name, SOURCE_LANGUAGE):
                problems.append(Problem(
                    SOURCE_LANGUAGE, NO_CRISIS, catalog.keyword_path(SOURCE_LANGUAGE, name), 0,
                    f"keywords:{name}",
                    "English has no crisis phrases: messages are screened by the other languages' "
                    "phrases and the model only", topic=name,
                ))

    reported: set[tuple[str, str, str, str]] = set()
    for clash in KeywordTables(catalog).clashes:
        lost, kept = clash.lost, clash.kept
        pair = (lost.lang, lost.topic, kept.topic, kept.lang)
        if pair in reported:
            continue  # one report per pair of topics: "tratamiento" and "tratamientos" are one clash
        reported.add(pair)
        problems.append(_clash_problem(catalog, clash))
    return problems


def _where(catalog: Catalog, keyword: Keyword) -> str:
    path = catalog.keyword_path(keyword.lang, keyword.topic)
    line = phrase_line(path, keyword.text)
    return f"{keyword.lang}/keywords/{path.name}" + (f":{line}" if line else "")


def _clash_problem(catalog: Catalog, clash: Clash) -> Problem:
    lost, kept = clash.lost, clash.kept
    path = catalog.keyword_path(lost.lang, lost.topic)
    if kept.kind == TopicKind.CRISIS:
        detail = (f"keyword {lost.text!r} is also a crisis phrase ({kept.text!r}, {_where(catalog, kept)}): "
                  "the crisis reply always wins; remove it here")
    elif kept.lang != lost.lang:
        detail = (f"keyword {lost.text!r} is a keyword of topic {kept.topic} in {kept.lang} "
                  f"({kept.text!r}, {_where(catalog, kept)}); the bot cannot tell which is meant: "
                  "use another word")
    else:
        detail = (f"keyword {lost.text!r} is also a keyword of topic {kept.topic} "
                  f"({kept.text!r}, {_where(catalog, kept)}): keep it in one topic only")
    return Problem(lost.lang, KEYWORD_CONFLICT, path, phrase_line(path, lost.text),
                   f"keywords:{lost.topic}", detail, topic=lost.topic)
