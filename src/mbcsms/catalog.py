"""Everything the bot can say and the words it listens for, in every language.

What the bot says: English lives in ``content/topics.toml`` (the source language, next to the
documents it cites); every other language lives in a gettext catalog
``locales/<lang>/LC_MESSAGES/messages.po`` that helpline staff edit with Poedit or Weblate. The
``.po`` files are read at start-up, so there is no compiled ``.mo`` that could go stale, and a
broken file stops start-up naming file and line.

What the bot listens for: each language's keyword and phrase lists, English included, are plain
files ``locales/<lang>/keywords/<name>.txt`` (one phrase a line, ``#`` comments), ``<name>`` a
topic id or one of :data:`WORD_LISTS`. They are not translations: an English edit never touches
another language's lists, and no fuzzy or missing translation can switch one off.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.pofile import PoFileError, read_po

from . import logs
from .helpline_hours import OPEN, opens_text_of

SOURCE_LANGUAGE = "en"
DOMAIN = "messages"
CONTENT_FILE = Path(__file__).parent / "content" / "topics.toml"

# Placeholders the bot fills in; translators must keep them exactly as in the English.
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


class CatalogError(Exception):
    """A content file or catalog that cannot be used; the message names file and line."""


class TopicKind(StrEnum):
    """A topic's ``kind`` in topics.toml: how its keywords (``locales/<lang>/keywords/<id>.txt``)
    are listened for."""

    CONTENT = "content"  # answered by keywords anywhere in a message
    CONTROL = "control"  # only when the whole message is one of its keywords (STOP, START, ...)
    CRISIS = "crisis"  # looked for first, in the whole message
    MENU = "menu"
    FALLBACK = "fallback"
    NOTICE = "notice"  # sent by the bot itself (the rate-limit notice), never asked for


@dataclass(frozen=True)
class Topic:
    id: str
    kind: TopicKind
    answer: str
    source: tuple[str, ...]
    budget: int
    weight: float = 1.0
    menu: int | None = None
    title: str | None = None
    inside: int = 0  # control topics: keywords of this many words or more also count inside a message (0: never)


@dataclass(frozen=True)
class Entry:
    """One translatable string, as it appears in ``messages.pot``."""

    context: str
    msgid: str
    comment: str
    lineno: int = 0


@dataclass(frozen=True)
class SourceContent:
    """The English content file, parsed."""

    topics: tuple[Topic, ...]
    helpline: str
    path: Path

    def topic(self, topic_id: str) -> Topic:
        for topic in self.topics:
            if topic.id == topic_id:
                return topic
        raise KeyError(topic_id)

    def menu_topics(self) -> list[Topic]:
        return sorted((t for t in self.topics if t.menu is not None), key=lambda t: t.menu or 0)


# The kinds of topic that listen for keywords: a file of any other topic's id is not read.
LISTENING = frozenset({TopicKind.CRISIS, TopicKind.CONTROL, TopicKind.MENU, TopicKind.CONTENT})
# Keyword files that are not a topic's: crisis phrases that count only as (nearly) the whole
# message, phrases that contain crisis words but are no crisis, polite words around a command,
# everyday words that tell the language, words of feeling.
WORD_LISTS = ("crisis_alone", "not_crisis", "filler", "common", "feelings")
# For the crisis reply only, a fuzzy translation beats the English: a person in danger who
# writes Spanish gets 911 and 988 in Spanish even while the catalog waits for review.
FUZZY_KEPT = frozenset({"answer:crisis"})


def load_source(path: Path = CONTENT_FILE) -> SourceContent:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CatalogError(f"{path}: {error}") from error
    moved = [raw.get("id", "?") for raw in data.get("topic", ()) if "keywords" in raw]
    if moved or "words" in data:
        where = f"topic {moved[0]!r}" if moved else "[words]"
        raise CatalogError(
            f"{path}: {where} lists keywords, but keywords live in plain files now: "
            "locales/<lang>/keywords/<name>.txt, one phrase a line (see docs/translating.md)"
        )
    try:
        topics = tuple(
            Topic(
                id=raw["id"],
                kind=TopicKind(raw["kind"]),
                answer=raw["answer"],
                source=tuple(raw.get("source", ())),
                budget=int(raw["budget"]),
                weight=float(raw.get("weight", 1.0)),
                menu=raw.get("menu"),
                title=raw.get("title"),
                inside=int(raw.get("inside", 0)),
            )
            for raw in data["topic"]
        )
        return SourceContent(topics, data["helpline"], path)
    except (KeyError, TypeError, ValueError) as error:
        raise CatalogError(f"{path}: missing or bad field {error}") from error


def source_entries(source: SourceContent) -> Iterator[Entry]:
    """Every translatable string of the content file, with what a translator needs to know."""
    for topic in source.topics:
        where = f"source: {', '.join(topic.source) or 'none (program text)'}"
        yield Entry(
            f"answer:{topic.id}",
            topic.answer,
            f"topic {topic.id} ({topic.kind}); {where}; at most {topic.budget} SMS segments "
            "for the whole reply (an accent such as á í ó ú halves the room: 67 characters a "
            "segment instead of 153). Keep placeholders in braces exactly as they are.",
        )
        if topic.title:
            yield Entry(
                f"title:{topic.id}",
                topic.title,
                f"topic {topic.id}: its line in the numbered menu, two or three words.",
            )


def keyword_names(source: SourceContent) -> list[str]:
    """Every keyword file name a language may have: the listening topics' ids, then the word
    lists."""
    return [topic.id for topic in source.topics if topic.kind in LISTENING] + list(WORD_LISTS)


@dataclass
class Translations:
    """One language's catalog: (context, msgid) -> translated text, fuzzy and empty ones left out
    (except a fuzzy crisis answer: see :data:`FUZZY_KEPT`)."""

    lang: str
    path: Path | None
    messages: dict[tuple[str, str], str] = field(default_factory=dict)
    fuzzy: int = 0  # entries left out because they are marked fuzzy

    def get(self, context: str, msgid: str) -> str | None:
        return self.messages.get((context, msgid))


def default_locales_dir() -> Path:
    """The catalogs shipped in the package; a source checkout keeps them at the repo root."""
    packaged = Path(__file__).parent / "locales"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "locales"


def catalog_path(locales: Path, lang: str) -> Path:
    return locales / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_languages(locales: Path) -> list[str]:
    found = sorted(
        child.name
        for child in locales.iterdir()
        if child.is_dir() and catalog_path(locales, child.name).is_file()
    ) if locales.is_dir() else []
    return [SOURCE_LANGUAGE] + [lang for lang in found if lang != SOURCE_LANGUAGE]


def keyword_file(locales: Path, lang: str, name: str) -> Path:
    return locales / lang / "keywords" / f"{name}.txt"


def read_word_file(path: Path) -> tuple[str, ...]:
    """The phrases of a keyword file, in order: one a line, ``#`` starts a comment, blank lines
    skipped; no file, no phrases."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError(f"{path}: {error}") from error
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(line for line in lines if line)


