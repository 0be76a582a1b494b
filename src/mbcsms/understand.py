"""What a patient's message is about, and which language it is written in.

Patients type fast, on small keyboards, often scared: without accents, with typos, in English or
Spanish or a mix. So a message is normalised (case, accents, punctuation), each unknown word is
corrected to the nearest word we know (rapidfuzz's edit distance on candidates from a
symmetric-delete index, so the cost stays flat however large the vocabulary grows), reduced to
word stems in each language, and then matched phrase by phrase against every language's
keywords from the catalog: crisis words first, then whole-message commands, then topics.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import Stemmer
from babel import Locale, UnknownLocaleError
from rapidfuzz.distance import OSA

from .catalog import Catalog, TopicKind

# A message longer than this is read only in part: enough for any question, and a 5,000
# character body cannot make the request path slow.
MAX_TOKENS = 120
# Twilio's longest inbound body (WhatsApp, 4,096 characters) stays well under this many words.
MAX_CRISIS_TOKENS = 1200
MIN_STEMMED = 5
# Words left unexplained around a general topic's single keyword before the message is taken to
# ask about something else.
UNEXPLAINED = 5

NOT_CRISIS = "not_crisis"


class Understood(StrEnum):
    """What a message was understood as: ``Understanding.kind``."""

    CRISIS = "crisis"  # an emergency or self-harm: the crisis reply, before anything else
    CONTROL = "control"  # a control topic's keyword as the whole message (STOP, START, HELP...)
    NUMBER = "number"  # a number alone: a pick from the numbered menu
    TOPIC = "topic"  # a topic's keywords, found in the message
    NOTHING = "nothing"  # words, but none we have an answer for
    EMPTY = "empty"  # no words at all: an empty body, or only punctuation

_APOSTROPHES = re.compile(r"['’‘`´]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_LETTER_DIGIT = re.compile(r"(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])")


def normalise(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: "¿Qué es HER2+?" -> "que es her 2"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = _APOSTROPHES.sub("", plain)
    plain = _NOT_WORD.sub(" ", plain)
    return _LETTER_DIGIT.sub(" ", plain).strip()


def tokenize(text: str) -> list[str]:
    return normalise(text).split()


def stemmer_for(lang: str) -> Callable[[str], str]:
    """The Snowball stemmer of a language (by its English name), or none for a language
    Snowball does not know: its keywords then match as typed."""
    try:
        name = (Locale.parse(lang).english_name or "").lower()
    except (ValueError, UnknownLocaleError):
        name = ""
    if name not in Stemmer.algorithms():
        return lambda word: word
    stem_word = Stemmer.Stemmer(name).stemWord

    def stem(word: str) -> str:
        # Short words stay whole: their stems collide ("como" and "comer" are both "com").
        return word if len(word) < MIN_STEMMED else stem_word(word)

    return stem


# Joins the parts of a crisis keyword that may stand anywhere in a message: "fever + chemo".
TOGETHER = " + "


def keyword_key(phrase: tuple[str, ...], stem: Callable[[str], str], kind: TopicKind) -> tuple[str, ...]:
    """What a keyword is matched by: commands as typed, everything else by word stems. Two
    keywords with the same key are the same keyword to the bot."""
    return phrase if kind == TopicKind.CONTROL else tuple(stem(word) for word in phrase)


def allowed_typos(word: str) -> int:
    """Edits tolerated in a word: none in short words, where one edit makes another word."""
    if len(word) < 4 or word.isdigit():
        return 0
    return 1 if len(word) < 8 else 2


def deletions(word: str, depth: int) -> set[str]:
    """``word`` with up to ``depth`` letters left out, in every way."""
    variants = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        variants |= frontier
    return variants


class TypoIndex:
    """Nearest known word within a small edit distance, in time independent of vocabulary size."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self._candidates: dict[str, list[str]] = defaultdict(list)
        self._longest = 0
        for word in sorted(set(vocabulary)):
            self._longest = max(self._longest, len(word))
            for variant in deletions(word, allowed_typos(word)):
                self._candidates[variant].append(word)

    def nearest(self, word: str) -> set[str]:
        """The known words nearest to ``word`` (all of them, when several are equally near)."""
        budget = allowed_typos(word)
        if budget == 0:
            return set()
        if len(word) - budget > self._longest:
            # No variant of it can be a key: without this, one long token (a pasted URL, 1,600
            # letters) costs len**3 (200 letters: 0.3 s; 1,600: minutes) and stalls the worker.
            return set()
        nearest: set[str] = set()
        best_distance = budget + 1
        for variant in deletions(word, budget):
            for candidate in self._candidates.get(variant, ()):
                limit = min(budget, allowed_typos(candidate))
                distance = OSA.distance(word, candidate, score_cutoff=limit)
                if distance > limit or distance > best_distance:
                    continue
                if distance < best_distance:
                    nearest, best_distance = set(), distance
                nearest.add(candidate)
        return nearest


