"""The conversation rules, called directly: (message, sender state) -> (reply, new state)."""

from __future__ import annotations

import pytest

from mbcsms.catalog import TopicKind
from mbcsms.conversation import Conversation, RateLimit, SenderState
from mbcsms.sms import count_segments
from tests.helpers import HELPLINE

NOW = 1_800_000_000.0

# Every topic a patient can ask about, in both languages: (message, topic, language).
EXAMPLES = [
    ("what is metastatic breast cancer", "about", "en"),
    ("que es el cancer de mama metastasico", "about", "es"),
    ("can it spread to my brain", "spread", "en"),
    ("se extendió a los huesos, ¿ahora es cáncer de hueso?", "spread", "es"),
    ("how many people have mbc", "stats", "en"),
    ("cuantas mujeres tienen esto", "stats", "es"),
    ("it came back after 5 years", "recurrence", "en"),
    ("volvio el cancer en la cicatriz", "recurrence", "es"),
    ("can stage 4 be cured?", "cure", "en"),
    ("tiene cura el cancer de mama etapa 4", "cure", "es"),
    ("what are the treatment options", "treatment", "en"),
    ("que tratamientos hay", "treatment", "es"),
    ("life expectancy stage 4", "survival", "en"),
    ("cuanto tiempo de vida me queda", "survival", "es"),
    ("what does her2 positive mean", "her2", "en"),
    ("que es her2 positivo", "her2", "es"),
    ("is there a support group", "support", "en"),
    ("busco un grupo de apoyo", "support", "es"),
    ("what is the helpline number", "helpline", "en"),
    ("numero de la linea de ayuda", "helpline", "es"),
    ("hello", "menu", "en"),
    ("hola", "menu", "es"),
    ("HELP", "help", "en"),
    ("AYUDA", "help", "es"),
    ("what time is it", "fallback", "en"),
    ("donde puedo estacionar", "fallback", "es"),
    ("I want to kill myself", "crisis", "en"),
    ("no puedo respirar", "crisis", "es"),
]


def reply(conversation: Conversation, text: str, state: SenderState | None = None):
    return conversation.reply_to(text, state or SenderState(), NOW)


@pytest.mark.parametrize(("text", "topic", "lang"), EXAMPLES)
def test_each_topic_in_both_languages(conversation, text, topic, lang):
    answer, _ = reply(conversation, text)
    assert (answer.topic, answer.lang) == (topic, lang)
    assert answer.body and answer.segments <= 4


def test_every_reply_fits_four_segments_and_most_english_answers_two(conversation, catalog):
    english_content = []
    for topic in catalog.source.topics:
        for lang in catalog.languages:
            body = catalog.render(topic.id, lang)
            assert count_segments(body).segments <= topic.budget <= 4, (topic.id, lang)
        if topic.kind == TopicKind.CONTENT:
            english_content.append(count_segments(catalog.render(topic.id, "en")).segments)
    assert sum(1 for segments in english_content if segments <= 2) > len(english_content) / 2


def test_typos_and_missing_accents_are_understood(conversation):
    for text, topic in [("metastatc breast cancr", "about"), ("tratamieto", "treatment"),
                        ("survivl rate", "survival"), ("hercepton", "her2"), ("sucide", "crisis")]:
        assert reply(conversation, text)[0].topic == topic, text


def test_brand_names_are_her2(conversation):
    for brand in ["Herceptin", "Perjeta", "Kadcyla", "Enhertu", "trastuzumab deruxtecan"]:
        answer, _ = reply(conversation, brand)
        assert answer.topic == "her2"
        assert answer.lang == "en"  # a drug name does not tell the language: the default


def test_crisis_comes_first_and_names_911_and_988(conversation):
    for text in ["chest pain and my cancer spread", "quiero suicidarme, tengo cancer etapa 4"]:
        answer, _ = reply(conversation, text)
        assert answer.topic == "crisis" and "911" in answer.body and "988" in answer.body


def test_fallback_carries_the_helpline_in_the_message_language(conversation):
    english, _ = reply(conversation, "can you refill my prescription")
    spanish, _ = reply(conversation, "donde esta el estacionamiento del hospital")
    assert english.topic == spanish.topic == "fallback"
    assert HELPLINE in english.body and HELPLINE in spanish.body
    assert spanish.lang == "es" and "Lo siento" in spanish.body