def write_word_file(path: Path, phrases: tuple[str, ...] | list[str], comment: str = "") -> None:
    """A keyword file that :func:`read_word_file` reads back as ``phrases``."""
    for phrase in phrases:
        if "#" in phrase or "\n" in phrase or phrase != phrase.strip() or not phrase:
            raise ValueError(f"not a phrase a keyword file can hold: {phrase!r}")
    head = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "".join(f"{phrase}\n" for phrase in phrases), encoding="utf-8")


def keyword_files(locales: Path, lang: str) -> dict[str, Path]:
    """The keyword files a language has, by name (``crisis``, ``common``...)."""
    folder = locales / lang / "keywords"
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.txt")) if path.is_file()}


def load_keyword_lists(locales: Path, lang: str) -> dict[str, tuple[str, ...]]:
    """Every keyword file of one language, read: name -> phrases."""
    return {name: read_word_file(path) for name, path in keyword_files(locales, lang).items()}


def read_catalog(path: Path, lang: str | None = None) -> PoCatalog:
    try:
        with path.open("rb") as handle:
            return read_po(handle, locale=lang, abort_invalid=True)
    except PoFileError as error:
        # Babel counts lines from 0 ("... on 29"); editors count from 1, and file:line is what
        # Poedit users and terminals recognise.
        reason = str(error).removesuffix(f" on {error.lineno}")
        bad = f": {error.line.strip()!r}" if error.line.strip() else ""
        raise CatalogError(f"{path}:{error.lineno + 1}: {reason}{bad}") from error
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise CatalogError(f"{path}: {error}") from error


