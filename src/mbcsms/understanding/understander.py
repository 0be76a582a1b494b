"""Stage 5 of understanding: what a patient's message is about, and which language it is in.

The stages, in the order ``Understander.understand`` runs them:

1. **normalise** (:mod:`.text`): case, accents, punctuation gone; listed emoji read as words.
2. **correct typos** (:mod:`.typos`): each unknown word to the nearest word we know.
3. **crisis**: every language's crisis phrase rules (:mod:`.keywords`) OR the model's crisis
   probability at or above its threshold (:mod:`.model`, chosen by ``mbcsms model train`` on
   out-of-fold scores). Every message is screened by every language's rules and by the model,
   whatever language it is written in; the model's verdict is taken after stage 4, so a
   message that is exactly a command ("stop please", "HELP") stays that command; where calm
   phrases stand, the model must reach its threshold on the words outside them too (none
   for a message that is a calm phrase and at most one word more: "I don't want to die",
   "I'm scared of dying" are fear, not a crisis).
4. **commands**: STOP, START, HELP, language switches and menu numbers, as exact rules on the
   words as typed (a corrected typo must never opt someone in or out).
5. **topic**: the keyword rules and the model's topic together (:func:`decide_topic`).
6. **language**: the language with most of the message's words.

How the topic is decided (the model's best label ``M`` with probability ``p``; ``K`` the keyword
rules' topic, if any; ``high`` and ``floor`` stored with the model, chosen out of fold):

- a message of listed emoji only is what they say (😢 feelings, 👍 thanks);
- a command's phrase inside a message (a language switch, help) is the rules' (the model has no
  such label);
- ``M`` and ``K`` agree, or ``M`` is ``feelings`` and ``K`` is found: ``K`` (the feeling is
  still carried by ``Understanding.feeling``);
- ``p >= high``: the model's label, also when it is ``out_of_scope`` (the fallback with the
  helpline): a topic's keyword inside a question the sources do not cover ("Herceptin side
  effects") does not get that topic's facts;
- otherwise ``K`` if the rules found one;
- otherwise ``M`` if ``p >= floor`` and ``M`` is not ``out_of_scope``;
- otherwise nothing: the fallback with the helpline.

The model's ``greeting`` is the ``menu`` topic; its other small talk (``thanks``, ``ack``,
``goodbye``, ``human_check``) and ``feelings`` come out as topics of those names.
``Understanding.feeling`` says whether the message expresses fear, grief or loneliness (the
model's ``feelings`` probability at or above ``feeling_bar``, a feelings keyword of
``locales/<lang>/keywords/feelings.txt``, or a feelings emoji), whatever its topic.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from ..catalog import Catalog, TopicKind
from .keywords import ALONE_SLACK, FEELINGS, NOT_CRISIS, Keyword, KeywordTables, PhraseTable, scan
from .model import WORD_CACHE, Model, Scores
from .text import EMOJI_WORD, emoji_label, normalise

# A message longer than this is read only in part: enough for any question, and a 5,000
# character body cannot make the request path slow.
MAX_TOKENS = 120
# Twilio's longest inbound body (WhatsApp, 4,096 characters) stays well under this many words.
MAX_CRISIS_TOKENS = 1200
# The topic model sure of an ordinary question ("esperanza de vida", "¿Debo cortarme el pelo
# antes de la quimio?") overrules a crisis score that is only a little over the threshold: short
# messages carry few features, so the crisis model says little more than its prior there. A
# crisis score at VETO_BELOW or above always stands; the phrase rules are never overruled.
# Chosen out of fold on the training sets (mbcsms model train): it removes about one false alarm
# in six for less than a point of recall, and the threshold is then chosen with it in place.
TOPIC_VETO = 0.9
# Where a calm phrase stands ("me va a matar si...", "life expectancy"), the words outside it
# must be a crisis on their own with some confidence: a few leftover words ("que ... tengo")
# carry little more than the model's prior, which in Spanish sits near the threshold.
CALM_BAR = 0.7
VETO_BELOW = 0.6
# A crisis rule of parts that stand anywhere ("fever + chemo", "calentura + quimio") is
# circumstantial: the same words make a question ("que hago si le da calentura con la quimio?"),
# a past event ("got admitted 3 days for neutropenic fever, home now") or a discharge sheet read
# aloud. It counts unless the model is all but sure the message is no crisis: a crisis
# probability under TOGETHER_FLOOR. Chosen out of fold (mbcsms model train's scores): no crisis
# a rule of parts caught in the training sets scored under 0.03 (0.038 with the model before
# w43-w50, 0.032 with the one after), while 17 of those rules' 58 false alarms there did; at
# first contact with w43-w46 the floor set aside 4 of the phrase rules' 29 false alarms and none
# of their crises (the lowest scored 0.21).
# Every other phrase rule stands whatever the model says.
TOGETHER_FLOOR = 0.02


def rule_stands(circumstantial: bool, crisis: float) -> bool:
    """Whether a crisis rule that fired counts, given the model's crisis probability: a rule of
    parts only at ``TOGETHER_FLOOR`` or above, every other rule always. The bot, training's
    operating points and ``model evaluate`` all decide by this."""
    return not circumstantial or crisis >= TOGETHER_FLOOR

# Words beside a calm phrase ("i" in "i dont want to die") that still leave a message calm.
CALM_SLACK = 1
# Words left unexplained around a general topic's single keyword before the message is taken to
# ask about something else.
UNEXPLAINED = 5

OUT_OF_SCOPE = "out_of_scope"
GREETING = "greeting"
SMALL_TALK = frozenset({"thanks", "ack", "goodbye", "human_check", FEELINGS})
# The model's labels that are answered by another topic of the catalog.
MODEL_TOPIC = {GREETING: "menu"}


class Understood(StrEnum):
    """What a message was understood as: ``Understanding.kind``."""

    CRISIS = "crisis"  # an emergency or self-harm: the crisis reply, before anything else
    CONTROL = "control"  # a control topic's keyword as the whole message (STOP, START, HELP...)
    NUMBER = "number"  # a number alone: a pick from the numbered menu
    TOPIC = "topic"  # a topic (keywords and model), small talk or feelings
    NOTHING = "nothing"  # words, but none we have an answer for
    EMPTY = "empty"  # no words at all: an empty body, or only punctuation


@dataclass(frozen=True)
class Understanding:
    """What a message asks for. ``lang`` is the language the message is written in, if it tells."""

    kind: Understood
    topic: str | None = None
    lang: str | None = None
    keyword_lang: str | None = None  # the language whose keyword matched (a switch's target)
    number: int | None = None
    word: str | None = None  # the whole message, when it is one word exactly as typed ("STOP")
    feeling: bool = False  # the message expresses fear, grief or loneliness


@dataclass(frozen=True)
class _Reading:
    """A message's words at stages 1 and 2 (``Understander._read``)."""

    plain: str  # normalised text
    every: list[str]  # its words as typed, up to MAX_CRISIS_TOKENS
    tokens: list[str]  # the first MAX_TOKENS of them
    words: list[str]  # tokens with typos corrected
    whole: list[str]  # words, then the rest of every as typed
    stems: dict[str, list[str]]  # whole's stems in each language


