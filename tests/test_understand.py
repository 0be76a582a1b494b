"""What a message is understood as, by the real Understander on the shipped catalogs: the kind,
topic and languages ``understand`` reports, and the rules it reads a message by (normalising,
typo tolerance, stems, commands as typed)."""

from __future__ import annotations

import time

import pytest

from mbcsms.catalog import TopicKind
from mbcsms.conversation import Conversation
from mbcsms.understanding import MAX_TOKENS, Understander, Understanding, Understood
from mbcsms.understanding.keywords import keyword_key
from mbcsms.understanding.text import normalise, stemmer_for, tokenize
from mbcsms.understanding.typos import TypoIndex, allowed_typos


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


# -- rules and model together (issue 11) ---------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Herceptin side effects", "HER2 negative", "is Kisqali a chemo", "How long can you take Kadcyla?",
    "¿Qué es HER2 bajo?", "I'm HER2 negative, what does that mean",
])
def test_a_topic_keyword_inside_a_question_the_sources_do_not_cover_gets_no_facts(understander, text):
    understood = understand(understander, text)
    assert understood.kind != Understood.CRISIS
    # Not the facts of the topic whose keyword it contains: the fallback, with the helpline.
    assert understood.topic not in ("her2", "treatment", "survival", "stats"), understood


@pytest.mark.parametrize(("text", "topic"), [
    ("thank you so much", "thanks"), ("gracias", "thanks"), ("ok", "ack"), ("bye", "goodbye"),
    ("are you a real person", "human_check"), ("hi", "menu"), ("hola", "menu"),
    ("😢", "feelings"), ("💔", "feelings"), ("👍", "thanks"), ("🙏", "thanks"), ("❤️", "thanks"),
    ("🙏🏽", "thanks"),
])
def test_small_talk_and_emoji_are_topics_of_their_own(understander, text, topic):
    understood = understand(understander, text)
    assert (understood.kind, understood.topic) == (Understood.TOPIC, topic), understood


@pytest.mark.parametrize("text", ["😢", "im so scared", "tengo mucho miedo de morir", "i feel so alone",
                                  "how long will i live? im so scared"])
def test_fear_grief_and_loneliness_are_marked_as_feeling(understander, text):
    understood = understand(understander, text)
    assert understood.feeling and understood.kind != Understood.CRISIS, understood


@pytest.mark.parametrize("text", ["what does her2 positive mean", "thanks", "👍", "STOP"])
def test_ordinary_messages_are_not_marked_as_feeling(understander, text):
    assert not understand(understander, text).feeling


@pytest.mark.parametrize("text", ["im scared of dying", "I'm scared of dying", "tengo miedo de morir",
                                  "i dont want to die", "I don't want to die", "what is 988",
                                  "sos una persona o un bot?"])
def test_fear_and_questions_about_help_lines_are_not_crises(understander, text):
    assert understand(understander, text).kind != Understood.CRISIS


@pytest.mark.parametrize("text", ["i need an ambulance", "sos", "SOS", "llamen al 911", "call 911",
                                  "me quiero morir", "quiero suicidarme", "no puedo respirar"])
def test_terse_explicit_crises_are_caught(understander, text):
    assert understand(understander, text).kind == Understood.CRISIS


@pytest.mark.parametrize("text", ["call 911", "please call 911 now", "chest pain", "LLAMEN AL 911 YA",
                                  "fiebre en la quimio", "she fainted"])
def test_a_crisis_alone_phrase_is_a_crisis_rule_as_nearly_the_whole_message(understander, text):
    keyword = understander.crisis_by_rules(text)
    assert keyword is not None and keyword.topic == "crisis", text


@pytest.mark.parametrize("text", [
    "when should we call 911 if she gets a fever during chemo",
    "que señales quieren decir que hay que llamar al 911?",
    "went to the ER last week for chest pain, turned out to be reflux",
    "what number is a fever when youre on chemo",
])
def test_a_crisis_alone_phrase_inside_a_longer_message_is_left_to_the_model(understander, text):
    assert understander.crisis_by_rules(text) is None, text


def test_staff_add_a_crisis_alone_phrase_as_data(tmp_path):
    import shutil

    from mbcsms.catalog import Catalog
    from mbcsms.understanding import Understander
    from mbcsms.understanding.keywords import CRISIS_ALONE

    locales = tmp_path / "locales"
    shutil.copytree(Catalog.load().locales, locales, ignore=shutil.ignore_patterns("*.mo"))
    with (locales / "en" / "keywords" / f"{CRISIS_ALONE}.txt").open("a", encoding="utf-8") as handle:
        handle.write("need paramedics\n")
    edited = Understander(Catalog.load(locales))
    assert edited.crisis_by_rules("need paramedics asap") is not None
    assert edited.crisis_by_rules("do we need paramedics or can we drive her ourselves next time") is None


def test_a_crisis_the_rules_miss_is_caught_by_the_model(understander):
    text = "she cant feel her legs and wet herself"
    assert understander.crisis_by_rules(text) is None
    assert understand(understander, text).kind == Understood.CRISIS