def load_translations(locales: Path, lang: str) -> Translations:
    path = catalog_path(locales, lang)
    catalog = read_catalog(path, None)
    translations = Translations(lang, path)
    for message in catalog:
        if not message.id or not isinstance(message.id, str):
            continue
        text = message.string if isinstance(message.string, str) else None
        if not text:
            continue
        if message.fuzzy and (message.context or "") not in FUZZY_KEPT:
            translations.fuzzy += 1
            continue
        translations.messages[(message.context or "", message.id)] = text
    return translations


class Catalog:
    """The bot's words in every language: answers to render, keywords to listen for."""

    def __init__(self, source: SourceContent, translations: dict[str, Translations],
                 locales: Path | None = None,
                 keyword_lists: dict[str, dict[str, tuple[str, ...]]] | None = None) -> None:
        self.source = source
        # Where plain keyword files live (``<locales>/<lang>/keywords/<name>.txt``).
        self.locales = locales if locales is not None else default_locales_dir()
        self.translations = translations
        self.languages = [SOURCE_LANGUAGE] + sorted(translations)
        self._topics = {topic.id: topic for topic in source.topics}
        self._rendered: dict[tuple[str, str, str | None], str] = {}
        # Each language's keyword files, read once: lang -> name -> phrases.
        if keyword_lists is None:
            keyword_lists = {lang: load_keyword_lists(self.locales, lang) for lang in self.languages}
        self.keyword_lists = keyword_lists

    @classmethod
    def load(cls, locales: Path | None = None, source_path: Path = CONTENT_FILE) -> Catalog:
        """English from ``source_path``, every other language from ``locales`` (None: the
        catalogs shipped with the package)."""
        locales = locales if locales is not None else default_locales_dir()
        source = load_source(source_path)
        translations = {
            lang: load_translations(locales, lang)
            for lang in available_languages(locales)
            if lang != SOURCE_LANGUAGE
        }
        catalog = cls(source, translations, locales)
        catalog.warn_incomplete()
        return catalog

    def falling_back(self, lang: str) -> list[Entry]:
        """The entries of ``lang`` sent in English: untranslated, missing or fuzzy."""
        return [entry for entry in source_entries(self.source)
                if not self.has_translation(entry.context, entry.msgid, lang)]

    def warn_incomplete(self) -> None:
        """One warning per language whose answers are partly sent in English. Its keyword lists
        are untouched: they are plain files, so its crisis detection stays on."""
        for lang, translations in sorted(self.translations.items()):
            missing = self.falling_back(lang)
            if missing:
                total = sum(1 for _ in source_entries(self.source))
                logs.event(
                    "translations_incomplete", logging.WARNING, lang=lang, count=len(missing),
                    reason=f"{len(missing)} of {total} entries are sent in English "
                           f"({translations.fuzzy} marked fuzzy, the rest untranslated or missing); "
                           "keywords and crisis phrases are unaffected",
                )

    def topic(self, topic_id: str) -> Topic:
        return self._topics[topic_id]

    def has_topic(self, topic_id: str) -> bool:
        return topic_id in self._topics

    def translate(self, context: str, msgid: str, lang: str) -> str:
        """The text in ``lang``, or the English when that language has no (finished) entry."""
        translations = self.translations.get(lang)
        if translations is not None:
            translated = translations.get(context, msgid)
            if translated:
                return translated
        return msgid

    def has_translation(self, context: str, msgid: str, lang: str) -> bool:
        if lang == SOURCE_LANGUAGE:
            return True
        translations = self.translations.get(lang)
        return translations is not None and translations.get(context, msgid) is not None

    def keywords(self, topic: Topic, lang: str) -> tuple[str, ...]:
        """The topic's keywords in ``lang``: its file ``<lang>/keywords/<topic id>.txt``. Only
        topics that listen (crisis, control, menu, content) have any."""
        if topic.kind not in LISTENING:
            return ()
        return self.words(topic.id, lang)

    def words(self, name: str, lang: str) -> tuple[str, ...]:
        """A keyword file of ``lang`` by name (a topic id or a word list): one phrase a line,
        ``#`` comments allowed (none: no file). Independent of every other language's files
        and of gettext, so no translation state can switch it off."""
        return self.keyword_lists.get(lang, {}).get(name, ())

    def keyword_path(self, lang: str, name: str) -> Path:
        return keyword_file(self.locales, lang, name)

    def answer(self, topic_id: str, lang: str) -> str:
        topic = self._topics[topic_id]
        return self.translate(f"answer:{topic.id}", topic.answer, lang)

    def title(self, topic: Topic, lang: str) -> str:
        return self.translate(f"title:{topic.id}", topic.title or topic.id, lang)

    def menu_topics(self) -> list[Topic]:
        return self.source.menu_topics()

    def menu_topic(self, number: int) -> Topic | None:
        for topic in self.menu_topics():
            if topic.menu == number:
                return topic
        return None

    def render(self, topic_id: str, lang: str, hours: str | None = None) -> str:
        """The full text of a reply: answers composed and placeholders filled. ``hours``: a key
        of ``helpline_hours.hours_key`` ("open", "closed:monday"...) whose line fills {hours};
        None leaves {hours} as it is (for tools that show every form). Cached per (topic,
        language, hours line): pure, and the request path never composes text twice."""
        key = (topic_id, lang, hours)
        text = self._rendered.get(key)
        if text is None:
            text = self._compose(topic_id, lang)
            if hours is not None and "{hours}" in text:
                text = text.replace("{hours}", self.hours_line(lang, hours))
            self._rendered[key] = text
        return text

    def needs_hours(self, topic_id: str, lang: str) -> bool:
        """Whether the reply says when the helpline is open ({hours})."""
        return "{hours}" in self.render(topic_id, lang)

    def hours_line(self, lang: str, hours: str) -> str:
        """The hours_open line, or hours_closed with {opens} filled, for an hours key."""
        key = ("{hours}", lang, hours)
        text = self._rendered.get(key)
        if text is None:
            if hours == OPEN:
                text = self._fill(self.answer("hours_open", lang), lang)
            else:
                closed = self._fill(self.answer("hours_closed", lang), lang)
                text = closed.replace("{opens}", opens_text_of(hours, lang))
            self._rendered[key] = text
        return text

    def _compose(self, topic_id: str, lang: str) -> str:
        if topic_id == "start":
            return self._fill(self.answer("start", lang), lang) + "\n" + self.render("menu", lang)
        return self._fill(self.answer(topic_id, lang), lang)

    def _fill(self, text: str, lang: str) -> str:
        # Replace only the placeholders we own: a stray brace typed by a translator stays text
        # instead of crashing str.format on a patient's request. {hours} is filled by render.
        values = {"{helpline}": self.source.helpline}
        if "{topics}" in text:
            values["{topics}"] = "\n".join(
                f"{topic.menu} {self.title(topic, lang)}" for topic in self.menu_topics()
            )
        return PLACEHOLDER.sub(lambda match: values.get(match.group(0), match.group(0)), text)
