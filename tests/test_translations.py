"""`mbcsms translations`: the catalog tools staff use, on real catalog files in tmp_path.

Catalogs are edited here with Babel itself (read_po/write_po), as Poedit or Weblate would edit
them, and the commands are run through the real CLI.
"""

from __future__ import annotations

import gettext
import html
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.pofile import read_po, write_po
from click.testing import CliRunner, Result

from mbcsms import create_app
from mbcsms.catalog import (
    CONTENT_FILE,
    Catalog,
    CatalogError,
    catalog_path,
    default_locales_dir,
    keyword_file,
    load_source,
    read_word_file,
    source_entries,
    write_word_file,
)
from mbcsms.cli import main
from mbcsms.conversation import Conversation, SenderState
from mbcsms.helpline_hours import HOURS_KEYS
from mbcsms.sms import count_segments
from mbcsms.translations import update
from mbcsms.translations.check import check
from mbcsms.understanding.keywords import KeywordTables
from tests.helpers import app_env, post_signed

REPO_ROOT = Path(__file__).resolve().parent.parent

REPO_LOCALES = default_locales_dir()


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    """A copy of the project's catalogs, safe to break."""
    target = tmp_path / "locales"
    shutil.copytree(REPO_LOCALES, target, ignore=shutil.ignore_patterns("*.mo"))
    return target


def read(path: Path) -> PoCatalog:
    with path.open("rb") as handle:
        return read_po(handle)


def edit(path: Path, change: Callable[[PoCatalog], None]) -> None:
    catalog = read(path)
    change(catalog)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=None)


def entry(catalog: PoCatalog, context: str):  # -> babel Message
    for message in catalog:
        if message.context == context:
            return message
    raise KeyError(context)


def line_of(path: Path, context: str) -> int:
    return entry(read(path), context).lineno


# --- check ---------------------------------------------------------------------------------


def test_check_passes_on_the_repository() -> None:
    result = run("translations", "check", "--locales", str(REPO_LOCALES))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK:")
    assert len(result.output.strip().splitlines()) == 1


def test_check_measures_every_reply_in_every_language_as_sent() -> None:
    result = check(REPO_LOCALES)
    catalog = Catalog.load(REPO_LOCALES)
    assert result.ok
    assert {lang for _, lang in result.measures} == set(catalog.languages) >= {"en", "es"}
    for (topic, lang), measure in result.measures.items():
        for form in measure.forms:
            if topic == "hours_closed":  # the line itself, {opens} filled for each day
                assert form.text == catalog.hours_line(lang, form.hours)
            else:
                assert form.text == catalog.render(topic, lang, form.hours)
            assert "{" not in form.text  # every placeholder filled, {hours} and {opens} included
            assert form.count == count_segments(form.text) and form.count.segments <= measure.budget
            assert form.readable and form.level is not None
        assert measure.count == max(f.count for f in measure.forms if f.text == measure.text)
        assert measure.count.segments <= catalog.topic(topic).budget
    assert "\n" in result.measures[("start", "es")].text  # start includes the menu
    for lang in catalog.languages:
        assert result.measures[("crisis", lang)].budget == 3
        # {hours}: the open line and the closed line for each day it may open next.
        helpline = result.measures[("helpline", lang)]
        assert [form.hours for form in helpline.forms] == list(HOURS_KEYS)
        assert len({form.text for form in helpline.forms}) == len(HOURS_KEYS)


def blank(context: str) -> Callable[[PoCatalog], None]:
    def change(catalog: PoCatalog) -> None:
        entry(catalog, context).string = ""
    return change


def make_fuzzy(context: str) -> Callable[[PoCatalog], None]:
    def change(catalog: PoCatalog) -> None:
        entry(catalog, context).flags.add("fuzzy")
    return change


def rename_placeholder(catalog: PoCatalog) -> None:
    message = entry(catalog, "answer:help")
    assert "{helpline}" in message.string
    message.string = message.string.replace("{helpline}", "{telefono}")


def hard_to_read(catalog: PoCatalog) -> None:
    entry(catalog, "answer:treatment").string = (
        "Intervenciones inmunoterapéuticas multidisciplinarias individualizadas. (Healthwise; Komen)"
    )


def long_crisis(catalog: PoCatalog) -> None:
    # Four UCS-2 segments: within the topic's budget of 4, past the crisis rule of 3.
    message = entry(catalog, "answer:crisis")
    message.string += " Llame ahora, por favor."


def long_closed_hours(catalog: PoCatalog) -> None:
    # Within budget with the "open" line, past it with the longer "closed" one.
    message = entry(catalog, "answer:helpline")
    message.string += " Le atienden con gusto y sin costo."


def overfill(catalog: PoCatalog) -> None:
    message = entry(catalog, "answer:survival")
    message.string = " ".join([message.string] * 3)


def add_stale(catalog: PoCatalog) -> None:
    catalog.add("An answer we no longer send.", "Una respuesta vieja.", context="answer:gone")