def test_control_words_fire_only_as_the_whole_message(conversation):
    assert reply(conversation, "can I cancel my chemo")[0].topic != "stop"
    assert reply(conversation, "como puede ayudar mi familia")[0].topic == "support"
    assert reply(conversation, "how do i stop the nausea")[0].topic in ("helpline", "fallback")
    assert reply(conversation, "yes I have her2")[0].topic == "her2"


@pytest.mark.parametrize("word", ["STOP", "stopall", "UNSUBSCRIBE", "Cancel", "END", "quit",
                                  "REVOKE", "OPTOUT", " stop "])
def test_twilio_opt_out_words_are_silent_and_recorded(conversation, word):
    answer, state = reply(conversation, word)
    assert (answer.topic, answer.body) == ("stop", None)
    assert state.opted_out


@pytest.mark.parametrize("word", ["PARAR", "alto", "Baja", "CANCELAR", "detener", "parar por favor"])
def test_spanish_opt_out_words_are_confirmed_in_spanish(conversation, word):
    answer, state = reply(conversation, word)
    assert answer.topic == "stop" and answer.lang == "es" and state.opted_out
    assert "ALTA" in answer.body  # how to come back


def test_an_opt_out_twilio_does_not_block_is_confirmed(conversation):
    # Twilio blocks and confirms only a message that is one of its words alone ("STOP PLEASE"
    # is not): for anything else, the confirmation is ours to send.
    for text in ["stop please", "STOP!!!", "please unsubscribe me", "opt out", "please stop texting me"]:
        answer, state = reply(conversation, text)
        assert answer.topic == "stop" and answer.lang == "en" and state.opted_out, text
        assert "START" in answer.body, text  # how to come back


def test_opted_out_sender_gets_nothing_until_opt_in(conversation):
    _, state = reply(conversation, "STOP")
    for text in ["HER2", "hello", "MENU", "HELP", "3", "ESPAÑOL"]:
        answer, state = reply(conversation, text, state)
        assert answer.body is None, text
    answer, state = reply(conversation, "START", state)
    assert answer.topic == "start" and not state.opted_out and "1 " in answer.body
    assert reply(conversation, "HER2", state)[0].topic == "her2"


@pytest.mark.parametrize("word", ["START", "unstop", "YES", "ALTA", "iniciar", "COMENZAR"])
def test_opt_in_words(conversation, word):
    _, state = reply(conversation, "STOP")
    answer, state = reply(conversation, word, state)
    assert answer.topic == "start" and not state.opted_out


def test_language_switch_is_sticky_for_messages_that_do_not_tell(conversation):
    answer, state = reply(conversation, "ESPAÑOL")
    assert (answer.topic, answer.lang, state.lang) == ("language", "es", "es")
    assert reply(conversation, "HER2", state)[0].lang == "es"
    assert reply(conversation, "kadcyla", state)[0].lang == "es"
    assert reply(conversation, "what is stage 4", state)[0].lang == "en"  # clearly English
    answer, state = reply(conversation, "ENGLISH", state)
    assert reply(conversation, "HER2", state)[0].lang == "en"
    for word in ["ESPANOL", "SPANISH", "en español por favor"]:
        assert reply(conversation, word)[0].lang == "es"
    for word in ["INGLÉS", "ingles", "English please"]:
        assert reply(conversation, word, SenderState(lang="es"))[0].lang == "en"


def test_numbered_menu_picks_topics_in_the_menu_language(conversation, catalog):
    menu, state = reply(conversation, "MENÚ", SenderState(lang="es"))
    assert menu.topic == "menu" and state.last_menu == "es"
    for topic in catalog.menu_topics():
        assert f"{topic.menu} {catalog.title(topic, 'es')}" in menu.body
        picked, _ = reply(conversation, str(topic.menu), state)
        assert (picked.topic, picked.lang) == (topic.id, "es")
    assert reply(conversation, "8")[0].topic == "her2"  # no menu shown: the same fixed list
    assert reply(conversation, "99")[0].topic == "menu"


