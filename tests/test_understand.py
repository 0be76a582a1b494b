"""What a message is understood as, by the real Understander on the shipped catalogs: the kind,
topic and languages ``understand`` reports, and the rules it reads a message by (normalising,
typo tolerance, stems, commands as typed)."""

from __future__ import annotations

import time

import pytest

from mbcsms.catalog import TopicKind
from mbcsms.conversation import Conversation
from mbcsms.understand import (
    MAX_TOKENS,
    TypoIndex,
    Understander,
    Understanding,
    Understood,
    allowed_typos,
    keyword_key,
    normalise,
    stemmer_for,
    tokenize,
)


@pytest.fixture(scope="module")
def understander(conversation: Conversation) -> Understander:
    return conversation.understander


def understand(understander: Understander, text: str) -> Understanding:
    return understander.understand(text)


# -- reading a message ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "plain"), [
    ("¿Qué es HER2+?", "que es her 2"),
    ("I DON'T know", "i dont know"),
    ("stage4", "stage 4"),
    ("  MENÚ!!! ", "menu"),
    ("???", ""),
    ("niño  ÁRBOL", "nino arbol"),
])
def test_normalise_drops_case_accents_apostrophes_and_punctuation(text, plain):
    assert normalise(text) == plain
    assert tokenize(text) == plain.split()


@pytest.mark.parametrize(("word", "edits"), [
    ("her", 0), ("1234567", 0), ("chem", 1), ("fatigue", 1), ("survival", 2), ("trastuzumab", 2),
])
def test_short_words_and_numbers_allow_no_typo_longer_ones_one_or_two(word, edits):
    assert allowed_typos(word) == edits


def test_the_typo_index_finds_every_nearest_word_within_the_budget():
    index = TypoIndex(["herceptin", "survive", "survival", "alto", "alta"])
    assert index.nearest("hercepton") == {"herceptin"}
    assert index.nearest("hrcptn") == set()  # three edits: too far
    # Equally near: all of them, and the Understander decides ("survivl" is a form of one word;
    # "altp" is as near ALTO, stop, as ALTA, start, and is corrected to neither).
    assert index.nearest("survivl") == {"survival", "survive"}
    assert index.nearest("altp") == {"alto", "alta"}
    started = time.perf_counter()
    assert index.nearest("x" * 1600) == set()  # a pasted blob costs nothing
    assert time.perf_counter() - started < 0.5


def test_keywords_are_matched_by_stem_except_commands_which_are_matched_as_typed():
    english = stemmer_for("en")
    assert keyword_key(("treatments",), english, TopicKind.CONTENT) == keyword_key(("treatment",), english,
                                                                                   TopicKind.CONTENT)
    assert keyword_key(("stopping",), english, TopicKind.CONTROL) == ("stopping",)
    spanish = stemmer_for("es")
    assert spanish("alto") == "alto" and spanish("alta") == "alta"  # short words stay whole
    assert spanish("curarse") == spanish("curar")
    assert stemmer_for("xx")("treatments") == "treatments"  # a language Snowball does not know


# -- what a message is understood as ------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "???", "🙂"])
def test_a_message_without_words_is_empty(understander, text):
    assert understand(understander, text).kind == Understood.EMPTY


def test_a_crisis_is_understood_first_whatever_else_the_message_says(understander):
    understood = understand(understander, "STOP I want to kill myself, what is her2")
    assert (understood.kind, understood.topic, understood.lang) == (Understood.CRISIS, "crisis", "en")
    spanish = understand(understander, "quiero suicidarme")
    assert (spanish.kind, spanish.lang, spanish.keyword_lang) == (Understood.CRISIS, "es", "es")


def test_a_crisis_at_the_end_of_a_message_past_the_words_read_for_topics(understander):
    text = "scans and bills and waiting " * (MAX_TOKENS // 5 + 10) + "i want to kill myself"
    assert len(tokenize(text)) > MAX_TOKENS
    assert understand(understander, text).kind == Understood.CRISIS


def test_a_command_is_the_whole_message_and_keeps_the_word_only_when_typed_alone(understander):
    stop = understand(understander, " STOP ")
    assert (stop.kind, stop.topic, stop.word) == (Understood.CONTROL, "stop", "stop")
    polite = understand(understander, "stop please")
    assert (polite.kind, polite.topic, polite.word) == (Understood.CONTROL, "stop", None)
    parar = understand(understander, "PARAR")
    assert (parar.topic, parar.lang, parar.keyword_lang) == ("stop", "es", "es")
    assert understand(understander, "can I stop chemo").kind != Understood.CONTROL


def test_a_corrected_typo_is_never_a_command(understander):
    for typo in ("quilt", "altp", "pasta"):
        assert understand(understander, typo).kind != Understood.CONTROL, typo


def test_a_language_switch_names_the_language_it_switches_to(understander):
    switch = understand(understander, "ESPAÑOL")
    assert (switch.kind, switch.topic, switch.keyword_lang) == (Understood.CONTROL, "language", "es")


@pytest.mark.parametrize(("text", "number"), [("3", 3), (" 8 ", 8), ("99", 99)])
def test_a_number_alone_is_a_menu_pick(understander, text, number):
    understood = understand(understander, text)
    assert (understood.kind, understood.number, understood.topic) == (Understood.NUMBER, number, None)


def test_a_question_is_understood_as_its_topic_in_its_language(understander):
    english = understand(understander, "what does her2 positive mean")
    assert (english.kind, english.topic, english.lang, english.keyword_lang) == (Understood.TOPIC, "her2", "en", "en")
    spanish = understand(understander, "que tratamientos hay")
    assert (spanish.kind, spanish.topic, spanish.lang) == (Understood.TOPIC, "treatment", "es")
    typo = understand(understander, "hercepton")
    assert (typo.kind, typo.topic, typo.lang) == (Understood.TOPIC, "her2", None)  # a drug name tells no language


def test_words_we_have_no_answer_for_are_nothing(understander):
    nothing = understand(understander, "donde puedo estacionar el carro")
    assert (nothing.kind, nothing.topic, nothing.lang) == (Understood.NOTHING, None, "es")
    # The disease named once among many words we have no keyword for asks about something else.
    assert understand(understander, "can i keep working at my job with stage 4").kind == Understood.NOTHING