def decide_topic(rules: str | None, model: str | None, probability: float, high: float,
                 floor: float) -> str | None:
    """The topic rule of the module docstring: ``rules`` the keyword topic (or None),
    ``model`` the model's best label with its ``probability``. None: the fallback."""
    if model is not None:
        model = MODEL_TOPIC.get(model, model)
    if rules is not None and (rules == model or model == FEELINGS):
        # The model's feelings do not replace the keyword rules' topic: "me siento sola" gets
        # the support answer, and ``Understanding.feeling`` still says it expresses feelings.
        return rules
    if model is not None and probability >= high:
        return None if model == OUT_OF_SCOPE else model
    if rules is not None:
        return rules
    if model is not None and probability >= floor and model != OUT_OF_SCOPE:
        return model
    return None


class Understander:
    """Built once per catalog at start-up; ``understand`` is then pure and allocation-light."""

    def __init__(self, catalog: Catalog, model: Model | None = None) -> None:
        self.catalog = catalog
        self.tables = tables = KeywordTables(catalog)
        self.model = model if model is not None else Model.load()
        # A word's correction depends on the tables alone: worked out once a word (the typo
        # index's search is the costly part), for as many words as the model keeps.
        self._correct = lru_cache(maxsize=WORD_CACHE)(self._correct)  # type: ignore[method-assign]
        # A word's stems in each language (in ``languages``' order), as often: Snowball is a call
        # a word and a language, and a message's words are mostly words met before.
        self._stems = lru_cache(maxsize=WORD_CACHE)(self._stems)  # type: ignore[method-assign]
        self.languages = tables.languages
        self.stemmers = tables.stemmers
        self.vocabulary = tables.vocabulary
        self.crisis = tables.crisis
        self.phrases = tables.phrases
        self.control = tables.control
        self.feelings = tables.feelings
        for lang in tables.without_crisis:
            # Still screened by every other language's phrases and by the model: say so, once.
            from .. import logs

            logs.event("language_without_crisis_phrases", logging.WARNING, lang=lang,
                       reason="screened by the other languages' crisis phrases and the model only")

    # -- stage 2: typos ------------------------------------------------------------------------

    def _corrected(self, tokens: list[str]) -> list[str]:
        return [self._correct(token) for token in tokens]

    def _correct(self, token: str) -> str:
        tables = self.tables
        if token in tables.vocabulary or emoji_label(token):
            return token
        # Another form of a known word ("spreading") is not a typo: its stem will match.
        for lang, stem in zip(self.languages, self._stems(token), strict=True):
            if stem in tables.known_stems[lang]:
                return token
        nearest = tables.typos.nearest(token)
        if len(nearest) > 1:
            # A keyword's word is the likelier meaning than an everyday word as near ("uesos":
            # huesos, not usos).
            nearest = {word for word in nearest if word in tables.keyword_words} or nearest
        if len(nearest) == 1:
            return nearest.pop()
        # Equally near words are one correction only when they are forms of one word
        # ("survive", "survival"); "altp" is as near ALTO (stop) as ALTA (start), and a guess
        # could opt a patient back in.
        for lang in self.languages:
            if nearest and len({self.stemmers[lang](word) for word in nearest}) == 1:
                return min(nearest)
        return token

    def _stems(self, word: str) -> tuple[str, ...]:
        return tuple(self.stemmers[code](word) for code in self.languages)

    # -- stage 6: language ---------------------------------------------------------------------

    def _letter_hint(self, text: str) -> str | None:
        """The one language whose keywords use the message's accented letters (á, ñ, ã...)."""
        langs: set[str] = set()
        letters = self.tables.letters
        for ch in text.casefold():
            if ch in letters:
                langs |= letters[ch]
        return next(iter(langs)) if len(langs) == 1 else None

    def language(self, words: list[str]) -> str | None:
        """The one language with the most of the message's words, or None when none leads."""
        counts: dict[str, int] = defaultdict(int)
        known_stems = self.tables.known_stems
        for word in words:
            if word.isdigit():  # a number tells no language, whichever keyword holds it ("fever + 101")
                continue
            langs = self.vocabulary.get(word)
            if langs is None:  # another form of a keyword ("holaa", "curarse") still tells
                langs = {code for code, stem in zip(self.languages, self._stems(word), strict=True)
                         if stem in known_stems[code]}
            for lang in langs:
                counts[lang] += 1
        if not counts:
            return None
        ranked = sorted(counts.values(), reverse=True)
        if len(ranked) > 1 and ranked[0] == ranked[1]:
            return None
        return max(counts, key=counts.__getitem__)

    # -- the stages together -------------------------------------------------------------------

    def _read(self, text: str) -> _Reading:
        """Stages 1 and 2: the message's words, corrected, and their stems in each language.
        Crisis words are looked for in the whole message, however long: the end of a long
        message may be the part that matters most. Past MAX_TOKENS, words are not corrected."""
        plain = normalise(text[:MAX_CRISIS_TOKENS * 40])
        every = plain.split()[:MAX_CRISIS_TOKENS]
        tokens = every[:MAX_TOKENS]
        words = self._corrected(tokens)
        whole = words + every[MAX_TOKENS:]
        stemmed = [self._stems(word) for word in whole]
        stems = {code: [each[i] for each in stemmed] for i, code in enumerate(self.languages)}
        return _Reading(plain, every, tokens, words, whole, stems)

    def _command_words(self, tokens: list[str]) -> tuple[str, ...]:
        """The words a command is matched by: the message less its filler, a repeated word
        once ("STOP STOP")."""
        bare = self.tables.without_filler(tuple(tokens))
        return tuple(word for i, word in enumerate(bare) if i == 0 or word != bare[i - 1])

    def understand(self, text: str) -> Understanding:
        reading = self._read(text)
        every, tokens, words, stems = reading.every, reading.tokens, reading.words, reading.stems
        # The words as typed tell the language best: a typo corrected to a near word of the
        # other language ("comer" -> "come") must not flip it.
        lang = self.language(tokens) or self.language(words) or self._letter_hint(text)
        if not words:
            return Understanding(Understood.EMPTY, None, lang)
        # An emoji is read as a word starting "emoji" ("emojifeelings"): most messages hold none.
        emoji = EMOJI_WORD in reading.plain

        # Stage 3, crisis: the phrase rules first; the model's verdict comes after the commands.
        keyword, calm = self.crisis_rule(reading.whole, every, stems)
        scores: Scores | None = None
        if keyword is not None and keyword.circumstantial:
            scores = self.model.score(text, reading.plain)
            if not rule_stands(keyword.circumstantial, scores.crisis):
                keyword = None
        if keyword is not None:
            return Understanding(Understood.CRISIS, "crisis", lang or keyword.lang, keyword.lang)

        # Stage 4, commands. They count only as typed: a corrected typo could unsubscribe
        # ("quilt" -> quit, "pasta" -> basta) or opt someone back in ("altp" -> alta). A message
        # that is exactly a command ("stop please", "HELP") is that command, as before the
        # model: the model's crisis verdict applies to every other message.
        # An emoji beside a command ("español 🙏") is not part of it.
        if emoji:
            tokens = [word for word in tokens if not emoji_label(word)] or tokens
        command = self._command_words(tokens)
        control = self._command(command, tokens)
        if control is not None:
            typed = text.strip().casefold()
            word = typed if tokens == [typed] else None
            return Understanding(Understood.CONTROL, control.topic, lang or control.lang, control.lang, word=word)
        if len(command) == 1 and command[0].isdigit():
            return Understanding(Understood.NUMBER, None, lang, number=int(command[0]))
        # Scored only now: a message a crisis phrase, a command or a menu number decided above
        # never needed the model (a quarter of bench/load.py's mix).
        scores = scores or self.model.score(text, reading.plain)
        # The model's verdict, where calm phrases stand, is on the words outside them: a
        # message that is a calm phrase and at most one word more ("I don't want to die", "I'm
        # scared of dying") is fear, not a crisis; "does my insurance cover the emergency room"
        # is read as "does my insurance cover the", while "i dont want to die from cancer, i'd
        # rather do it myself" still is a crisis by its words outside the calm phrase.
        # A lone word the bot does not know ("altp") is a typo, not a cry for help: the model
        # reads its letters alone and can make anything of them. Lone crisis words ("suicide",
        # "sos") are the phrase rules' to catch.
        lone_unknown = len(every) == 1 and every[0] not in self.vocabulary and not every[0].isdigit()
        vetoed = scores.topics[scores.topic] >= TOPIC_VETO and scores.crisis < VETO_BELOW
        if (scores.crisis >= self.model.crisis_threshold and not lone_unknown and not vetoed
                and self._crisis_outside_calm(every, calm)):
            return Understanding(Understood.CRISIS, "crisis", lang)

        # Stage 5, topic.
        feeling = self.expresses_feeling(scores, stems, words, emoji)
        labels = {label for word in words if (label := emoji_label(word))} if emoji else set()
        if labels and all(emoji_label(word) for word in words):
            # Only emoji: what they say; feelings first (a 😢 with a 🙏 is not a thank-you).
            label = FEELINGS if FEELINGS in labels else min(labels)
            label = MODEL_TOPIC.get(label, label)
            return Understanding(Understood.TOPIC, label, lang, feeling=feeling or label == FEELINGS)
        found = self.keyword_topic(words, stems, lang)
        if found and found[0].kind == TopicKind.CONTROL:
            # A command's phrase inside a message ("can you text me in spanish"): the model has
            # no such label, so the rules decide, as before it.
            return Understanding(Understood.TOPIC, found[0].topic, lang, found[0].lang, feeling=feeling)
        best = scores.topic
        topic = decide_topic(found[0].topic if found else None, best, scores.topics[best],
                             self.model.topic_high, self.model.topic_floor)
        if topic is None:
            return Understanding(Understood.NOTHING, None, lang, feeling=feeling)
        keyword_lang = found[0].lang if found and found[0].topic == topic else None
        return Understanding(Understood.TOPIC, topic, lang, keyword_lang, feeling=feeling)

    def _crisis_outside_calm(self, every: list[str], calm: frozenset[int]) -> bool:
        """The model's crisis verdict on the words outside calm phrases (the message scored
        above the threshold as a whole)."""
        if not calm:
            return True
        outside = self.outside_calm(every, calm)
        bar = max(self.model.crisis_threshold, CALM_BAR)
        return outside is not None and self.model.score(outside, outside).crisis >= bar

    @staticmethod
    def outside_calm(every: list[str], calm: frozenset[int]) -> str | None:
        """The message's words outside its calm phrases, or None when at most ``CALM_SLACK``
        words are left (the message is a calm phrase: the model's verdict is set aside)."""
        outside = [word for position, word in enumerate(every) if position not in calm]
        return " ".join(outside) if len(outside) > CALM_SLACK else None

    def expresses_feeling(self, scores: Scores, stems: dict[str, list[str]], words: list[str],
                          emoji: bool = True) -> bool:
        """``emoji``: whether the words may hold an emoji (False: they hold none)."""
        if scores.topics.get(FEELINGS, 0.0) >= self.model.feeling_bar:
            return True
        if emoji and any(emoji_label(word) == FEELINGS for word in words):
            return True
        return any(scan(stems[code][: len(words)], table) for code, table in self.feelings.items())

    # -- stage 3: the crisis rules -------------------------------------------------------------

    def crisis_by_rules(self, text: str) -> Keyword | None:
        """The crisis rule that fires on ``text``, if any (stage 3 without the model)."""
        reading = self._read(text)
        return self.crisis_rule(reading.whole, reading.every, reading.stems)[0]

    def rules_reading(self, text: str) -> tuple[bool, bool, str | None]:
        """The rules alone, for training and evaluation: (a crisis phrase fired, a command or
        menu number, the keyword rules' topic)."""
        return self.rules_reading_calm(text)[:3]

    def rules_reading_calm(self, text: str) -> tuple[bool, bool, str | None, bool, str | None, bool]:
        """``rules_reading`` and, for the model's verdict: whether calm phrases stand in the
        message, its words outside them (``outside_calm``), and whether the crisis rule that
        fired is circumstantial (it counts at ``TOGETHER_FLOOR`` or above)."""
        reading = self._read(text)
        every, tokens, words, stems = reading.every, reading.tokens, reading.words, reading.stems
        keyword, calm = self.crisis_rule(reading.whole, every, stems)
        crisis = keyword is not None
        command = self._command_words(tokens)
        is_command = bool(tokens) and (self._command(command, tokens) is not None
                                       or (len(command) == 1 and command[0].isdigit()))
        found = self.keyword_topic(words, stems, self.language(tokens)) if words else None
        return (crisis, is_command, found[0].topic if found else None, bool(calm),
                self.outside_calm(every, calm) if calm else None, keyword is not None and keyword.circumstantial)

    def crisis_rule(self, words: list[str], typed: list[str], stems: dict[str, list[str]]
                    ) -> tuple[Keyword | None, frozenset[int]]:
        """The first crisis rule any language's phrases find in the message (or None), and the
        positions of the words the calm phrases hold (every language's). A circumstantial rule
        is named only when no language has another."""
        held: set[int] = set()
        circumstantial: Keyword | None = None
        for code in self.languages:
            keyword, calm = self._crisis(code, words, typed, stems[code])
            if keyword is not None and not keyword.circumstantial:
                return keyword, frozenset(calm)
            circumstantial = circumstantial or keyword
            held |= calm
        return circumstantial, frozenset(held)

    def _crisis(self, code: str, words: list[str], typed: list[str], stems: list[str]
                ) -> tuple[Keyword | None, set[int]]:
        """The first crisis keyword of ``words`` in one language: a phrase by stems, or a
        single word as typed (or corrected without changing its first letter: "sucide" is
        suicide, but "painted" is not fainted), or parts that stand anywhere ("fever + chemo"),
        except where a calm phrase holds the words. ``stems`` are the words' stems in ``code``."""
        calm: set[int] = set()
        for keyword, length, position in scan(stems, self.tables.crisis[code]):
            if keyword.topic != NOT_CRISIS:
                return keyword, calm
            calm.update(range(position, position + length))
        single = self.tables.crisis_words[code]
        if not single.keys().isdisjoint(words):  # most messages hold no crisis word at all
            for position, (word, as_typed) in enumerate(zip(words, typed, strict=True)):
                if word in single and position not in calm and (word == as_typed or word[0] == as_typed[:1]):
                    return single[word], calm
        together = self.tables.crisis_together[code]
        # Only the rules filed under a word of this message can match: usually none. In the
        # message's order (not a set's, which varies with the process's hash seed), so the same
        # rule is named for the same message every time.
        if not together.keys().isdisjoint(stems):
            candidates = [rule for word in dict.fromkeys(stems) for rule in together.get(word, ())]
            # Where each stem stands, outside calm phrases ("if I get a fever" is a question).
            where: dict[str, list[int]] = defaultdict(list)
            for position, word in enumerate(stems):
                if position not in calm:
                    where[word].append(position)
            for parts, keyword in candidates:
                if all(self._stands(part, stems, where.get(part[0], ())) for part in parts):
                    # A message little more than a cry for help is that, whatever else it holds.
                    return self._alone(code, stems, calm) or keyword, calm
        return self._alone(code, stems, calm), calm

    def _alone(self, code: str, stems: list[str], calm: set[int]) -> Keyword | None:
        """A crisis_alone rule that is (nearly) the whole message: at most ALONE_SLACK words
        beside it ("please call 911 now"), none of them held by a calm phrase."""
        if len(stems) > self.tables.alone_words[code] or calm:
            return None
        for keyword, length, _ in scan(stems, self.tables.crisis_alone[code]):
            if len(stems) - length <= ALONE_SLACK:
                return keyword
        for parts, keyword in self.tables.crisis_alone_parts[code]:
            if len(stems) - sum(map(len, parts)) <= ALONE_SLACK and all(
                    self._stands(part, stems, range(len(stems))) for part in parts):
                return keyword
        return None

    @staticmethod
    def _stands(part: tuple[str, ...], stems: list[str], starts: Iterable[int]) -> bool:
        """Whether ``part`` stands in ``stems`` at one of ``starts``."""
        return any(tuple(stems[start : start + len(part)]) == part for start in starts)

    # -- stage 4: commands ---------------------------------------------------------------------

    def _command(self, core: tuple[str, ...], typed: list[str]) -> Keyword | None:
        # The first command filed under these words wins; `translations check` reports clashes.
        present = set(typed)
        return next((entry for needs, entry in self.control.get(core, ()) if needs <= present), None)

    # -- stage 5: the keyword rules' topic -----------------------------------------------------

    def keyword_topic(self, words: list[str], stems: dict[str, list[str]], lang: str | None
                      ) -> tuple[Keyword, int] | None:
        """The keyword rules' best topic (its first keyword, and where it stood), or None."""
        # Each language reads the message with its own stems; a topic keeps its best reading.
        scores: dict[str, float] = {}
        first: dict[str, tuple[Keyword, int]] = {}  # its first keyword, and where it stood
        phrases: dict[str, int] = {}  # how many of its keywords the best reading found
        covered: dict[str, int] = {}  # how many of the message's words that reading explained
        for code in self.languages:
            hits = scan(stems[code][: len(words)], self.phrases[code])
            reading: dict[str, float] = defaultdict(float)
            found: dict[str, tuple[Keyword, int]] = {}
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
            return None

        def rank(topic: str) -> tuple[bool, float, float, int, int]:
            keyword, position = first[topic]
            # Words that only name the disease ("stage 4", "cáncer de mama") never outweigh
            # the words of a question about it, however many of them there are; on a tie,
            # what a patient asks first is what they came for.
            return keyword.weight >= 1, scores[topic], keyword.weight, -position, -keyword.order

        best = max(scores, key=rank)
        keyword = first[best][0]
        unexplained = len(words) - covered[best]
        if (keyword.kind == TopicKind.CONTENT and keyword.weight < 1 and phrases[best] == 1
                and unexplained >= UNEXPLAINED):
            # A message that names the disease once among many words we have no keyword for
            # asks about something else ("can I keep my job with stage 4?"): the helpline's.
            return None
        return first[best]


__all__ = ["MAX_TOKENS", "Understander", "Understanding", "Understood", "PhraseTable", "decide_topic"]