def test_rate_limit_then_one_notice_then_silence_until_the_window_passes(catalog):
    conversation = Conversation(catalog, RateLimit(replies=3, window_seconds=60))
    state, topics = SenderState(), []
    for second in range(6):
        answer, state = conversation.reply_to("HER2", state, NOW + second)
        topics.append((answer.topic, answer.body is not None))
    assert topics == [("her2", True)] * 3 + [("rate_limit", True), ("rate_limited", False), ("rate_limited", False)]
    notice = conversation.render("rate_limit", "en", now=NOW).body
    assert HELPLINE in notice
    crisis, state = conversation.reply_to("suicide", state, NOW + 7)
    assert crisis.topic == "crisis" and "988" in crisis.body  # never rate limited
    assert conversation.reply_to("HER2", state, NOW + 61)[0].topic == "her2"


def sent_in_a_flood(conversation: Conversation, texts: list[str]) -> tuple[int, SenderState]:
    state, sent = SenderState(), 0
    for second, text in enumerate(texts):
        answer, state = conversation.reply_to(text, state, NOW + second / 10)
        sent += answer.body is not None
    return sent, state


@pytest.mark.parametrize("flood", [
    ["START"] * 30,
    ["START" if i % 5 == 0 else "HER2" for i in range(30)],  # START used to reset the count
    ["PARAR", "ALTA"] * 15,
    ["STOP", "START"] * 15,
    ["PARAR"] * 30,
])
def test_opt_out_and_opt_in_words_do_not_get_past_the_rate_limit(catalog, flood):
    conversation = Conversation(catalog, RateLimit(replies=3, window_seconds=60))
    sent, _ = sent_in_a_flood(conversation, flood)
    assert sent <= 3 + 1  # the limit, and one notice


def test_past_the_limit_an_opt_out_and_an_opt_in_still_take_effect(catalog):
    conversation = Conversation(catalog, RateLimit(replies=2, window_seconds=60))
    _, state = sent_in_a_flood(conversation, ["HER2"] * 5)
    answer, state = conversation.reply_to("PARAR", state, NOW + 10)
    assert answer.body is None and state.opted_out  # no notice to someone who just opted out
    answer, state = conversation.reply_to("ALTA", state, NOW + 11)
    assert answer.body is None and not state.opted_out
    assert conversation.reply_to("HER2", state, NOW + 61)[0].topic == "her2"


def test_a_spanish_opt_out_is_confirmed_once(conversation):
    first, state = reply(conversation, "PARAR")
    assert first.body is not None and state.opted_out
    for text in ["PARAR", "baja", "Alto!", "cancelar por favor"]:
        again, state = reply(conversation, text, state)
        assert again.topic == "stop" and again.body is None and state.opted_out, text


def test_empty_and_punctuation_only_messages_get_the_menu(conversation):
    for text in ["", "   ", "???", "🙂"]:
        assert reply(conversation, text)[0].topic == "menu"


def test_a_typo_never_opts_a_sender_back_in(conversation):
    _, state = reply(conversation, "PARAR")
    for typo in ["altp", "alti", "stat", "strat", "sart", "unstp"]:
        answer, state = reply(conversation, typo, state)
        assert answer.body is None and state.opted_out, typo


def test_crisis_wording_beyond_the_obvious(conversation):
    for text in ["i dont want to be alive anymore", "I feel like dying", "I cant go on like this", "gonna end it",
                 "she isnt breathing", "ya no aguanto", "quiero desaparecer",
                 "took all my pills to end it", "estoy sangrando mucho y no para"]:
        answer, _ = reply(conversation, text)
        assert answer.topic == "crisis", text
    assert reply(conversation, "can treatment end it?")[0].topic != "crisis"
    assert reply(conversation, "no quiero seguir con la quimio")[0].topic != "crisis"


def test_opt_out_phrases_as_whole_messages(conversation):
    for text in ["Please stop sending me messages", "stop it", "no more texts",
                 "no quiero mas mensajes", "Dejen de enviarme mensajes"]:
        answer, state = reply(conversation, text)
        assert answer.topic == "stop" and state.opted_out, text


@pytest.mark.parametrize("text", ["No", "no thanks", "No gracias", "no no", "NO!", "no more", "No más",
                                  "ok no", "nope", "no, not yet"])
def test_a_plain_no_never_opts_out(conversation, text):
    # "ya no quiero mensajes" less its filler is "no": that alone must not unsubscribe anyone.
    answer, state = reply(conversation, text)
    assert answer.topic != "stop" and not state.opted_out


