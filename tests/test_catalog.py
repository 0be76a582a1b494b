"""The catalog: the English content file and the translations, as the bot reads and renders them.

Real content and real catalogs: the shipped ones, copies edited in tmp_path, and Translations
built in memory the way ``load_translations`` builds them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mbcsms.catalog import (
    CONTENT_FILE,
    Catalog,
    CatalogError,
    TopicKind,
    Translations,
    available_languages,
    catalog_path,
    default_locales_dir,
    keyword_file,
    load_source,
    read_word_file,
    write_word_file,
)
from tests.helpers import HELPLINE

# -- the English content file --------------------------------------------------------------------


def test_the_content_file_has_every_kind_of_topic_and_a_unique_menu():
    source = load_source()
    assert source.helpline == HELPLINE
    assert {topic.kind for topic in source.topics} == set(TopicKind)
    assert len({topic.id for topic in source.topics}) == len(source.topics)
    numbers = [topic.menu for topic in source.menu_topics()]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers) and numbers[0] == 1
    assert all(topic.title for topic in source.menu_topics())


def _content(tmp_path: Path, old: str, new: str) -> Path:
    english = CONTENT_FILE.read_text(encoding="utf-8")
    assert old in english
    path = tmp_path / "topics.toml"
    path.write_text(english.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "reason"), [
    ('kind = "notice"', 'kind = "announcement"', "announcement"),  # a kind the bot does not know
    ('budget = 4', 'budgets = 4', "budget"),  # a required field missing
    ('helpline = "1-877-465-6636"', 'helpline = "1-877-465-6636', ""),  # not TOML
])
def test_a_bad_content_file_stops_loading_naming_the_file(tmp_path, old, new, reason):
    path = _content(tmp_path, old, new)
    with pytest.raises(CatalogError) as error:
        load_source(path)
    assert str(error.value).startswith(f"{path}: ") and reason in str(error.value)


def test_keywords_in_the_content_file_stop_loading_naming_where_they_live_now(tmp_path):
    path = _content(tmp_path, 'budget = 4\nanswer = "If this', 'budget = 4\nkeywords = ["help me"]\nanswer = "If this')
    with pytest.raises(CatalogError, match="topic 'crisis' lists keywords.*locales/<lang>/keywords"):
        load_source(path)


def test_keyword_files_are_one_phrase_a_line_with_comments_and_round_trip(tmp_path):
    path = tmp_path / "es" / "keywords" / "crisis.txt"
    path.parent.mkdir(parents=True)
    path.write_text("# Frases de crisis\n\nme quiero morir\n  no puedo respirar  # con espacios\n"
                    "fiebre + quimio\n# fin\n", encoding="utf-8")
    phrases = read_word_file(path)
    assert phrases == ("me quiero morir", "no puedo respirar", "fiebre + quimio")
    again = tmp_path / "copy.txt"
    write_word_file(again, phrases, "Frases de crisis\nuna por línea")
    assert read_word_file(again) == phrases
    assert again.read_text(encoding="utf-8").startswith("# Frases de crisis\n# una por línea\n")
    assert read_word_file(tmp_path / "missing.txt") == ()
    with pytest.raises(ValueError):
        write_word_file(again, ("a, b # c",))


def test_every_shipped_keyword_file_round_trips(tmp_path):
    catalog = Catalog.load()
    for lang in catalog.languages:
        for name, phrases in catalog.keyword_lists[lang].items():
            assert phrases, (lang, name)
            copy = tmp_path / lang / f"{name}.txt"
            write_word_file(copy, phrases)
            assert read_word_file(copy) == phrases == read_word_file(keyword_file(default_locales_dir(), lang, name))


# -- languages and translations -------------------------------------------------------------------


def test_languages_are_english_then_every_catalog_found(tmp_path):
    assert available_languages(default_locales_dir()) == ["en", "es"]
    assert available_languages(tmp_path / "missing") == ["en"]
    shutil.copytree(default_locales_dir() / "es", tmp_path / "pt")  # any directory with a messages.po
    (tmp_path / "de" / "LC_MESSAGES").mkdir(parents=True)  # and none without one
    assert available_languages(tmp_path) == ["en", "pt"]
    assert catalog_path(tmp_path, "pt").is_file()


def test_the_catalog_does_not_read_the_environment(monkeypatch):
    # MBCSMS_LOCALES is read by Settings alone, which passes the directory down.
    monkeypatch.setenv("MBCSMS_LOCALES", "/no/such/directory")
    assert Catalog.load().languages == ["en", "es"]


def with_spanish(messages: dict[tuple[str, str], str]) -> Catalog:
    return Catalog(load_source(), {"es": Translations("es", None, messages)})


def test_an_entry_without_a_translation_falls_back_to_the_english():
    source = load_source()
    cure = source.topic("cure")
    catalog = with_spanish({(f"answer:{cure.id}", cure.answer): "Hoy no tiene cura."})
    assert catalog.answer("cure", "es") == "Hoy no tiene cura."
    assert catalog.answer("her2", "es") == source.topic("her2").answer
    assert catalog.has_translation("answer:cure", cure.answer, "es")
    assert not catalog.has_translation("answer:her2", source.topic("her2").answer, "es")
    assert catalog.answer("cure", "fr") == cure.answer  # a language without a catalog


def test_keywords_come_from_each_languages_files_whatever_its_catalog_holds():
    source = load_source()
    her2 = source.topic("her2")
    locales = default_locales_dir()
    # A Spanish catalog with no translation at all: its keyword files still count in full.
    catalog = with_spanish({})
    assert catalog.keywords(her2, "es") == read_word_file(keyword_file(locales, "es", "her2"))
    assert "her2 positivo" in catalog.keywords(her2, "es")
    assert catalog.keywords(her2, "en") == read_word_file(keyword_file(locales, "en", "her2"))
    assert "herceptin" in catalog.keywords(her2, "en")
    assert "me quiero matar" in catalog.keywords(source.topic("crisis"), "es")
    assert catalog.words("common", "es") and catalog.words("common", "en")
    assert catalog.words("common", "es") != catalog.words("common", "en")
    # A topic that never listens has no keywords, whatever file shares its name ("feelings").
    assert catalog.keywords(source.topic("feelings"), "en") == ()
    assert catalog.words("feelings", "en")  # the feelings word list
    assert catalog.keywords(her2, "fr") == ()  # a language without files


# -- rendering -------------------------------------------------------------------------------------


def test_a_rendered_reply_has_its_placeholders_filled(catalog):
    assert HELPLINE in catalog.render("fallback", "es") and "{helpline}" not in catalog.render("fallback", "es")
    for lang in catalog.languages:
        menu = catalog.render("menu", lang)
        for topic in catalog.menu_topics():
            assert f"{topic.menu} {catalog.title(topic, lang)}" in menu
    # The welcome back includes the menu, in the same language.
    assert catalog.render("start", "es").endswith("\n" + catalog.render("menu", "es"))


def test_a_stray_brace_from_a_translator_stays_text():
    source = load_source()
    helpline = source.topic("helpline")
    catalog = with_spanish({("answer:helpline", helpline.answer): "Llame al {helpline} {telefono} o {0}."})
    assert catalog.render("helpline", "es") == f"Llame al {HELPLINE} {{telefono}} o {{0}}."


def test_menu_numbers_pick_topics(catalog):
    assert catalog.menu_topic(8).id == "her2"
    assert catalog.menu_topic(0) is None and catalog.menu_topic(99) is None
