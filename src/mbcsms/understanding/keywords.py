"""Stage 3 of understanding: the keyword tables, built once from the catalog.

:class:`KeywordTables` is the one builder of every table the understander matches by (crisis
phrases, calm phrases, commands, topic keywords, the vocabulary and the typo index), from each
language's plain keyword files (``locales/<lang>/keywords/<name>.txt``, read by the catalog).
While it files the keywords it records each :class:`Clash`: a keyword that can never win
because another topic's keyword holds the same key. ``mbcsms translations check`` reports
exactly these, so a clash it reports is a clash the matcher meets, found by the same code.

Keywords and messages are compared word stem by word stem, in each language with its own
stemmer, so "ending it all" meets "end it all" and "curarse" meets "curar". Control words are
compared as typed: ALTO (stop) and ALTA (start) share a stem.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..catalog import Catalog, TopicKind
from .text import stemmer_for, tokenize
from .typos import TypoIndex

NOT_CRISIS = "not_crisis"
CRISIS_ALONE = "crisis_alone"
FEELINGS = "feelings"
# Words a message may hold beside a crisis_alone phrase and still be that phrase ("please call
# 911 now"); a longer message is read by the model ("when should we call 911 if she...").
ALONE_SLACK = 2
# Joins the parts of a crisis keyword that may stand anywhere in a message: "fever + chemo".
TOGETHER = " + "


def keyword_key(phrase: tuple[str, ...], stem: Callable[[str], str], kind: TopicKind) -> tuple[str, ...]:
    """What a keyword is matched by: commands as typed, everything else by word stems. Two
    keywords with the same key are the same keyword to the bot."""
    return phrase if kind == TopicKind.CONTROL else tuple(stem(word) for word in phrase)


def crisis_parts(keyword: str, stem: Callable[[str], str]) -> tuple[tuple[str, ...], ...]:
    """A crisis keyword's parts joined by TOGETHER ("fever + chemo"), each as its stems; a
    keyword without TOGETHER is one part."""
    parts = (keyword_key(tuple(tokenize(part)), stem, TopicKind.CONTENT) for part in keyword.split(TOGETHER))
    return tuple(part for part in parts if part)


@dataclass(frozen=True)
class Keyword:
    topic: str
    lang: str
    weight: float
    order: int
    kind: TopicKind = TopicKind.CONTENT
    text: str = ""  # as written in the catalog: which rule matched, for evaluation and logs
    # A crisis rule of parts that may stand anywhere ("fever + chemo"): words that describe an
    # emergency together, and as often a question, a memory or a discharge sheet read aloud.
    circumstantial: bool = False


@dataclass(frozen=True)
class Clash:
    """A keyword that never wins: ``kept``, of another topic, holds the same key (``key``) in the
    table the bot matches by, so a message with it gets ``kept``'s topic."""

    key: tuple[str, ...]
    kept: Keyword
    lost: Keyword


# A crisis keyword of parts that may stand anywhere: each part's stems, and the keyword.
PartsRule = tuple[tuple[tuple[str, ...], ...], Keyword]


class PhraseTable(dict[tuple[str, ...], Keyword]):
    """Phrases by their words, and for each first word the longest phrase it starts, so a scan
    only tries the positions and lengths that can match."""

    def __init__(self) -> None:
        super().__init__()
        self.longest: dict[str, int] = {}

    def __setitem__(self, phrase: tuple[str, ...], keyword: Keyword) -> None:
        super().__setitem__(phrase, keyword)
        self.longest[phrase[0]] = max(self.longest.get(phrase[0], 0), len(phrase))

    def setdefault(self, phrase: tuple[str, ...], keyword: Keyword) -> Keyword:
        if phrase not in self:
            self[phrase] = keyword
        return self[phrase]