@dataclass(frozen=True)
class Understanding:
    """What a message asks for. ``lang`` is the language the message is written in, if it tells."""

    kind: Understood
    topic: str | None = None
    lang: str | None = None
    keyword_lang: str | None = None  # the language whose keyword matched (a switch's target)
    number: int | None = None
    word: str | None = None  # the whole message, when it is one word exactly as typed ("STOP")
    feeling: bool = False  # asked in fear, grief or loneliness ("im scared, how long...")


@dataclass(frozen=True)
class _Keyword:
    topic: str
    lang: str
    weight: float
    order: int
    kind: TopicKind = TopicKind.CONTENT


# A crisis keyword of parts that may stand anywhere: each part's stems, and the keyword.
_PartsRule = tuple[tuple[tuple[str, ...], ...], _Keyword]


class PhraseTable(dict[tuple[str, ...], _Keyword]):
    """Phrases by their words, and for each first word the longest phrase it starts, so a scan
    only tries the positions and lengths that can match."""

    def __init__(self) -> None:
        super().__init__()
        self.longest: dict[str, int] = {}

    def __setitem__(self, phrase: tuple[str, ...], keyword: _Keyword) -> None:
        super().__setitem__(phrase, keyword)
        self.longest[phrase[0]] = max(self.longest.get(phrase[0], 0), len(phrase))

    def setdefault(self, phrase: tuple[str, ...], keyword: _Keyword) -> _Keyword:  # type: ignore[override]
        if phrase not in self:
            self[phrase] = keyword
        return self[phrase]