@pytest.mark.parametrize(
    ("change", "context", "kind", "detail"),
    [
        (blank("answer:stats"), "answer:stats", "untranslated", "the bot sends the English"),
        (make_fuzzy("answer:cure"), "answer:cure", "fuzzy", "fuzzy"),
        (rename_placeholder, "answer:help", "placeholders", "expected {helpline}, found {telefono}"),
        (overfill, "answer:survival", "over budget", "UCS-2"),
        (hard_to_read, "answer:treatment", "hard to read", "the limit is Fernández-Huerta ease >= 65"),
        (long_crisis, "answer:crisis", "over budget", "must fit 3 segments in every language"),
        (long_closed_hours, "answer:helpline", "over budget", "with the hours line: helpline closed"),
        (add_stale, "answer:gone", "stale", "no longer exists"),
    ],
    ids=["blank", "fuzzy", "placeholder", "over-budget", "hard-to-read", "crisis-over-3",
         "over-budget-when-closed", "stale"],
)
def test_check_names_file_line_and_entry_of_each_problem(
    locales: Path, change: Callable[[PoCatalog], None], context: str, kind: str, detail: str
) -> None:
    path = catalog_path(locales, "es")
    edit(path, change)

    result = run("translations", "check", "--locales", str(locales))

    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line]
    assert len(problems) == 1, result.output
    expected = f"{path}:{line_of(path, context)}: [es] {context} "
    assert problems[0].startswith(expected), problems[0]
    assert f": {kind}: " in problems[0] and detail in problems[0]
    assert "1 problem (1 in es)" in result.stderr


def add_keywords(locales: Path, lang: str, name: str, *phrases: str) -> Path:
    path = keyword_file(locales, lang, name)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(f"{phrase}\n" for phrase in phrases))
    return path


def test_check_reports_every_problem_at_once_and_can_keep_to_one_language(locales: Path) -> None:
    path = catalog_path(locales, "es")
    for change in (blank("answer:stats"), make_fuzzy("answer:cure"), rename_placeholder, overfill):
        edit(path, change)
    add_keywords(locales, "es", "cure", "Quimioterapia")

    everything = run("translations", "check", "--locales", str(locales))
    assert everything.exit_code == 1
    for context in ("answer:stats", "answer:cure", "answer:help", "keywords:treatment:", "answer:survival"):
        assert f"[es] {context}" in everything.stdout

    english = run("translations", "check", "--lang", "en", "--locales", str(locales))
    assert english.exit_code == 0 and english.output.startswith("OK: 1 language (en)")


# --- keyword files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "detail"),
    [
        # Reported on the later of the two topics, naming the earlier one (cure comes first).
        ("Quimioterapia", "'quimioterapia' is also a keyword of topic cure ('Quimioterapia', es/keywords/cure.txt:"),
        # "tratamientos" is not written in the treatment list, but the bot matches it by its
        # stem, which it shares with treatment's "tratamiento".
        ("tratamientos", "is also a keyword of topic cure ('tratamientos', es/keywords/cure.txt:"),
    ],
    ids=["same-word", "same-stem"],
)
def test_check_reports_a_keyword_clash_the_shared_builder_found(locales: Path, phrase: str, detail: str) -> None:
    cure = add_keywords(locales, "es", "cure", phrase)
    # The clash is the one the understander's own table builder records...
    clashes = KeywordTables(Catalog.load(locales)).clashes
    assert [(c.lost.topic, c.kept.topic, c.kept.text) for c in clashes if c.lost.lang == "es"][0] == (
        "treatment", "cure", phrase)

    result = run("translations", "check", "--locales", str(locales))

    # ...and check reports it, at the line of the keyword that never wins.
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line]
    assert len(problems) == 1, result.output
    treatment = keyword_file(locales, "es", "treatment")
    lost = next(c.lost.text for c in clashes if c.lost.lang == "es")
    line = read_word_file(treatment).index(lost)
    numbered = [n for n, text in enumerate(treatment.read_text(encoding="utf-8").splitlines(), 1)
                if text.strip() == lost]
    assert line >= 0 and numbered
    assert problems[0].startswith(f"{treatment}:{numbered[0]}: [es] keywords:treatment: "), problems[0]
    assert ": keyword conflict: " in problems[0] and detail in problems[0]
    assert f"cure.txt:{len(cure.read_text(encoding='utf-8').splitlines())})" in problems[0]


def test_check_reports_a_keyword_the_crisis_phrases_always_win(locales: Path) -> None:
    add_keywords(locales, "en", "helpline", "kill myself")
    result = check(locales)
    problems = [(p.lang, p.kind, p.context) for p in result.problems]
    assert problems == [("en", "keyword conflict", "keywords:helpline")]
    assert "crisis phrase" in result.problems[0].detail


