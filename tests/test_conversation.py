"""The conversation rules, called directly: (message, sender state) -> (reply, new state)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mbcsms.catalog import TopicKind
from mbcsms.conversation import SMS, WHATSAPP, Conversation, Message, RateLimit, SenderState, channel_of
from mbcsms.helpline_hours import hours_key
from mbcsms.sms import count_segments
from mbcsms.understanding import Understanding, Understood
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
    "tengo fiebre de 39 y estoy en quimio", "mi mama tiene fiebre y le dieron quimio ayer",
    "tengo fever and im on chemo",
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


# --- issue 12: media, welcomes, WhatsApp opt-outs, small talk, feelings, the open-now helpline ---

TUESDAY_3PM = datetime.fromisoformat("2026-12-08T15:00:00-05:00").timestamp()
SUNDAY_11PM = datetime.fromisoformat("2026-12-06T23:00:00-05:00").timestamp()
SATURDAY_NOON = datetime.fromisoformat("2026-12-12T12:00:00-05:00").timestamp()
SPANISH = SenderState(lang="es")
BY_LANG = {"en": SenderState(), "es": SPANISH}
CLOSED_OPENS = {
    ("en", SUNDAY_11PM): "tomorrow at 9am ET", ("es", SUNDAY_11PM): "mañana a las 9 a. m. ET",
    ("en", SATURDAY_NOON): "Monday at 9am ET", ("es", SATURDAY_NOON): "el lunes a las 9 a. m. ET",
}


def text_of(catalog, topic: str, lang: str) -> str:
    return catalog.render(topic, lang)


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_picture_with_no_text_gets_the_media_line_in_the_senders_language(conversation, catalog, lang):
    for body in ["", "  ", "🙂"]:
        answer, state = conversation.reply_to(Message(body, media=1), BY_LANG[lang], NOW)
        assert (answer.topic, answer.lang, answer.body) == ("media", lang, text_of(catalog, "media", lang))
        assert state.window_count == 1  # a reply like any other: counted
    # WhatsApp voice notes too, and several attachments.
    answer, _ = conversation.reply_to(Message("", WHATSAPP, 3), BY_LANG[lang], NOW)
    assert answer.topic == "media" and answer.lang == lang


@pytest.mark.parametrize(("text", "topic", "lang"), [("what is her2", "her2", "en"), ("que es her2", "her2", "es")])
def test_a_picture_with_text_gets_the_text_answered(conversation, text, topic, lang):
    answer, _ = conversation.reply_to(Message(text, media=1), SenderState(), NOW)
    assert (answer.topic, answer.lang) == (topic, lang)


@pytest.mark.parametrize(("stop", "lang"), [("STOP", "en"), ("PARAR", "es")])
def test_a_picture_from_an_opted_out_sender_gets_nothing(conversation, stop, lang):
    _, state = conversation.reply_to(stop, SenderState(), NOW)
    for message in [Message("", media=1), Message("HER2", media=2), Message("", WHATSAPP, 1)]:
        answer, state = conversation.reply_to(message, state, NOW)
        assert answer.body is None and answer.messages == (), message


@pytest.mark.parametrize(("word", "lang", "part"), [
    ("START", "en", "Welcome to MBC Text Line"), ("YES", "en", "Welcome to MBC Text Line"),
    ("ALTA", "es", "Línea de texto MBC"), ("comenzar", "es", "Línea de texto MBC"),
])
def test_an_opt_in_word_from_someone_who_never_opted_out_gets_the_first_welcome(
    conversation, catalog, word, lang, part
):
    answer, state = conversation.reply_to(word, SenderState(), NOW)
    assert answer.topic == "start" and answer.lang == lang and answer.record == "start=welcome"
    assert answer.body == catalog.render("welcome", lang) and part in answer.body
    assert "Welcome back" not in answer.body and "bienvenida de nuevo" not in answer.body.lower()
    assert not state.opted_out and state.window_count == 1
    assert answer.segments <= catalog.topic("welcome").budget


@pytest.mark.parametrize(("stop", "start", "lang"), [("STOP", "START", "en"), ("PARAR", "ALTA", "es")])
def test_welcome_back_only_after_an_opt_out(conversation, catalog, stop, start, lang):
    _, state = conversation.reply_to(stop, SenderState(), NOW)
    answer, state = conversation.reply_to(start, state, NOW)
    assert answer.topic == "start" and answer.record == "start" and answer.lang == lang
    assert answer.body == catalog.render("start", lang) and not state.opted_out
    # Opted back in, an opt-in word again is a first welcome's confirmation, not "welcome back".
    again, _ = conversation.reply_to(start, state, NOW)
    assert again.body == catalog.render("welcome", lang)


@pytest.mark.parametrize(("word", "lang"), [
    ("STOP", "en"), ("stop", "en"), ("UNSUBSCRIBE", "en"), ("PARAR", "es"), ("BAJA", "es"),
])
def test_a_whatsapp_opt_out_always_gets_our_confirmation(conversation, catalog, word, lang):
    answer, state = conversation.reply_to(Message(word, WHATSAPP), SenderState(), NOW)
    assert answer.topic == "stop" and answer.lang == lang and state.opted_out
    assert answer.body == catalog.render("stop", lang)
    # Confirmed once; then nothing on either channel until an opt-in word.
    for message in [Message(word, WHATSAPP), Message("HER2", WHATSAPP), Message("HER2"), Message("", WHATSAPP, 1)]:
        again, state = conversation.reply_to(message, state, NOW)
        assert again.body is None and state.opted_out, message


def test_an_sms_opt_out_word_twilio_confirms_stays_silent(conversation):
    answer, state = conversation.reply_to(Message("STOP", SMS), SenderState(), NOW)
    assert answer.body is None and state.opted_out
    answer, state = conversation.reply_to(Message("PARAR", SMS), SenderState(), NOW)
    assert answer.body is not None and state.opted_out


def test_the_channel_comes_from_twilios_from_prefix():
    assert channel_of("whatsapp:+15550100001") == WHATSAPP
    assert channel_of("WhatsApp:+15550100001") == WHATSAPP
    assert channel_of("+15550100001") == SMS and channel_of(None) == SMS


def understood(topic: str, lang: str, feeling: bool = False) -> Understanding:
    return Understanding(Understood.TOPIC, topic, lang, feeling=feeling)


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("topic", ["thanks", "ack", "goodbye", "human_check"])
def test_small_talk_gets_its_short_reply_never_the_fallback(conversation, catalog, topic, lang):
    answer, state = conversation.respond(understood(topic, lang), SenderState(), NOW)
    assert (answer.topic, answer.lang, answer.body) == (topic, lang, catalog.render(topic, lang))
    assert answer.segments <= catalog.topic(topic).budget and state.window_count == 1


@pytest.mark.parametrize("lang", ["en", "es"])
def test_small_talk_counts_toward_the_rate_limit(catalog, lang):
    conversation = Conversation(catalog, RateLimit(replies=2, window_seconds=60))
    state, topics = BY_LANG[lang], []
    for second in range(4):
        answer, state = conversation.respond(understood("thanks", lang), state, NOW + second)
        topics.append(answer.topic)
    assert topics == ["thanks", "thanks", "rate_limit", "rate_limited"]


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("now", [TUESDAY_3PM, SUNDAY_11PM])
def test_feelings_get_a_kind_line_then_support_then_the_helpline_each_message_within_budget(
    conversation, catalog, lang, now
):
    answer, state = conversation.respond(understood("feelings", lang), BY_LANG[lang], now)
    assert answer.topic == "feelings" and answer.lang == lang and state.window_count == 1
    whole = "\n".join(answer.messages)
    kind, support = catalog.render("feelings", lang), catalog.render("support", lang)
    helpline = catalog.render("helpline", lang, hours_key(datetime.fromtimestamp(now, UTC)))
    assert whole == "\n".join([kind, support, helpline])  # in this order, nothing left out
    assert whole.index(kind) < whole.index(support) < whole.index(helpline)
    for message in answer.messages:
        assert count_segments(message).segments <= 4, message
    assert answer.messages[0].startswith(kind)  # fear is not a crisis: the kind line comes first
    if lang == "es":  # UCS-2: the kind line and the support answer do not fit one message
        assert len(answer.messages) >= 2


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_support_question_said_as_a_feeling_gets_the_feelings_reply_as_the_support_topic(conversation, lang):
    # "me siento muy sola": support's own words, said as a feeling. The reply is the feelings
    # reply (kind line, support, helpline); its topic is the support the message asked for.
    answer, _ = conversation.respond(understood("support", lang, feeling=True), SenderState(), NOW)
    feelings, _ = conversation.respond(understood("feelings", lang), SenderState(), NOW)
    assert answer.topic == "support" and answer.lang == lang
    assert answer.messages == feelings.messages
    plain, _ = conversation.respond(understood("support", lang), SenderState(), NOW)
    assert plain.topic == "support" and plain.messages != feelings.messages  # no feeling: support alone


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("topic", ["survival", "cure"])
def test_a_survival_or_cure_question_asked_in_fear_gets_a_kind_line_and_the_facts(conversation, catalog, topic, lang):
    answer, _ = conversation.respond(understood(topic, lang, feeling=True), SenderState(), NOW)
    assert answer.topic == topic and answer.lang == lang
    assert answer.messages == (catalog.render("feelings_question", lang) + "\n" + catalog.render(topic, lang),)
    assert answer.segments <= catalog.topic(topic).budget
    plain, _ = conversation.respond(understood(topic, lang), SenderState(), NOW)
    assert plain.body == catalog.render(topic, lang)  # without fear, the facts alone


def test_fear_is_not_a_crisis(conversation):
    for text in ["im scared of dying", "I'm scared to die", "tengo miedo de morir", "me da miedo morir"]:
        answer, _ = reply(conversation, text)
        assert answer.topic != "crisis" and "988" not in (answer.body or "").split(".")[0], text


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("topic", ["fallback", "helpline", "rate_limit"])
def test_the_helpline_line_says_whether_it_is_open_now(conversation, catalog, topic, lang):
    opened = conversation.render(topic, lang, now=TUESDAY_3PM)
    assert catalog.render("hours_open", lang) in opened.body and opened.record == f"{topic}@open"
    for now in (SUNDAY_11PM, SATURDAY_NOON):
        closed = conversation.render(topic, lang, now=now)
        line = catalog.render("hours_closed", lang).replace("{opens}", CLOSED_OPENS[(lang, now)])
        assert line in closed.body and "911" in closed.body and "988" in closed.body
        assert "{" not in closed.body and closed.segments <= catalog.topic(topic).budget


@pytest.mark.parametrize(("text", "lang"), [("can you refill my prescription", "en"), ("donde puedo estacionar", "es")])
def test_the_fallback_carries_the_hours_as_of_now(conversation, catalog, text, lang):
    open_reply, _ = conversation.reply_to(text, SenderState(), TUESDAY_3PM)
    closed_reply, _ = conversation.reply_to(text, SenderState(), SUNDAY_11PM)
    assert open_reply.topic == closed_reply.topic == "fallback"
    assert catalog.render("hours_open", lang) in open_reply.body
    assert CLOSED_OPENS[(lang, SUNDAY_11PM)] in closed_reply.body


def test_a_recorded_reply_renders_the_same_on_a_retry_whenever_it_comes(conversation):
    late_sunday = SUNDAY_11PM + 3599  # 23:59:59: "opens tomorrow"
    for lang in ("en", "es"):
        for answer in [
            conversation.reply_to("can you refill my prescription", SenderState(lang=lang), late_sunday)[0],
            conversation.respond(understood("feelings", lang), SenderState(), late_sunday)[0],
            conversation.respond(understood("survival", lang, feeling=True), SenderState(), late_sunday)[0],
            conversation.reply_to("START", SenderState(lang=lang), late_sunday)[0],
        ]:
            # Two seconds later it is Monday: "today at 9am". The retry still says "tomorrow".
            again = conversation.render(answer.record, answer.lang, now=late_sunday + 2)
            assert again == answer, answer.record
    # A reply recorded by an older release (a bare topic) takes the hours from the retry's time.
    assert "open now" in conversation.render("fallback", "en", now=TUESDAY_3PM).body
