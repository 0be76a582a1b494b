"""The content itself, measured on the real files as sent: reading level, SMS budgets, Spanish
as good as English, the new notice texts, and the helpline's open-now hours."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from importlib import metadata
from zoneinfo import ZoneInfo

import pytest
import textstat

from mbcsms.catalog import Catalog, catalog_path, default_locales_dir, read_catalog
from mbcsms.helpline_hours import HoursStatus, opens_text, status
from mbcsms.sms import UCS2, count_segments
from mbcsms.translations.readability import reading_level, within_limit

NY = ZoneInfo("America/New_York")
LANGS = ("en", "es")
HELPLINE = "1-877-465-6636"

# "Content answers": what the reading-level rule covers.
READ_TOPICS_KINDS = ("content",)
READ_TOPICS_EXTRA = ("help", "fallback", "rate_limit")
NEW_TEXTS = (
    "thanks", "ack", "goodbye", "human_check", "feelings", "feelings_question", "media",
    "welcome", "hours_open", "hours_closed",
)
# Who publishes each source document, as a reply names it.
PUBLISHERS = ("Komen", "Healthwise", "HER2")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(default_locales_dir())


def every_opens(lang: str) -> list[str]:
    """Every {opens} phrase a reply can carry: what status() gives at each hour of two weeks
    (today, tomorrow, Monday), and, to be safe, each weekday's name."""
    phrases = set(real_opens(lang))
    for day in range(7, 12):  # Monday 2026-12-07 to Friday 2026-12-11
        opening = datetime(2026, 12, day, 9, 0, tzinfo=NY)
        phrases.add(opens_text(opening, lang, now=opening - timedelta(days=3)))
    return sorted(phrases)


def real_opens(lang: str) -> set[str]:
    phrases = set()
    start = datetime(2026, 12, 7, 0, 30, tzinfo=NY)
    for hour in range(14 * 24):
        now = start + timedelta(hours=hour)
        opens = status(now).opens
        if opens is not None:
            phrases.add(opens_text(opens, lang, now=now))
    return phrases


def as_sent(catalog: Catalog, topic_id: str, lang: str) -> list[str]:
    """Every form the reply can take once sent: {hours} with each hour line, {opens} with each
    phrase. Nothing else may stay in braces."""
    text = catalog.render(topic_id, lang)
    hours = [catalog.render("hours_open", lang), catalog.render("hours_closed", lang)]
    forms = [text.replace("{hours}", line) for line in hours] if "{hours}" in text else [text]
    sent = []
    for form in forms:
        if "{opens}" in form:
            sent.extend(form.replace("{opens}", phrase) for phrase in every_opens(lang))
        else:
            sent.append(form)
    for form in sent:
        assert not re.search(r"\{[a-z_]+\}", form), (topic_id, lang, form)
    return sent


def reading_topics(catalog: Catalog) -> list[str]:
    return [
        t.id for t in catalog.source.topics
        if t.kind in READ_TOPICS_KINDS or t.id in READ_TOPICS_EXTRA or t.id in NEW_TEXTS
    ]


# --- translations/readability.py ------------------------------------------------------------------


def test_reading_level_is_textstat_0_7_3_and_leaves_its_global_language_alone() -> None:
    assert metadata.version("textstat") == "0.7.3"  # newer releases give other Spanish figures
    english = "MBC most often spreads to the bones, lungs, liver or brain. It is still breast cancer."
    spanish = "Suele extenderse a los huesos, los pulmones, el hígado o el cerebro. Sigue siendo cáncer de mama."
    textstat.set_lang("en_US")
    fk = textstat.flesch_kincaid_grade(english)
    textstat.set_lang("es")
    fh = textstat.fernandez_huerta(spanish)
    textstat.set_lang("en_US")
    # Any order, any number of times: the same figures as textstat told the language.
    for _ in range(3):
        assert reading_level(spanish, "es") == fh
        assert reading_level(english, "en") == fk
    # The module-wide textstat object is still English after our Spanish calls.
    assert textstat.flesch_kincaid_grade(english) == fk