def scan(words: list[str], table: PhraseTable) -> list[tuple[Keyword, int, int]]:
    """Longest phrases of ``table`` found in ``words``, left to right, without overlap:
    (keyword, its length in words, where it starts)."""
    longest = table.longest
    if longest.keys().isdisjoint(words):  # most messages start no crisis or feelings phrase at all
        return []
    hits = []
    position, count = 0, len(words)
    while position < count:
        most = longest.get(words[position], 0)
        for length in range(min(most, count - position), 0, -1):
            keyword = table.get(tuple(words[position : position + length]))
            if keyword is not None:
                hits.append((keyword, length, position))
                position += length
                break
        else:
            position += 1
    return hits


class KeywordTables:
    """Every table the understander matches by, from one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.languages = list(catalog.languages)
        self.stemmers = {lang: stemmer_for(lang) for lang in self.languages}
        self.vocabulary: dict[str, set[str]] = defaultdict(set)
        self.keyword_words: set[str] = set()
        self.known_stems: dict[str, set[str]] = {lang: set() for lang in self.languages}
        self.crisis = {lang: PhraseTable() for lang in self.languages}
        self.crisis_words: dict[str, dict[str, Keyword]] = {lang: {} for lang in self.languages}
        # Crisis keywords of parts that may stand anywhere in the message ("fever + chemo"), filed
        # under one word that must be in the message: the longest first word of their parts.
        self.crisis_together: dict[str, dict[str, list[PartsRule]]] = {
            lang: defaultdict(list) for lang in self.languages}
        # Crisis phrases that count only when the message is little more than the phrase
        # (crisis_alone.txt): as whole messages they are cries for help ("llamen al 911",
        # "chest pain"); inside longer ones they are as often a question, a plan or a memory,
        # and the model reads the rest. Parts rules ("fever + chemo") are kept apart.
        self.crisis_alone = {lang: PhraseTable() for lang in self.languages}
        self.crisis_alone_parts: dict[str, list[PartsRule]] = {lang: [] for lang in self.languages}
        # The most words a message may have for any crisis_alone rule to apply.
        self.alone_words = {lang: 0 for lang in self.languages}
        self.phrases = {lang: PhraseTable() for lang in self.languages}
        # Phrases that express fear, grief or loneliness (feelings.txt), by their stems.
        self.feelings = {lang: PhraseTable() for lang in self.languages}
        # Commands by their words less filler; each with the words a message must also contain
        # (none, unless what is left is only everyday words: see _add_command).
        self.control: dict[tuple[str, ...], list[tuple[frozenset[str], Keyword]]] = {}
        self.filler: set[str] = set()
        self.common: set[str] = set()
        # Non-ASCII letters each language's own words use: a hint when the words don't tell.
        self.letters: dict[str, set[str]] = defaultdict(set)
        # Languages with no crisis phrase of their own (screened by the others' and the model).
        self.without_crisis: list[str] = []
        # Keywords that never win, each with the keyword that holds its place (see Clash).
        self.clashes: list[Clash] = []

        for lang in self.languages:
            for word in catalog.words("filler", lang):
                self.filler.update(tokenize(word))
            for word in catalog.words("common", lang):
                self.common.update(tokenize(word))

        for order, topic in enumerate(catalog.source.topics):
            for lang in self.languages:
                stem = self.stemmers[lang]
                keywords = catalog.keywords(topic, lang)
                if topic.kind == TopicKind.CRISIS and not keywords:
                    self.without_crisis.append(lang)
                listened = [(keyword, False) for keyword in keywords]
                if topic.kind == TopicKind.CRISIS:
                    listened += [(keyword, True) for keyword in catalog.words(CRISIS_ALONE, lang)]
                for keyword, alone in listened:
                    for ch in keyword.casefold():
                        if not ch.isascii() and ch.isalpha():
                            self.letters[ch].add(lang)
                    phrase = tuple(tokenize(keyword))
                    if not phrase:
                        continue
                    entry = Keyword(topic.id, lang, topic.weight, order, topic.kind, keyword)
                    stems = keyword_key(phrase, stem, TopicKind.CONTENT)
                    for word in phrase:
                        self.vocabulary[word].add(lang)
                        self.keyword_words.add(word)
                    self.known_stems[lang].update(stems)
                    if alone:
                        self._add_alone(lang, crisis_parts(keyword, stem), entry)
                    elif topic.kind == TopicKind.CRISIS and TOGETHER in keyword:
                        parts = crisis_parts(keyword, stem)
                        anchor = max((part[0] for part in parts), key=len)
                        self.crisis_together[lang][anchor].append((parts, replace(entry, circumstantial=True)))
                    elif topic.kind == TopicKind.CRISIS and len(phrase) == 1:
                        # One word matches as typed (after typo correction): stems of single
                        # words reach too far ("matarme" and "matan", "lastimarme" and "lástima").
                        self.crisis_words[lang].setdefault(phrase[0], entry)
                    elif topic.kind == TopicKind.CRISIS:
                        self.crisis[lang].setdefault(stems, entry)
                    elif topic.kind == TopicKind.CONTROL:
                        self._add_command(phrase, entry)
                        if topic.inside and len(phrase) >= topic.inside:
                            self._add_phrase(lang, stems, entry)
                    else:
                        self._add_phrase(lang, stems, entry)
        for lang in self.languages:
            # Longest match wins in a scan, so a calm phrase claims its words before a crisis
            # keyword inside it ("dont want to die" before "want to die") can.
            stem = self.stemmers[lang]
            for calm in catalog.words("not_crisis", lang):
                words = tuple(tokenize(calm))
                if words:
                    # setdefault: a phrase that is also a crisis keyword stays a crisis.
                    key = keyword_key(words, stem, TopicKind.CRISIS)  # by stems, as crisis keywords are
                    self.crisis[lang].setdefault(key, Keyword(NOT_CRISIS, lang, 0.0, -1, text=calm))
                    for word in words:  # known as typed, never "corrected" out of the phrase
                        self.vocabulary[word].add(lang)
            for name in ("common", "filler"):
                for word in catalog.words(name, lang):
                    for token in tokenize(word):
                        self.vocabulary[token].add(lang)
            for order, feeling in enumerate(catalog.words(FEELINGS, lang)):
                if key := tuple(stem(word) for word in tokenize(feeling)):
                    self.feelings[lang].setdefault(key, Keyword(FEELINGS, lang, 1.0, order, text=feeling))
        self.typos = TypoIndex(self.vocabulary)

    def _add_alone(self, lang: str, parts: tuple[tuple[str, ...], ...], entry: Keyword) -> None:
        if len(parts) > 1:
            self.crisis_alone_parts[lang].append((parts, entry))
        else:
            self.crisis_alone[lang].setdefault(parts[0], entry)
        self.alone_words[lang] = max(self.alone_words[lang], sum(map(len, parts)) + ALONE_SLACK)

    def _add_phrase(self, lang: str, stems: tuple[str, ...], entry: Keyword) -> None:
        """A topic keyword: the first topic to claim a phrase keeps it, and a phrase that is a
        crisis phrase of its language is the crisis reply's; either way the loser is a clash."""
        crisis = self.crisis[lang].get(stems)
        if crisis is not None and crisis.topic != NOT_CRISIS:
            self.clashes.append(Clash(stems, crisis, entry))
        kept = self.phrases[lang].setdefault(stems, entry)
        if kept.topic != entry.topic:
            self.clashes.append(Clash(stems, kept, entry))

    def _add_command(self, phrase: tuple[str, ...], entry: Keyword) -> None:
        """Commands are matched against the message less its filler ("stop please"), so they are
        filed likewise. But when what is left is only everyday words, it cannot stand for the
        command alone: "ya no quiero mensajes" less its filler is "no", and a patient's "No"
        or "no thanks" must not unsubscribe them. Such a command also needs all its own words
        in the message."""
        core = self.without_filler(phrase)
        needs = frozenset(phrase) if all(word in self.common for word in core) else frozenset()
        filed = self.control.setdefault(core, [])
        # One table of commands for every language: the first filed under these words that the
        # message satisfies wins, so another topic's command filed before it with no more
        # needs holds its place.
        for other_needs, other in filed:
            if other.topic != entry.topic and other_needs <= needs:
                self.clashes.append(Clash(core, other, entry))
                break
        filed.append((needs, entry))

    def without_filler(self, words: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(word for word in words if word not in self.filler) or words