@pytest.mark.parametrize("text", ["the end?", "i want to quit", "i quit", "quiero parar", "stop me", "me baja",
                                  "ya basta", "i want to cancel", "de baja", "cancelar todo"])
def test_everyday_words_around_a_command_word_do_not_make_an_opt_out(conversation, text):
    answer, state = reply(conversation, text)
    assert answer.topic != "stop" and not state.opted_out


@pytest.mark.parametrize("text", ["please dont text me again", "no quiero recibir mensajes", "cancelar mi suscripcion",
                                  "unsubcribe", "stop all", "opt me out", "me quiero dar de baja"])
def test_natural_opt_outs(conversation, text):
    answer, state = reply(conversation, text)
    assert answer.topic == "stop" and state.opted_out and answer.body is not None


@pytest.mark.parametrize("text", ["end me", "just end me", "kill me now", "i just want it to end",
                                  "quiero parar de vivir", "quiero que todo termine"])
def test_a_wish_to_end_is_a_crisis_not_an_opt_out(conversation, text):
    answer, state = reply(conversation, text)
    assert answer.topic == "crisis" and not state.opted_out


@pytest.mark.parametrize("text", ["my doctor speaks spanish", "how do you say metastatic in spanish",
                                  "mi doctor solo habla en ingles", "la informacion esta en ingles"])
def test_mentioning_a_language_is_not_a_switch(conversation, text):
    answer, state = reply(conversation, text)
    assert answer.topic != "language" and state.lang is None


@pytest.mark.parametrize(("text", "lang"), [("can you answer in spanish", "es"), ("puedes escribirme en ingles", "en"),
                                            ("quiero español", "es"), ("do you speak english?", "en")])
def test_asking_for_a_language_is_a_switch(conversation, text, lang):
    answer, state = reply(conversation, text)
    assert answer.topic == "language" and state.lang == lang


def test_a_command_of_everyday_words_still_works_with_filler_around_it(conversation):
    for text in ["ya no quiero mensajes por favor", "no more messages please", "end", "ok no more texts"]:
        answer, state = reply(conversation, text)
        assert answer.topic == "stop" and state.opted_out, text


def test_fear_of_dying_is_not_a_crisis_but_a_wish_to_die_is(conversation):
    for text in ["I don't want to die", "im scared to die", "tengo miedo de morir"]:
        assert reply(conversation, text)[0].topic != "crisis", text
    for text in ["I want to die", "me quiero morir", "quiero morir", "i dont want to live"]:
        assert reply(conversation, text)[0].topic == "crisis", text


def test_a_greeting_around_a_question_does_not_hide_it(conversation):
    assert reply(conversation, "Good afternoon. What is metastatic cancer?")[0].topic == "about"
    assert reply(conversation, "Buen día, disculpe, ¿qué es el cáncer de mama avanzado?")[0].topic == "about"
    assert reply(conversation, "can i quit my job with stage 4")[0].topic in ("fallback", "helpline")


def test_a_question_about_pills_to_end_it_is_a_crisis(conversation):
    for text in ["how many pills would it take to end this?", "cuantas pastillas para acabar con esto"]:
        assert reply(conversation, text)[0].topic == "crisis", text


def test_everyday_messages_near_crisis_words_are_not_a_crisis(conversation):
    for text in ["How many pills of Xeloda do I take?", "I can't go on vacation during chemo?",
                 "Quiero acabar con esto de la quimio", "I walked 5 kms today",
                 "No quiero estar aquí en el hospital"]:
        assert reply(conversation, text)[0].topic != "crisis", text
    # ...and a disclosure that starts with a denial is still a crisis.
    assert reply(conversation, "I'm not going to kill myself but I think about it every day")[0].topic == "crisis"


def test_acknowledgements_around_an_opt_out_still_opt_out_and_si_does_not_opt_in(conversation):
    for text in ["ok stop", "Ok, stop", "okay, stop texting me", "ok alto", "ok, baja"]:
        answer, state = reply(conversation, text)
        assert answer.topic == "stop" and state.opted_out, text
    _, state = reply(conversation, "BAJA")
    answer, state = reply(conversation, "Sí", state)
    assert answer.body is None and state.opted_out