def test_the_topic_rule_is_as_written_in_the_readme():
    from mbcsms.understanding import decide_topic

    assert decide_topic("her2", "her2", 0.1, 0.8, 0.3) == "her2"  # both agree
    assert decide_topic("her2", "out_of_scope", 0.9, 0.8, 0.3) is None  # the model is sure: fallback
    assert decide_topic("her2", "treatment", 0.9, 0.8, 0.3) == "treatment"
    assert decide_topic("her2", "out_of_scope", 0.5, 0.8, 0.3) == "her2"  # not sure: the keyword
    assert decide_topic(None, "spread", 0.5, 0.8, 0.3) == "spread"  # no keyword, above the floor
    assert decide_topic(None, "spread", 0.2, 0.8, 0.3) is None  # below the floor
    assert decide_topic(None, "greeting", 0.5, 0.8, 0.3) == "menu"
    assert decide_topic("menu", "greeting", 0.1, 0.8, 0.3) == "menu"
    # The model's feelings never replace a keyword topic ("me siento sola": support).
    assert decide_topic("support", "feelings", 0.9, 0.8, 0.3) == "support"
    assert decide_topic(None, "feelings", 0.5, 0.8, 0.3) == "feelings"


class WordModel:
    """A stand-in for the model: a crisis whenever the scored text has the word ``emergency``."""

    crisis_threshold, topic_high, topic_floor, feeling_bar = 0.5, 0.8, 0.3, 1.01

    def score(self, text, plain=None):
        from mbcsms.understanding.model import Scores

        words = (plain if plain is not None else normalise(text)).split()
        return Scores(0.9 if "emergency" in words else 0.0, {"out_of_scope": 1.0})


def test_where_a_calm_phrase_stands_the_model_must_also_fire_on_the_words_outside_it(catalog):
    understander = Understander(catalog, WordModel())
    # "emergency room" is calm: outside it, "does my insurance cover the" is not a crisis.
    assert understander.understand("does my insurance cover the emergency room").kind != Understood.CRISIS
    # The model still fires on its words outside the calm phrase.
    assert understander.understand("emergency room said go home but this is an emergency").kind == Understood.CRISIS
    # With no calm phrase the model's verdict stands as before.
    assert understander.understand("my emergency bag is packed").kind == Understood.CRISIS


class SameScoreModel:
    """A stand-in for the model: one crisis probability for every message."""

    crisis_threshold, topic_high, topic_floor, feeling_bar = 0.5, 0.8, 0.3, 1.01

    def __init__(self, crisis: float) -> None:
        self.crisis = crisis

    def score(self, text, plain=None):
        from mbcsms.understanding.model import Scores

        return Scores(self.crisis, {"out_of_scope": 1.0})


def test_a_rule_of_parts_counts_unless_the_model_is_all_but_sure_there_is_no_crisis(catalog):
    from mbcsms.understanding.understander import TOGETHER_FLOOR

    sure_not = Understander(catalog, SameScoreModel(TOGETHER_FLOOR / 2))
    unsure = Understander(catalog, SameScoreModel(TOGETHER_FLOOR))
    for text in ("fever and chills since lunch, chemo was wednesday",
                 "mi mama tiene calentura desde la tarde, esta en quimio"):
        rule = sure_not.crisis_by_rules(text)
        assert rule is not None and rule.circumstantial, text
        assert sure_not.understand(text).kind != Understood.CRISIS, text
        assert unsure.understand(text).kind == Understood.CRISIS, text
    # Every other phrase rule stands whatever the model says: phrases, single words, and a cry
    # for help that is the whole message ("fiebre + quimio" in crisis_alone.txt).
    for text in ("i want to kill myself", "me quiero morir", "no puedo respirar", "suicide",
                 "fiebre y quimio", "fever chemo help"):
        rule = sure_not.crisis_by_rules(text)
        assert rule is not None and not rule.circumstantial, text
        assert sure_not.understand(text).kind == Understood.CRISIS, text


def test_a_rule_of_parts_does_not_hide_another_languages_phrase(catalog):
    understander = Understander(catalog, SameScoreModel(0.0))
    # "fever + chills" (English, of parts) and "me voy a matar" (Spanish, a phrase).
    text = "fever and chills and me voy a matar"
    rule = understander.crisis_by_rules(text)
    assert rule is not None and not rule.circumstantial and rule.lang == "es"
    assert understander.understand(text).kind == Understood.CRISIS


def test_with_the_shipped_model_a_fever_during_chemo_now_is_a_crisis_and_a_question_about_one_is_not(
        understander):
    assert understand(understander, "fever and chills since lunch, chemo was wednesday").kind == Understood.CRISIS
    assert understand(understander, "mi esposa tiene calentura y escalofrios, le toco quimio el lunes"
                      ).kind == Understood.CRISIS
    asked = understand(understander, "what should i do if i get a fever and chills during chemo")
    assert asked.kind != Understood.CRISIS


def test_emoji_are_read_as_words_from_the_emoji_file():
    assert normalise("gracias 🙏") == "gracias emojithanks"
    assert normalise("😢😢") == "emojifeelings emojifeelings"
    assert normalise("🚢") == ""  # not listed: no word


def test_small_talk_without_a_reply_of_its_own_gets_the_fallback(conversation):
    from mbcsms.conversation import SenderState

    reply, _ = conversation.reply_to("😢", SenderState(), 1_700_000_000.0)
    assert reply.topic in ("fallback", "feelings")
    assert reply.body