def test_reading_level_from_many_threads_gives_the_same_figures() -> None:
    texts = {
        "en": "Treatment may include hormone therapy, chemotherapy or surgery. It depends on you.",
        "es": "Puede incluir terapia hormonal, quimioterapia o cirugía. Depende de usted.",
    }
    expected = {lang: reading_level(text, lang) for lang, text in texts.items()}
    seen: list[tuple[str, float]] = []

    def work(lang: str) -> None:
        for _ in range(50):
            seen.append((lang, reading_level(texts[lang], lang)))

    threads = [threading.Thread(target=work, args=(lang,)) for lang in LANGS * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(level == expected[lang] for lang, level in seen)


def test_within_limit_per_language() -> None:
    hard = "Comprehensive multidisciplinary immunotherapeutic interventions necessitate individualized considerations."
    assert within_limit("You can text us any time.", "en")
    assert not within_limit(hard, "en")
    assert within_limit("Hay ayuda para usted. No está sola.", "es")
    assert not within_limit("Intervenciones inmunoterapéuticas multidisciplinarias individualizadas.", "es")
    assert within_limit(hard, "pt")  # not measured
    with pytest.raises(ValueError):
        reading_level("Olá", "pt")


# --- reading level and budgets, as sent ---------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_content_answer_within_the_reading_limit(catalog: Catalog, lang: str) -> None:
    too_hard = []
    for topic_id in reading_topics(catalog):
        for text in as_sent(catalog, topic_id, lang):
            if not within_limit(text, lang):
                too_hard.append((topic_id, reading_level(text, lang), text))
    assert not too_hard, too_hard


def test_the_reading_rule_covers_what_it_should(catalog: Catalog) -> None:
    covered = set(reading_topics(catalog))
    assert {"treatment", "her2", "helpline", "help", "fallback", "rate_limit"} <= covered
    assert set(NEW_TEXTS) <= covered


@pytest.mark.parametrize("lang", LANGS)
def test_every_reply_within_its_budget(catalog: Catalog, lang: str) -> None:
    over = []
    for topic in catalog.source.topics:
        assert topic.budget <= 4, topic.id
        for text in as_sent(catalog, topic.id, lang):
            count = count_segments(text)
            if count.segments > topic.budget:
                over.append((topic.id, count, text))
    assert not over, over


@pytest.mark.parametrize("lang", LANGS)
def test_the_kind_line_fits_one_message_with_survival_and_cure(catalog: Catalog, lang: str) -> None:
    kind = catalog.render("feelings_question", lang)
    for topic_id in ("survival", "cure"):
        text = kind + "\n" + catalog.render(topic_id, lang)
        assert count_segments(text).segments <= catalog.topic(topic_id).budget, (topic_id, lang)


@pytest.mark.parametrize("lang", LANGS)
def test_hours_replace_the_fixed_hours(catalog: Catalog, lang: str) -> None:
    for topic_id in ("fallback", "helpline", "rate_limit"):
        answer = catalog.answer(topic_id, lang)
        assert "{hours}" in answer and "9am-10pm" not in answer, (topic_id, lang)
    # HELP is the carrier-required reply: it keeps its fixed hours.
    assert "9am-10pm ET" in catalog.render("help", lang)
    closed = catalog.render("hours_closed", lang)
    assert "{opens}" in closed and "911" in closed and "988" in closed


# --- crisis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_crisis_fits_three_segments_with_911_and_988_first(catalog: Catalog, lang: str) -> None:
    crisis = catalog.render("crisis", lang)
    assert count_segments(crisis).segments <= 3
    first, second = crisis.split(". ")[:2]
    assert re.findall(r"\d{3,}", first) == ["911"], crisis  # 911 first, in the first sentence
    assert re.findall(r"\d{3,}", second) == ["988"], crisis  # then 988, no number between


def test_spanish_crisis_is_ucs2_and_still_three_segments(catalog: Catalog) -> None:
    count = count_segments(catalog.render("crisis", "es"))
    assert count.encoding == UCS2 and count.segments <= 3


def test_crisis_fits_three_segments_in_every_shipped_language(catalog: Catalog) -> None:
    for lang in catalog.languages:
        assert count_segments(catalog.render("crisis", lang)).segments <= 3, lang


# --- Spanish as good as English -------------------------------------------------------------------


def test_every_spanish_content_answer_names_its_source(catalog: Catalog) -> None:
    for topic in catalog.source.topics:
        if topic.kind != "content":
            continue
        english, spanish = catalog.render(topic.id, "en"), catalog.render(topic.id, "es")
        assert spanish != english, topic.id  # translated
        named = [p for p in PUBLISHERS if p in english]
        assert named, topic.id
        tag = re.search(r"\(([^()]*)\)\s*$", english)
        if tag:
            spanish_tag = re.search(r"\(([^()]*)\)\s*$", spanish)
            assert spanish_tag, (topic.id, spanish)
            for publisher in PUBLISHERS:
                if publisher in tag.group(1):
                    assert publisher in spanish_tag.group(1), (topic.id, publisher, spanish)
        else:
            for publisher in named:
                assert publisher in spanish, (topic.id, publisher, spanish)


def test_spanish_menu_says_what_the_line_is(catalog: Catalog) -> None:
    menu = catalog.render("menu", "es")
    header = menu.split("\n")[0]
    assert "cáncer de mama metastásico" in header.lower() and "texto" in header
    assert "4 Cuándo regresa" in menu
    assert "MBC facts by text" in catalog.render("menu", "en")
    # The welcome back carries the same menu.
    assert menu in catalog.render("start", "es")


def test_spanish_accents(catalog: Catalog) -> None:
    unaccented = re.compile(
        r"\b(Cuando regresa|Donde se|Cuantas|Que es|Linea|linea|numero|cancer|metastasico|"
        r"tambien|dias|ano|anos|mas alla|segun|biologia|sintomas|cirugia|radiacion|"
        r"quimica|envie|Envie|aqui|telefono|proteina|rapido|mayoria|articulo|ingles|espanol)\b"
    )
    for topic in catalog.source.topics:
        for text in (catalog.render(topic.id, "es"), catalog.title(topic, "es") if topic.title else ""):
            assert not unaccented.search(text), (topic.id, unaccented.search(text), text)


# --- the new texts --------------------------------------------------------------------------------


def test_new_texts_exist_in_both_languages_and_are_not_fuzzy(catalog: Catalog) -> None:
    po = read_catalog(catalog_path(default_locales_dir(), "es"), "es")
    by_context = {m.context: m for m in po if m.id}
    for topic_id in NEW_TEXTS + ("start", "stop"):
        topic = catalog.topic(topic_id)
        assert topic.answer and topic.budget >= 1
        if topic_id in NEW_TEXTS:
            assert topic.kind == "notice" and catalog.keywords(topic, "en") == (), topic_id
        message = by_context[f"answer:{topic_id}"]
        assert message.id == topic.answer, topic_id
        assert message.string and not message.fuzzy, topic_id
        assert catalog.has_translation(f"answer:{topic_id}", topic.answer, "es"), topic_id
        assert catalog.render(topic_id, "es") != catalog.render(topic_id, "en"), topic_id


def test_welcome_has_what_an_opt_in_confirmation_needs(catalog: Catalog) -> None:
    english = catalog.render("welcome", "en")
    for part in ("MBC Text Line", "One reply per message you send", "HELP", "STOP",
                 "Msg & data rates may apply", "MENU", "Komen", "Healthwise"):
        assert part in english, part
    spanish = catalog.render("welcome", "es")
    for part in ("Línea de texto MBC", "Una respuesta por mensaje", "AYUDA", "PARAR",
                 "tarifas de mensajes y datos", "MENÚ", "Komen", "Healthwise"):
        assert part in spanish, part
    assert "Welcome back" in catalog.render("start", "en")
    assert "Welcome back" not in english


def test_small_talk_and_feelings_texts(catalog: Catalog) -> None:
    for lang in LANGS:
        menu_word = "MENU" if lang == "en" else "MENÚ"
        for topic_id in ("thanks", "ack", "goodbye"):
            assert menu_word in catalog.render(topic_id, lang), (topic_id, lang)
        human = catalog.render("human_check", lang)
        assert HELPLINE in human and "Komen" in human and "Healthwise" in human
        assert "9" in catalog.render("feelings_question", lang)
        feelings = catalog.render("feelings", lang)
        assert feelings.count(".") == 1 and "911" not in feelings and "988" not in feelings
    assert "text" in catalog.render("media", "en") and "texto" in catalog.render("media", "es")


# --- helpline_hours.py ----------------------------------------------------------------------


def test_open_on_a_tuesday_afternoon() -> None:
    assert status(datetime(2026, 12, 8, 15, 0, tzinfo=NY)) == HoursStatus(True, None)


def test_closed_on_a_sunday_night_opens_monday_at_nine() -> None:
    at = datetime.fromisoformat("2026-12-06T23:00:00-05:00")
    result = status(at)
    assert not result.open
    assert result.opens == datetime(2026, 12, 7, 9, 0, tzinfo=NY)
    assert result.opens.tzinfo is not None and result.opens.utcoffset() == timedelta(hours=-5)
    assert opens_text(result.opens, "en", now=at) == "tomorrow at 9am ET"
    assert opens_text(result.opens, "es", now=at) == "mañana a las 9 a. m. ET"
    assert opens_text(result.opens, "en", now=at - timedelta(days=2)) == "Monday at 9am ET"
    assert opens_text(result.opens, "es", now=at - timedelta(days=2)) == "el lunes a las 9 a. m. ET"


def test_friday_night_opens_monday() -> None:
    at = datetime(2026, 12, 11, 22, 30, tzinfo=NY)
    result = status(at)
    assert not result.open and result.opens == datetime(2026, 12, 14, 9, 0, tzinfo=NY)
    assert opens_text(result.opens, "en", now=at) == "Monday at 9am ET"
    assert opens_text(result.opens, "es", now=at) == "el lunes a las 9 a. m. ET"


def test_weekday_edges() -> None:
    tuesday = datetime(2026, 12, 8, tzinfo=NY)
    early = tuesday.replace(hour=8, minute=59)
    assert status(early) == HoursStatus(False, tuesday.replace(hour=9))
    assert opens_text(status(early).opens, "en", now=early) == "today at 9am ET"
    assert opens_text(status(early).opens, "es", now=early) == "hoy a las 9 a. m. ET"
    assert status(tuesday.replace(hour=9)).open
    assert status(tuesday.replace(hour=21, minute=59)).open
    late = tuesday.replace(hour=22)
    assert status(late) == HoursStatus(False, datetime(2026, 12, 9, 9, 0, tzinfo=NY))
    assert opens_text(status(late).opens, "es", now=late) == "mañana a las 9 a. m. ET"
    wednesday = opens_text(datetime(2026, 12, 9, 9, 0, tzinfo=NY), "es", now=datetime(2026, 12, 6, 12, tzinfo=NY))
    assert wednesday == "el miércoles a las 9 a. m. ET"
    assert not status(datetime(2026, 12, 12, 12, 0, tzinfo=NY)).open  # Saturday noon


def test_any_time_zone_is_read_in_new_york_time() -> None:
    # 15:00 UTC on a Tuesday in December is 10:00 in New York (EST, UTC-5): open.
    assert status(datetime(2026, 12, 8, 15, 0, tzinfo=UTC)).open
    # 02:30 UTC on a Wednesday is 21:30 Tuesday in New York: still open.
    assert status(datetime(2026, 12, 9, 2, 30, tzinfo=UTC)).open
    # 03:00 UTC on a Saturday is 22:00 Friday in New York: closed until Monday.
    closed = status(datetime(2026, 12, 12, 3, 0, tzinfo=UTC))
    assert not closed.open and closed.opens == datetime(2026, 12, 14, 9, 0, tzinfo=NY)


def test_daylight_saving_edges() -> None:
    # Spring forward: Sunday 2026-03-08. Closed on the weekend, opens Monday 9:00 EDT (UTC-4).
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=NY)
    opens = status(saturday).opens
    assert opens == datetime(2026, 3, 9, 9, 0, tzinfo=NY) and opens.utcoffset() == timedelta(hours=-4)
    # 9:00 in New York is 13:00 UTC after the change, 14:00 UTC before it.
    assert status(datetime(2026, 3, 9, 13, 0, tzinfo=UTC)).open
    assert not status(datetime(2026, 3, 9, 12, 59, tzinfo=UTC)).open
    assert not status(datetime(2026, 3, 6, 13, 30, tzinfo=UTC)).open  # Fri 8:30 EST
    assert status(datetime(2026, 3, 6, 14, 0, tzinfo=UTC)).open  # Fri 9:00 EST
    # Fall back: Sunday 2026-11-01. Friday 23:00 EDT opens Monday 9:00 EST (UTC-5).
    friday = datetime(2026, 10, 30, 23, 0, tzinfo=NY)
    opens = status(friday).opens
    assert opens == datetime(2026, 11, 2, 9, 0, tzinfo=NY) and opens.utcoffset() == timedelta(hours=-5)
    # 22:00 in New York is 02:00 UTC (EDT) before the change and 03:00 UTC (EST) after it.
    assert not status(datetime(2026, 10, 30, 2, 0, tzinfo=UTC)).open  # Thu 22:00 EDT
    assert status(datetime(2026, 11, 3, 2, 59, tzinfo=UTC)).open  # Mon 21:59 EST
    assert not status(datetime(2026, 11, 3, 3, 0, tzinfo=UTC)).open  # Mon 22:00 EST
    # The ambiguous hour itself (01:30 on the fall-back Sunday, either fold) is closed.
    for fold in (0, 1):
        assert not status(datetime(2026, 11, 1, 1, 30, fold=fold, tzinfo=NY)).open


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError):
        status(datetime(2026, 12, 8, 15, 0))
    with pytest.raises(ValueError):
        opens_text(datetime(2026, 12, 8, 9, 0), "en")
    with pytest.raises(ValueError):
        opens_text(datetime(2026, 12, 8, 9, 0, tzinfo=NY), "en", now=datetime(2026, 12, 7, 23, 0))


def test_the_opens_phrases_a_patient_can_get() -> None:
    assert real_opens("en") == {"today at 9am ET", "tomorrow at 9am ET", "Monday at 9am ET"}
    assert real_opens("es") == {
        "hoy a las 9 a. m. ET", "mañana a las 9 a. m. ET", "el lunes a las 9 a. m. ET",
    }
    assert "el miércoles a las 9 a. m. ET" in every_opens("es")