CLEAR_CRISES = [
    "i have my pills lined up", "everyone would be better without me", "i want to sleep and not wake up",
    "my husband locked himself in the bathroom with his pills", "ya no puedo mas", "soy una carga para mi familia",
    "one side of her face is droopy", "i cant feel my legs", "i passed out", "necesito una ambulancia",
    "my husband says he wants to kill himself", "I wish I was dead", "thinking of ending it",
    "how many of my oxycodone would be lethal", "life isn't worth living anymore",
    "i took a whole bottle of my sleeping pills", "my wife took way too many of her pain pills and I can't wake her",
    "kiero morir", "Mejor me muero", "estoy pensando en tomarme todas mis pastillas",
    "My mom is unresponsive", "my mom can barely breathe", "Dad is coughing up a lot of blood right now",
    "My sister's face is drooping and she can't lift her arm", "Mi mama no reacciona",
    "Tengo un dolor muy fuerte en el pecho", "Mi mamá está vomitando sangre", "I took all my pills",
]
EVERYDAY_NOT_CRISIS = [
    "Can brain mets cause seizures?", "Does Herceptin cause heart attacks?",
    "¿Los tratamientos matan las células cancerosas?", "My mom had a stroke 5 years ago, can she still get chemo?",
    "I hurt myself gardening, can I still have radiation on Monday?", "¿Debo cortarme el pelo antes de la quimio?",
    "Does my insurance cover emergency room visits?", "¿Mi seguro cubre la sala de emergencia?",
    "I want to die at home, not in a hospital. How does hospice work?", "Es una lástima que no haya cura",
    "Casi me desmayo cuando me dieron la noticia", "mi jefe me va a matar si falto otra vez",
]


@pytest.mark.parametrize("text", [
    "i have a fever of 101 and im on chemo", "my mom's fever is 104", "fever and chills on chemo",
    "tengo fiebre de 39 y estoy en quimio", "mi mama tiene fiebre y le dieron quimio ayer", "tengo fever and im on chemo",
])
def test_a_fever_during_chemo_is_a_crisis(conversation, text):
    # A crisis keyword of parts that may stand anywhere: "fever + chemo".
    assert reply(conversation, text)[0].topic == "crisis"


@pytest.mark.parametrize("text", [
    "can chemo cause fever", "what should i do if i get a fever on chemo", "la quimio puede causar fiebre",
    "que hago si tengo fiebre con la quimio", "what temperature counts as a fever on chemo", "is 99 a fever",
])
def test_a_question_about_fever_is_not_a_crisis(conversation, text):
    assert reply(conversation, text)[0].topic != "crisis"


@pytest.mark.parametrize("text", CLEAR_CRISES)
def test_clear_crises_in_many_words(conversation, text):
    assert reply(conversation, text)[0].topic == "crisis"


@pytest.mark.parametrize("text", EVERYDAY_NOT_CRISIS)
def test_everyday_questions_with_crisis_words_get_an_answer(conversation, text):
    assert reply(conversation, text)[0].topic != "crisis"


def test_a_crisis_at_the_end_of_a_very_long_message(conversation):
    text = "chemo again this week and the bills and the scans and the waiting. " * 12 + "Honestly I want to kill myself"
    assert len(text.split()) > 120
    assert reply(conversation, text)[0].topic == "crisis"


def test_saying_you_do_not_speak_a_language_is_not_a_switch_to_it(conversation):
    for text, lang in [("No sé inglés", "es"), ("I don't speak much Spanish", "en")]:
        answer, state = reply(conversation, text)
        assert answer.topic != "language" and answer.lang == lang and state.lang is None, text


def test_a_corrected_typo_never_unsubscribes(conversation):
    for text in ["I just want to quilt again", "quiero pasta"]:
        answer, state = reply(conversation, text)
        assert answer.topic != "stop" and not state.opted_out, text
    for text in ["STOP STOP STOP", "Stop. Just stop."]:
        assert reply(conversation, text)[1].opted_out, text


def test_a_crisis_word_reached_by_a_first_letter_typo_is_not_a_crisis(conversation):
    assert reply(conversation, "I painted my nails, is that okay during chemo?")[0].topic != "crisis"
    assert reply(conversation, "sucide")[0].topic == "crisis"