def test_an_emptied_keyword_file_and_a_comma_list_are_reported(locales: Path) -> None:
    her2 = keyword_file(locales, "es", "her2")
    her2.write_text("# vacío\n¿?\n", encoding="utf-8")
    add_keywords(locales, "es", "cure", "curación, curado")
    (locales / "es" / "keywords" / "curacion.txt").write_text("cura\n", encoding="utf-8")
    result = check(locales)
    found = {(p.kind, p.context) for p in result.problems}
    assert found == {("keyword file", "keywords:her2"), ("no keywords", "keywords:her2"),
                     ("keyword file", "keywords:cure"), ("keyword file", "keywords:curacion")}, found


def mark_all_fuzzy(catalog: PoCatalog) -> None:
    for message in catalog:
        if message.id:
            message.flags.add("fuzzy")


def crisis_reply(client, body: str) -> str:  # noqa: ANN001
    response = post_signed(client, body)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_an_all_fuzzy_catalog_still_catches_spanish_crises_and_answers_them_in_spanish(
    locales: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = catalog_path(locales, "es")
    edit(path, mark_all_fuzzy)
    spanish_crisis = entry(read(path), "answer:crisis").string
    assert all(m.fuzzy for m in read(path) if m.id)
    keywords_before = {p.name: p.read_bytes() for p in (locales / "es" / "keywords").iterdir()}

    capsys.readouterr()
    app = create_app(app_env(tmp_path, MBCSMS_LOCALES=str(locales)))
    started = capsys.readouterr().out
    warnings = [line for line in started.splitlines() if '"translations_incomplete"' in line]
    assert len(warnings) == 1, started
    assert '"lang": "es"' in warnings[0] and '"level": "warning"' in warnings[0]
    assert "sent in English" in warnings[0] and "fuzzy" in warnings[0] and '"count": ' in warnings[0]

    client = app.test_client()
    for text in ("me quiero morir", "quiero suicidarme", "no puedo respirar"):
        body = crisis_reply(client, text)
        assert html.escape(spanish_crisis, quote=False) in body, (text, body)
    # Everything else in Spanish falls back to the English until the entries are reviewed.
    english_her2 = load_source().topic("her2").answer
    assert html.escape(english_her2[:60], quote=False) in crisis_reply(client, "que es her2 positivo")
    assert {p.name: p.read_bytes() for p in (locales / "es" / "keywords").iterdir()} == keywords_before

    result = run("translations", "check", "--locales", str(locales))
    assert result.exit_code == 1 and "keyword" not in result.stdout
    assert "answer:crisis" in result.stdout and "fuzzy crisis reply beats English" in result.stdout


def test_a_new_language_without_crisis_phrases_starts_with_a_warning_and_catches_crises(
    locales: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    created = run("translations", "new", "pt", "--locales", str(locales))
    assert created.exit_code == 0, created.output
    edit(catalog_path(locales, "pt"), fill_portuguese)
    write_portuguese_keywords(locales, without={"crisis"})
    keyword_file(locales, "pt", "crisis").write_text("# ainda nenhuma\n", encoding="utf-8")

    capsys.readouterr()
    app = create_app(app_env(tmp_path, MBCSMS_LOCALES=str(locales)))
    started = capsys.readouterr().out
    warning = [line for line in started.splitlines() if "language_without_crisis_phrases" in line]
    assert len(warning) == 1 and '"lang": "pt"' in warning[0], started

    client = app.test_client()
    # Screened by every language's crisis phrases and by the model, whatever language it is in.
    for text in ("I want to kill myself", "me quiero morir", "quero me matar, não aguento mais"):
        body = crisis_reply(client, text)
        assert "911" in body and "988" in body, (text, body)
    checked = run("translations", "check", "--lang", "pt", "--locales", str(locales))
    assert checked.exit_code == 1
    assert [line.split(": ")[2:4] for line in checked.stdout.splitlines()] == [
        ["no crisis phrases", "this language has no crisis phrases of its own"]]


def test_an_english_keyword_edit_never_changes_another_languages_lists(locales: Path, tmp_path: Path) -> None:
    spanish = {p.name: p.read_bytes() for p in (locales / "es" / "keywords").iterdir()}
    po_before = catalog_path(locales, "es").read_bytes()
    before = Catalog.load(locales)
    add_keywords(locales, "en", "crisis", "i want to vanish for good")
    crisis = keyword_file(locales, "en", "crisis")
    crisis.write_text(crisis.read_text(encoding="utf-8").replace("\nsuicide\n", "\nsuicide attempt\n"),
                      encoding="utf-8")

    assert update(locales) == {"es": False}  # keywords are no entries of the catalog

    after = Catalog.load(locales)
    assert {p.name: p.read_bytes() for p in (locales / "es" / "keywords").iterdir()} == spanish
    assert catalog_path(locales, "es").read_bytes() == po_before
    assert after.keyword_lists["es"] == before.keyword_lists["es"]
    assert after.keyword_lists["en"]["crisis"] != before.keyword_lists["en"]["crisis"]
    conversation = Conversation(after)
    for text in ("me quiero morir", "quiero suicidarme", "no puedo respirar"):
        reply, _ = conversation.reply_to(text, SenderState(), 0.0)
        assert (reply.topic, reply.lang) == ("crisis", "es"), text


def test_a_duplicated_entry_is_reported(locales: Path) -> None:
    path = catalog_path(locales, "es")
    text = path.read_text(encoding="utf-8")
    block = re.search(r'msgctxt "answer:stop"\n.*\n.*\n', text)
    assert block is not None
    path.write_text(text + "\n" + block.group(0), encoding="utf-8")
    result = run("translations", "check", "--locales", str(locales))
    assert result.exit_code == 1
    assert "duplicate" in result.stdout and "answer:stop" in result.stdout


# --- a broken catalog ----------------------------------------------------------------------


@pytest.fixture
def broken(locales: Path) -> tuple[Path, int]:
    """The Spanish catalog with one line that is not PO syntax: (locales, that line)."""
    path = catalog_path(locales, "es")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    bad = line_of(path, "answer:stats")  # the msgid line of an entry in the middle
    lines[bad - 1] = 'msgid "More than 168,000 women\n'.replace("msgid", "msgi d")
    path.write_text("".join(lines), encoding="utf-8")
    return locales, bad


def test_a_broken_catalog_stops_loading_naming_file_and_line(broken: tuple[Path, int]) -> None:
    locales, line = broken
    with pytest.raises(CatalogError, match=re.escape(f"{catalog_path(locales, 'es')}:{line}: ")):
        Catalog.load(locales)


def test_a_broken_catalog_stops_the_app_and_the_cli(broken: tuple[Path, int], tmp_path: Path) -> None:
    locales, line = broken
    where = f"{catalog_path(locales, 'es')}:{line}: "
    with pytest.raises(CatalogError, match=re.escape(where)):
        create_app(app_env(tmp_path, MBCSMS_LOCALES=str(locales)))

    reply = CliRunner().invoke(main, ["reply", "hola"], env={"MBCSMS_LOCALES": str(locales)})
    assert reply.exit_code == 1 and where in reply.output and "Traceback" not in reply.output

    checked = CliRunner().invoke(main, ["translations", "check", "--locales", str(locales)])
    assert checked.exit_code == 1, checked.output
    assert not isinstance(checked.exception, CatalogError)
    assert f"{where}" in checked.stdout and "broken" in checked.stdout


# --- extract, update, compile --------------------------------------------------------------


def test_extract_writes_a_template_equal_to_the_english_source(tmp_path: Path) -> None:
    result = run("translations", "extract", "--locales", str(tmp_path))
    assert result.exit_code == 0, result.output
    template = read(tmp_path / "messages.pot")
    extracted = {(m.context, m.id): m for m in template if m.id}
    expected = {(e.context, e.msgid): e for e in source_entries(load_source())}
    assert extracted.keys() == expected.keys()
    # Answers and menu titles only: keyword lists are plain files, never catalog entries.
    assert {context.partition(":")[0] for context, _ in extracted} == {"answer", "title"}
    assert {m.context.partition(":")[0] for m in read(REPO_LOCALES / "messages.pot") if m.id} == {"answer", "title"}
    for key, message in extracted.items():
        assert message.context and message.string == ""
        assert message.auto_comments and expected[key].comment.startswith(message.auto_comments[0][:20])
        assert message.locations[0][0] == "src/mbcsms/content/topics.toml"


def test_update_leaves_an_up_to_date_catalog_byte_for_byte(locales: Path) -> None:
    path = catalog_path(locales, "es")
    update(locales)  # the committed file may lag behind topics.toml line numbers
    before = path.read_bytes()
    assert update(locales) == {"es": False}
    assert path.read_bytes() == before
    assert check(locales).ok


def changed_checkout(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    """A source checkout whose English content has ``old`` replaced by ``new``: (root, content)."""
    root = tmp_path / "checkout"
    (root / "src/mbcsms/content").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "babel.cfg", root / "babel.cfg")
    english = CONTENT_FILE.read_text(encoding="utf-8")
    assert old in english
    content = root / "src/mbcsms/content/topics.toml"
    content.write_text(english.replace(old, new), encoding="utf-8")
    return root, content


def test_update_after_an_english_change_marks_the_translation_fuzzy(locales: Path, tmp_path: Path) -> None:
    # A checkout whose English answer for "stop" changed.
    old = "You will get no more messages from us. To come back, text START."
    new = "You will get no more messages from us. To come back, text START any time."
    root, content = changed_checkout(tmp_path, old, new)

    assert update(locales, root=root) == {"es": True}

    path = catalog_path(locales, "es")
    message = entry(read(path), "answer:stop")
    assert message.id == new and message.fuzzy
    assert message.string.startswith("No recibirá más mensajes")  # kept for the translator
    assert f'#| msgid "{old}"' in path.read_text(encoding="utf-8")  # what the English was
    result = check(locales, source_path=content)
    assert [(p.kind, p.context) for p in result.problems] == [("fuzzy", "answer:stop")]
    assert (locales / "messages.pot").read_text(encoding="utf-8").count(new) == 1


def test_compile_writes_mo_files_next_to_the_catalogs(locales: Path) -> None:
    result = run("translations", "compile", "--locales", str(locales))
    assert result.exit_code == 0, result.output
    with catalog_path(locales, "es").with_suffix(".mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    assert compiled.pgettext("title:treatment", "Treatment") == "Tratamiento"


# --- a new language is data only -----------------------------------------------------------

PT_ANSWERS = {
    "crisis": "Se for uma emergência, ligue para o 911 agora. Se está pensando em suicídio ou em se "
    "machucar, ligue ou mande mensagem para o 988. Você não está sozinha.",
    "stop": "Você não receberá mais mensagens nossas. Para voltar, envie VOLTAR.",
    "start": "Bem-vinda de volta! Você receberá nossas respostas de novo.",
    "help": "Linha MBC: informações sobre câncer de mama metastático (Komen e Healthwise). Envie "
    "MENU para ver os temas. Linha de ajuda Komen: {helpline}. Envie PARAR para sair.",
    "language": "OK, vou responder em português a partir de agora. Envie MENU para ver os temas.",
    "menu": "Responda com um número:\n{topics}",
    "about": "O câncer de mama metastático (estágio IV) se espalhou para outras partes do corpo. "
    "Hoje não tem cura, mas tem tratamento. (Komen, 2021)",
    "spread": "Costuma ir para os ossos, pulmões, fígado ou cérebro. Continua sendo câncer de mama "
    "e é tratado como tal. (Komen, 2021)",
    "stats": "Em 2020, mais de 168.000 mulheres nos EUA viviam com câncer de mama metastático. "
    "Homens também podem ter. (Komen, 2021)",
    "recurrence": "Muitas vezes volta meses ou anos depois do tratamento (recidiva a distância). "
    "Algumas pessoas já têm a doença no diagnóstico. (Komen; Healthwise)",
    "cure": "Hoje, para a maioria das pessoas, não tem cura, mas tem tratamento. Algumas pessoas "
    "vivem muitos anos. (Komen, 2021; Healthwise, 2023)",
    "treatment": "O tratamento pode incluir terapia hormonal, quimioterapia, terapia-alvo, "
    "imunoterapia, radioterapia ou cirurgia. A escolha depende do tumor e dos seus objetivos. "
    "(Healthwise, 2023)",
    "survival": "Cerca de 1 em cada 3 mulheres nos EUA com a doença vive pelo menos 5 anos após o "
    "diagnóstico. Varia muito de pessoa para pessoa. (Komen, 2021)",
    "her2": "HER2-positivo: as células têm receptores HER2 demais. Remédios como trastuzumabe "
    "atuam no HER2. É um dos tipos mais tratáveis. (artigo HER2)",
    "support": "A Komen tem um grupo fechado no Facebook para pessoas com câncer de mama "
    "metastático e seus entes queridos. (Komen, 2021)",
    "helpline": "Linha de ajuda Komen: {helpline}, em inglês e espanhol. Atende um especialista ou "
    "assistente social de oncologia. {hours}",
    "fallback": "Desculpe, não sei responder isso aqui. Ligue para a linha de ajuda Komen: "
    "{helpline}. {hours} Envie MENU para ver os temas.",
    "rate_limit": "Você enviou muitas mensagens; vou fazer uma pausa de alguns minutos. Em uma "
    "emergência, ligue para o 911. Linha de ajuda Komen: {helpline}. {hours}",
    "hours_open": "Costuma estar aberta agora (seg-sex 9h-22h ET).",
    "hours_closed": "Costuma estar fechada agora; abre {opens}. Se for urgente, ligue para o 911 ou "
    "mande mensagem para o 988.",
    "welcome": "Bem-vinda à Linha MBC: informações sobre câncer de mama metastático (Komen e "
    "Healthwise). Uma resposta por mensagem enviada. Envie MENU para temas, AJUDA para ajuda, "
    "PARAR para sair. Podem ser cobradas tarifas de mensagens e dados.",
    "thanks": "De nada! Envie MENU quando quiser para ver os temas.",
    "ack": "OK. Envie MENU quando quiser para ver os temas.",
    "goodbye": "Cuide-se. Envie MENU quando quiser para ver os temas.",
    "human_check": "Esta é uma linha automática, não uma pessoa, com informações da Komen e da "
    "Healthwise. Para falar com uma pessoa, ligue para a linha de ajuda Komen: {helpline}.",
    "feelings": "Sinto muito que você esteja passando por isso.",
    "feelings_question": "Sinto muito que você esteja com medo. Para apoio, envie 9.",
    "media": "Desculpe, este serviço só lê texto. Escreva sua pergunta.",
}
PT_TITLES = {
    "about": "O que é", "spread": "Onde se espalha", "stats": "Quantas pessoas",
    "recurrence": "Quando volta", "cure": "Tem cura?", "treatment": "Tratamento",
    "survival": "Sobrevida", "her2": "HER2-positivo", "support": "Apoio", "helpline": "Linha de ajuda",
}
PT_KEYWORDS = {
    "crisis": "suicídio, me matar, quero morrer, não quero viver, me machucar, não consigo respirar, "
    "dor no peito, desmaiei, emergência",
    "stop": "parar, sair, cancelar, descadastrar",
    "start": "voltar, recomeçar",
    "help": "ajuda, informação, informações",
    "language": "português, em português, portuguese",
    "menu": "menu, opções, olá, oi, bom dia, boa tarde, boa noite",
    "about": "câncer de mama metastático, metastático, metastática, metástase, estágio 4, estágio iv, "
    "câncer avançado",
    "spread": "espalhou, se espalha, osso, ossos, pulmão, pulmões, fígado, cérebro",
    "stats": "quantas pessoas, quantas mulheres, estatísticas, homens, homem",
    "recurrence": "recidiva, voltou, recorrência",
    "cure": "cura, tem cura, curável, incurável, remissão",
    "treatment": "tratamento, tratamentos, quimioterapia, quimio, radioterapia, cirurgia, "
    "terapia hormonal, imunoterapia, remédios",
    "survival": "sobrevida, sobreviver, expectativa de vida, prognóstico, quanto tempo",
    "her2": "her2, her2 positivo, herceptin, trastuzumabe",
    "support": "apoio, grupo de apoio, família, amigos, cuidador, sozinha, medo",
    "helpline": "linha de ajuda, telefone, ligar, assistente social, komen, efeitos colaterais",
}
PT_WORDS = {
    "not_crisis": "medo de morrer, tenho medo de morrer",
    "filler": "por favor, obrigado, obrigada, agora, quero, todas, mensagens, as mensagens",
    "common": "o, a, os, as, um, uma, de, do, da, dos, das, em, no, na, nos, nas, que, e, para, "
    "por, com, nao, sim, eu, voce, ele, ela, meu, minha, seu, sua, isso, este, esta, esse, essa, "
    "muito, mais, como, quando, onde, porque, mas, tambem, ja, ainda, ser, estar, tem, ter, tenho, "
    "foi, sao, quais, qual, quero, posso, pode, sobre, cancer, mama, mae, filha, irma, medico, "
    "hoje, amanha, ontem, dia, ano, anos, vida, tempo, obrigado, ola, bom, boa, entao, aqui, tudo, "
    "nada, alguem, depois, antes, sempre, nunca, estou, fazer, saber, quanto, quantos, dor, exame",
}


PT_WORDS["feelings"] = "medo, com medo, sozinha, me sinto sozinha, triste"


def write_portuguese_keywords(locales: Path, without: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Portuguese keyword files, one phrase a line, as staff would write them."""
    for name, phrases in {**PT_KEYWORDS, **PT_WORDS}.items():
        if name not in without:
            write_word_file(keyword_file(locales, "pt", name), tuple(p.strip() for p in phrases.split(",")),
                            f"Portuguese: {name}")


def fill_portuguese(catalog: PoCatalog) -> None:
    tables = {"answer": PT_ANSWERS, "title": PT_TITLES}
    for message in catalog:
        if message.id:
            kind, _, name = message.context.partition(":")
            message.string = tables[kind][name]


def test_a_new_language_needs_only_its_catalog(locales: Path) -> None:
    created = run("translations", "new", "pt", "--locales", str(locales))
    assert created.exit_code == 0, created.output
    path = catalog_path(locales, "pt")
    assert path.is_file() and "Portuguese" in created.output
    fresh = read(path)
    assert str(fresh.locale) == "pt" and all(not m.string for m in fresh if m.id)

    # Its keyword files are started empty, each saying what goes in it.
    assert read_word_file(keyword_file(locales, "pt", "crisis")) == ()
    assert "Not a translation" in keyword_file(locales, "pt", "crisis").read_text(encoding="utf-8")

    # Untranslated, it is reported entry by entry, and the bot still answers (in English).
    unfinished = run("translations", "check", "--lang", "pt", "--locales", str(locales))
    assert unfinished.exit_code == 1 and "[pt] answer:treatment " in unfinished.stdout
    assert "[pt] keywords:crisis: no crisis phrases: " in unfinished.stdout
    assert "[pt] keywords:her2: no keywords: " in unfinished.stdout

    edit(path, fill_portuguese)
    write_portuguese_keywords(locales)
    done = run("translations", "check", "--lang", "pt", "--locales", str(locales))
    assert done.exit_code == 0, done.output

    catalog = Catalog.load(locales)
    assert catalog.languages == ["en", "es", "pt"]
    conversation = Conversation(catalog)
    portuguese, _ = conversation.reply_to("Quais são os tratamentos para o câncer de mama?", SenderState(), 0.0)
    assert (portuguese.topic, portuguese.lang) == ("treatment", "pt")
    assert portuguese.body == PT_ANSWERS["treatment"]
    spanish, _ = conversation.reply_to("¿Cuáles son los tratamientos para el cáncer?", SenderState(), 0.0)
    assert (spanish.topic, spanish.lang) == ("treatment", "es")
    assert spanish.body == catalog.render("treatment", "es")
    switched, state = conversation.reply_to("PORTUGUÊS", SenderState(), 0.0)
    assert (switched.topic, switched.body, state.lang) == ("language", PT_ANSWERS["language"], "pt")
    menu, _ = conversation.reply_to("olá", SenderState(), 0.0)
    assert menu.lang == "pt" and "6 Tratamento" in (menu.body or "")


def test_new_refuses_an_existing_or_unknown_language(locales: Path) -> None:
    existing = CliRunner().invoke(main, ["translations", "new", "es", "--locales", str(locales)])
    assert existing.exit_code == 1 and "already exists" in existing.output
    unknown = CliRunner().invoke(main, ["translations", "new", "xx", "--locales", str(locales)])
    assert unknown.exit_code == 1 and "not a language code" in unknown.output
    assert not (locales / "xx").exists()


# --- preview -------------------------------------------------------------------------------


def test_preview_shows_every_reply_in_every_language(tmp_path: Path) -> None:
    page = tmp_path / "replies.html"
    result = run("translations", "preview", "--html", str(page), "--locales", str(REPO_LOCALES))
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    catalog = Catalog.load(REPO_LOCALES)
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text and "http" not in text.split("<body>")[0]
    assert "English (en)" in text and "Spanish (es)" in text
    for topic in catalog.source.topics:
        row = re.search(rf'<tr id="topic-{topic.id}">(.*?)</tr>', text, re.S)
        assert row is not None, topic.id
        cells = row.group(1).split("<td")[1:]
        assert len(cells) == len(catalog.languages)
        for lang, cell in zip(catalog.languages, cells, strict=True):
            budget = 3 if topic.id == "crisis" else topic.budget
            # A reply with {hours} is shown with both lines: open, and closed (the longest).
            with_hours = catalog.needs_hours(topic.id, lang)

            def as_sent(key: str | None, topic=topic, lang=lang) -> str:
                if topic.id == "hours_closed":  # {opens} filled: its longest form is shown
                    return catalog.hours_line(lang, key or "closed:wednesday")
                return catalog.render(topic.id, lang, key)

            shown = [
                key for key in (HOURS_KEYS if with_hours else [None])
                if all(html.escape(line) in cell for line in as_sent(key).split("\n"))
            ]
            assert shown == [None] or (shown[0] == "open" and len(shown) == 2), (topic.id, lang, shown)
            for key in shown:
                count = count_segments(as_sent(key))
                assert f"{count.segments} segment" in cell and f"of {budget}</span>" in cell
                assert count.encoding in cell
            # The reading level beside the segments.
            assert re.search(r'class="badge ok"[^>]*>(grade|ease) -?\d+\.\d</span>', cell), (topic.id, lang)
            assert ("helpline open" in cell) == with_hours
            assert ("helpline closed" in cell) == (with_hours or topic.id == "hours_closed")
    assert "no problems" in text and 'class="badge problem">' not in text.split("</div>", 1)[1]


def test_preview_flags_problems_where_they_stand(locales: Path, tmp_path: Path) -> None:
    path = catalog_path(locales, "es")
    edit(path, make_fuzzy("answer:cure"))
    edit(path, overfill)
    page = tmp_path / "replies.html"
    result = run("translations", "preview", "--html", str(page), "--locales", str(locales))
    assert result.exit_code == 0 and "2 problems flagged" in result.output
    text = page.read_text(encoding="utf-8")
    cure = re.search(r'<tr id="topic-cure">(.*?)</tr>', text, re.S).group(1)  # type: ignore[union-attr]
    english, spanish = cure.split("<td")[1:]
    assert "problem" not in english
    assert 'class="bad"' in spanish and ">fuzzy</span>" in spanish
    assert f"line {line_of(path, 'answer:cure')}" in spanish
    survival = re.search(r'<tr id="topic-survival">(.*?)</tr>', text, re.S).group(1)  # type: ignore[union-attr]
    assert 'class="badge over"' in survival and ">over budget</span>" in survival


def test_english_replies_and_keywords_are_checked_against_the_content_file(locales: Path, tmp_path: Path) -> None:
    content = tmp_path / "topics.toml"
    english = CONTENT_FILE.read_text(encoding="utf-8")
    short = 'answer = "You will get no more messages from us. To come back, text START."'
    assert short in english
    long_stop = short.replace("START.", "START. " + "We will miss you. " * 20)
    content.write_text(english.replace(short, long_stop), encoding="utf-8")
    helpline = add_keywords(locales, "en", "helpline", "chemo")

    result = check(locales, lang="en", source_path=content)

    problems = {(p.kind, p.context): p for p in result.problems}
    assert problems.keys() == {("over budget", "answer:stop"), ("keyword conflict", "keywords:helpline")}
    stop = problems[("over budget", "answer:stop")]
    assert stop.path == content and stop.line == english.splitlines().index('id = "stop"') + 1
    assert "GSM-7" in stop.detail and "budget is 2" in stop.detail
    clash = problems[("keyword conflict", "keywords:helpline")]
    assert "'chemo' is also a keyword of topic treatment" in clash.detail
    assert clash.path == helpline and clash.line == len(helpline.read_text(encoding="utf-8").splitlines())


def test_plain_pybabel_extract_reads_the_content_with_our_extractor(tmp_path: Path) -> None:
    """`pybabel extract -F babel.cfg` finds mbcsms's extractor by the entry point pyproject.toml
    registers, and writes the same template as `mbcsms translations extract`."""
    from babel.messages.frontend import CommandLineInterface

    template = tmp_path / "messages.pot"
    CommandLineInterface().run(
        ["pybabel", "extract", "-F", str(REPO_ROOT / "babel.cfg"), "-o", str(template), str(REPO_ROOT)]
    )
    extracted = {(m.context, m.id): m for m in read(template) if m.id}
    expected = {(e.context, e.msgid): e for e in source_entries(load_source())}
    assert extracted.keys() == expected.keys()
    assert all(" ".join(message.auto_comments) == expected[key].comment for key, message in extracted.items())


def test_plain_pybabel_compile_accepts_the_shipped_catalogs(tmp_path: Path) -> None:
    """Staff may run Babel's own command line, as its documentation shows, not only ours."""
    from babel.messages.frontend import CommandLineInterface

    shutil.copytree(REPO_ROOT / "locales", tmp_path / "locales")
    # CommandLineInterface.run returns the number of catalogs that failed, 0 when all compiled.
    failures = CommandLineInterface().run(
        ["pybabel", "compile", "-d", str(tmp_path / "locales"), "-D", "messages", "--statistics"]
    )
    assert not failures
    assert (tmp_path / "locales" / "es" / "LC_MESSAGES" / "messages.mo").stat().st_size > 0


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_keep_the_users_umask(locales: Path, tmp_path: Path, mask: int) -> None:
    import os

    (locales / "messages.pot").unlink()  # written afresh (it is kept when only its date would change)
    previous = os.umask(mask)
    try:
        assert run("translations", "update", "--locales", str(locales)).exit_code == 0
        assert run("translations", "new", "pt", "--locales", str(locales)).exit_code == 0
        page = tmp_path / "replies.html"
        assert run("translations", "preview", "--html", str(page), "--locales", str(locales)).exit_code == 0
    finally:
        os.umask(previous)
    for path in (catalog_path(locales, "pt"), locales / "messages.pot", page):  # es: already up to date
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


def test_a_long_previous_english_reads_back_as_written(locales: Path, tmp_path: Path) -> None:
    # Babel wraps "#| msgid" at 76 columns: its continuation lines read back as stray comments.
    old = "It can't be cured today, but it can be treated. (Komen, 2021)"
    root, _ = changed_checkout(tmp_path, old, old.replace("treated", "treated well"))
    assert update(locales, root=root) == {"es": True}
    path = catalog_path(locales, "es")
    (message,) = [m for m in read(path) if m.id and m.fuzzy]
    was = message.id.replace("treated well", "treated")
    assert len(was) > 76
    text = path.read_text(encoding="utf-8")
    assert [line for line in text.splitlines() if line.startswith("#|")] == [f'#| msgid "{was}"']
    # Babel reads "#|" back as a comment; another update keeps it as "#|", one line, unchanged.
    assert update(locales, root=root) == {"es": False}
    assert path.read_text(encoding="utf-8") == text
    if shutil.which("msgfmt"):
        assert subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(path)]).returncode == 0


def test_every_catalog_file_passes_msgfmt_check() -> None:
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("GNU gettext's msgfmt is not installed (.ci/run installs it)")
    files = [REPO_ROOT / "locales" / "messages.pot", *sorted((REPO_ROOT / "locales").glob("*/LC_MESSAGES/*.po"))]
    for path in files:
        result = subprocess.run([msgfmt, "--check", "-o", "/dev/null", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{path}: {result.stderr}"
    pot = (REPO_ROOT / "locales" / "messages.pot").read_text(encoding="utf-8")
    assert "charset=utf-8" in pot
    entries = pot.split("\n\n")
    with_placeholders = [e for e in entries if re.search(r"\{[a-z_]+\}", e.split("msgid", 1)[-1])]
    assert with_placeholders and all("python-brace-format" in e for e in with_placeholders)