class Understander:
    """Built once per catalog at start-up; ``understand`` is then pure and allocation-light.

    Keywords and messages are compared word stem by word stem (Snowball, through PyStemmer), in
    each language with its own stemmer, so "ending it all" meets "end it all" and "curarse"
    meets "curar". Control words are compared as typed: ALTO (stop) and ALTA (start) share a stem.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.languages = list(catalog.languages)
        self.stemmers = {lang: stemmer_for(lang) for lang in self.languages}
        self.vocabulary: dict[str, set[str]] = defaultdict(set)
        self.keyword_words: set[str] = set()
        self.known_stems: dict[str, set[str]] = {lang: set() for lang in self.languages}
        self.crisis = {lang: PhraseTable() for lang in self.languages}
        self.crisis_words: dict[str, dict[str, _Keyword]] = {lang: {} for lang in self.languages}
        # Crisis keywords of parts that may stand anywhere in the message ("fever + chemo"), filed
        # under one word that must be in the message: the longest first word of their parts.
        self.crisis_together: dict[str, dict[str, list[_PartsRule]]] = {
            lang: defaultdict(list) for lang in self.languages}
        self.phrases = {lang: PhraseTable() for lang in self.languages}
        # Commands by their words less filler; each with the words a message must also contain
        # (none, unless what is left is only everyday words: see _add_command).
        self.control: dict[tuple[str, ...], list[tuple[frozenset[str], _Keyword]]] = {}
        self.filler: set[str] = set()
        self.common: set[str] = set()
        # Non-ASCII letters each language's own words use: a hint when the words don't tell.
        self.letters: dict[str, set[str]] = defaultdict(set)

        for lang in self.languages:
            for word in catalog.words("filler", lang):
                self.filler.update(tokenize(word))
            for word in catalog.words("common", lang):
                self.common.update(tokenize(word))

        for order, topic in enumerate(catalog.source.topics):
            for lang in self.languages:
                stem = self.stemmers[lang]
                for keyword in catalog.keywords(topic, lang):
                    for ch in keyword.casefold():
                        if not ch.isascii() and ch.isalpha():
                            self.letters[ch].add(lang)
                    phrase = tuple(tokenize(keyword))
                    if not phrase:
                        continue
                    entry = _Keyword(topic.id, lang, topic.weight, order, topic.kind)
                    stems = keyword_key(phrase, stem, TopicKind.CONTENT)
                    for word in phrase:
                        self.vocabulary[word].add(lang)
                        self.keyword_words.add(word)
                    self.known_stems[lang].update(stems)
                    if topic.kind == TopicKind.CRISIS and TOGETHER in keyword:
                        parts = tuple(keyword_key(tuple(tokenize(part)), stem, TopicKind.CONTENT)
                                      for part in keyword.split(TOGETHER))
                        parts = tuple(part for part in parts if part)
                        anchor = max((part[0] for part in parts), key=len)
                        self.crisis_together[lang][anchor].append((parts, entry))
                    elif topic.kind == TopicKind.CRISIS and len(phrase) == 1:
                        # One word matches as typed (after typo correction): stems of single
                        # words reach too far ("matarme" and "matan", "lastimarme" and "lástima").
                        self.crisis_words[lang].setdefault(phrase[0], entry)
                    elif topic.kind == TopicKind.CRISIS:
                        self.crisis[lang].setdefault(stems, entry)
                    elif topic.kind == TopicKind.CONTROL:
                        self._add_command(phrase, entry)
                        if topic.inside and len(phrase) >= topic.inside:
                            self._add(self.phrases[lang], stems, entry)
                    else:
                        self._add(self.phrases[lang], stems, entry)
        for lang in self.languages:
            # Longest match wins in a scan, so a calm phrase claims its words before a crisis
            # keyword inside it ("dont want to die" before "want to die") can.
            stem = self.stemmers[lang]
            for calm in catalog.words("not_crisis", lang):
                words = tuple(tokenize(calm))
                if words:
                    # setdefault: a phrase that is also a crisis keyword stays a crisis.
                    key = keyword_key(words, stem, TopicKind.CRISIS)  # by stems, as crisis keywords are
                    self.crisis[lang].setdefault(key, _Keyword(NOT_CRISIS, lang, 0.0, -1))
                    for word in words:  # known as typed, never "corrected" out of the phrase
                        self.vocabulary[word].add(lang)
            for name in ("common", "filler"):
                for word in catalog.words(name, lang):
                    for token in tokenize(word):
                        self.vocabulary[token].add(lang)
        self.typos = TypoIndex(self.vocabulary)

    @staticmethod
    def _add(table: dict[tuple[str, ...], _Keyword], phrase: tuple[str, ...], entry: _Keyword) -> None:
        # The first topic to claim a phrase keeps it; `mbcsms translations check` reports the clash.
        table.setdefault(phrase, entry)

    def _add_command(self, phrase: tuple[str, ...], entry: _Keyword) -> None:
        """Commands are matched against the message less its filler ("stop please"), so they are
        filed likewise. But when what is left is only everyday words, it cannot stand for the
        command alone: "ya no quiero mensajes" less its filler is "no", and a patient's "No"
        or "no thanks" must not unsubscribe them. Such a command also needs all its own words
        in the message."""
        core = self._without_filler(phrase)
        needs = frozenset(phrase) if all(word in self.common for word in core) else frozenset()
        self.control.setdefault(core, []).append((needs, entry))

    def _command(self, core: tuple[str, ...], typed: list[str]) -> _Keyword | None:
        # The first command filed under these words wins; `translations check` reports clashes.
        present = set(typed)
        return next((entry for needs, entry in self.control.get(core, ()) if needs <= present), None)

    def _without_filler(self, words: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(word for word in words if word not in self.filler) or words

    def _corrected(self, tokens: list[str]) -> list[str]:
        return [self._correct(token) for token in tokens]

    def _correct(self, token: str) -> str:
        if token in self.vocabulary:
            return token
        # Another form of a known word ("spreading") is not a typo: its stem will match.
        for lang in self.languages:
            if self.stemmers[lang](token) in self.known_stems[lang]:
                return token
        nearest = self.typos.nearest(token)
        if len(nearest) > 1:
            # A keyword's word is the likelier meaning than an everyday word as near ("uesos":
            # huesos, not usos).
            nearest = {word for word in nearest if word in self.keyword_words} or nearest
        if len(nearest) == 1:
            return nearest.pop()
        # Equally near words are one correction only when they are forms of one word
        # ("survive", "survival"); "altp" is as near ALTO (stop) as ALTA (start), and a guess
        # could opt a patient back in.
        for lang in self.languages:
            if nearest and len({self.stemmers[lang](word) for word in nearest}) == 1:
                return min(nearest)
        return token

    def _letter_hint(self, text: str) -> str | None:
        """The one language whose keywords use the message's accented letters (á, ñ, ã...)."""
        langs: set[str] = set()
        for ch in text.casefold():
            if ch in self.letters:
                langs |= self.letters[ch]
        return next(iter(langs)) if len(langs) == 1 else None

    def language(self, words: list[str]) -> str | None:
        """The one language with the most of the message's words, or None when none leads."""
        counts: dict[str, int] = defaultdict(int)
        for word in words:
            if word.isdigit():  # a number tells no language, whichever keyword holds it ("fever + 101")
                continue
            langs = self.vocabulary.get(word)
            if langs is None:  # another form of a keyword ("holaa", "curarse") still tells
                langs = {code for code in self.languages if self.stemmers[code](word) in self.known_stems[code]}
            for lang in langs:
                counts[lang] += 1
        if not counts:
            return None
        ranked = sorted(counts.values(), reverse=True)
        if len(ranked) > 1 and ranked[0] == ranked[1]:
            return None
        return max(counts, key=counts.__getitem__)

    def understand(self, text: str) -> Understanding:
        every = tokenize(text)[:MAX_CRISIS_TOKENS]
        tokens = every[:MAX_TOKENS]
        words = self._corrected(tokens)
        # The words as typed tell the language best: a typo corrected to a near word of the
        # other language ("comer" -> "come") must not flip it.
        lang = self.language(tokens) or self.language(words) or self._letter_hint(text)
        if not words:
            return Understanding(Understood.EMPTY, None, lang)
        # Crisis words are looked for in the whole message, however long: the end of a long
        # message may be the part that matters most. Past MAX_TOKENS, words are not corrected.
        whole = words + every[MAX_TOKENS:]
        stems = {code: [self.stemmers[code](word) for word in whole] for code in self.languages}
        for code in self.languages:
            keyword = self._crisis(code, whole, every, stems[code])
            if keyword is not None:
                return Understanding(Understood.CRISIS, "crisis", lang or keyword.lang, keyword.lang)

        # Commands count only as typed: a corrected typo could unsubscribe ("quilt" -> quit,
        # "pasta" -> basta) or opt someone back in ("altp" -> alta) against their will.
        bare = self._without_filler(tuple(tokens))
        command = tuple(word for i, word in enumerate(bare) if i == 0 or word != bare[i - 1])  # "STOP STOP"
        control = self._command(command, tokens)
        if control is not None:
            typed = text.strip().casefold()
            word = typed if tokens == [typed] else None
            return Understanding(Understood.CONTROL, control.topic, lang or control.lang, control.lang, word=word)
        if len(command) == 1 and command[0].isdigit():
            return Understanding(Understood.NUMBER, None, lang, number=int(command[0]))

        # Each language reads the message with its own stems; a topic keeps its best reading.
        scores: dict[str, float] = {}
        first: dict[str, tuple[_Keyword, int]] = {}  # its first keyword, and where it stood
        phrases: dict[str, int] = {}  # how many of its keywords the best reading found
        covered: dict[str, int] = {}  # how many of the message's words that reading explained
        for code in self.languages:
            hits = self._scan(stems[code][: len(words)], self.phrases[code])
            reading: dict[str, float] = defaultdict(float)
            found: dict[str, tuple[_Keyword, int]] = {}
            for keyword, length, position in hits:
                # A longer phrase is more specific, but two words are not twice the evidence.
                reading[keyword.topic] += math.sqrt(length) * keyword.weight
                found.setdefault(keyword.topic, (keyword, position))
            for topic, score in reading.items():
                if score > scores.get(topic, 0.0) or (score == scores[topic] and found[topic][0].lang == lang):
                    scores[topic], first[topic] = score, found[topic]
                    phrases[topic] = sum(1 for keyword, _, _ in hits if keyword.topic == topic)
                    covered[topic] = sum(length for _, length, _ in hits)
        if not scores:
            return Understanding(Understood.NOTHING, None, lang)

        def rank(topic: str) -> tuple[bool, float, float, int, int]:
            keyword, position = first[topic]
            # Words that only name the disease ("stage 4", "cáncer de mama") never outweigh
            # the words of a question about it, however many of them there are; on a tie,
            # what a patient asks first is what they came for.
            return keyword.weight >= 1, scores[topic], keyword.weight, -position, -keyword.order

        best = max(scores, key=rank)
        keyword = first[best][0]
        unexplained = len(words) - covered[best]
        if keyword.kind == TopicKind.CONTENT and keyword.weight < 1 and phrases[best] == 1 and unexplained >= UNEXPLAINED:
            # A message that names the disease once among many words we have no keyword for
            # asks about something else ("can I keep my job with stage 4?"): the helpline's.
            return Understanding(Understood.NOTHING, None, lang)
        return Understanding(Understood.TOPIC, best, lang, keyword.lang)

    def _crisis(self, code: str, words: list[str], typed: list[str], stems: list[str]) -> _Keyword | None:
        """The first crisis keyword of ``words`` in one language: a phrase by stems, or a
        single word as typed (or corrected without changing its first letter: "sucide" is
        suicide, but "painted" is not fainted), or parts that stand anywhere ("fever + chemo"),
        except where a calm phrase holds the words. ``stems`` are the words' stems in ``code``."""
        calm: set[int] = set()
        for keyword, length, position in self._scan(stems, self.crisis[code]):
            if keyword.topic != NOT_CRISIS:
                return keyword
            calm.update(range(position, position + length))
        single = self.crisis_words[code]
        for position, (word, as_typed) in enumerate(zip(words, typed)):
            if word in single and position not in calm and (word == as_typed or word[0] == as_typed[:1]):
                return single[word]
        together = self.crisis_together[code]
        # Only the rules filed under a word of this message can match: usually none.
        candidates = [rule for word in set(stems) for rule in together.get(word, ())]
        if candidates:
            # Where each stem stands, outside calm phrases ("if I get a fever" is a question).
            where: dict[str, list[int]] = defaultdict(list)
            for position, word in enumerate(stems):
                if position not in calm:
                    where[word].append(position)
            for parts, keyword in candidates:
                if all(self._stands(part, stems, where) for part in parts):
                    return keyword
        return None

    @staticmethod
    def _stands(part: tuple[str, ...], stems: list[str], where: dict[str, list[int]]) -> bool:
        return any(tuple(stems[start : start + len(part)]) == part for start in where.get(part[0], ()))

    @staticmethod
    def _scan(words: list[str], table: PhraseTable) -> list[tuple[_Keyword, int, int]]:
        """Longest phrases of ``table`` found in ``words``, left to right, without overlap:
        (keyword, its length in words, where it starts)."""
        hits = []
        longest = table.longest
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
