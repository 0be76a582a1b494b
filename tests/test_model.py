"""The learned classifiers: reproducible training, a model that matches its examples, sensible
scores in both languages, clear errors for bad example files, and bounded time on long input.

Real parts throughout: the shipped weights, the repository's examples, scikit-learn training.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from click.testing import CliRunner

from mbcsms.cli import main
from mbcsms.training.examples import ExamplesError, examples_hash, load_examples, read_file, repo_locales_dir
from mbcsms.understanding import model as model_module
from mbcsms.understanding.features import BUCKETS, column_map, ngram_buckets, vectorise
from mbcsms.understanding.model import Model

pytest.importorskip("sklearn")
from mbcsms.training import train as training  # noqa: E402


@pytest.fixture(scope="module")
def model() -> Model:
    return Model.load()


def test_the_shipped_model_was_trained_on_the_examples_in_the_repo(model: Model) -> None:
    assert model.examples_hash == examples_hash(), (
        "locales/*/examples/*.tsv changed since the model was trained: run `mbcsms model train` "
        "and commit src/mbcsms/understanding/weights/model.npz")


def test_training_twice_gives_the_same_weights() -> None:
    examples = load_examples()[::4]  # a deterministic quarter: quick, and every set is in it
    first = training.fit(training.Encoded.of(examples))
    second = training.fit(training.Encoded.of(examples))
    assert np.array_equal(first.keys, second.keys)
    assert first.topics == second.topics
    np.testing.assert_allclose(first.idf, second.idf)
    np.testing.assert_allclose(first.crisis_coef, second.crisis_coef, atol=1e-6)
    np.testing.assert_allclose(first.topic_coef, second.topic_coef, atol=1e-6)
    np.testing.assert_allclose(first.topic_intercept, second.topic_intercept, atol=1e-6)


def test_retraining_on_the_pinned_versions_rebuilds_the_shipped_weights(model: Model) -> None:
    if model.versions != {**training.versions(), "python": model.versions.get("python")}:
        pytest.skip(f"shipped weights were trained with {model.versions}, not {training.versions()}")
    fitted = training.fit(training.Encoded.of(load_examples()))
    assert np.array_equal(fitted.keys, model.keys)
    assert fitted.topics == model.topics
    np.testing.assert_allclose(fitted.idf, model.idf, rtol=1e-6)
    np.testing.assert_allclose(fitted.crisis_coef, model.crisis_coef, atol=1e-3)
    # float16 on disk: within its rounding
    np.testing.assert_allclose(fitted.topic_coef, model.topic_coef, atol=1e-2, rtol=2e-3)


CRISES = [
    "i want to kill myself", "I've been saving my pain pills, I have enough now",
    "my wife cant breathe and her lips are blue", "she cant feel her legs and wet herself",
    "me quiero morir", "quiero suicidarme", "no puedo respirar", "mi esposo se desmayo y no responde",
    "tengo fiebre de 39 y estoy en quimio",
]
CALM = [
    "what is her2", "hello", "thank you so much", "how long do people live with stage 4",
    "hola", "que es el cancer de mama metastasico", "gracias", "donde hay grupos de apoyo",
]


@pytest.mark.parametrize("text", CRISES)
def test_obvious_crises_are_flagged(model: Model, text: str) -> None:
    assert model.crisis_probability(text) >= model.crisis_threshold


@pytest.mark.parametrize("text", CALM)
def test_ordinary_messages_are_not(model: Model, text: str) -> None:
    assert model.crisis_probability(text) < model.crisis_threshold


@pytest.mark.parametrize(("text", "topic"), [
    ("what does HER2 positive mean", "her2"), ("que significa her2 positivo", "her2"),
    ("where does breast cancer spread", "spread"), ("a donde se extiende el cancer de mama", "spread"),
    ("hi", "greeting"), ("hola", "greeting"),
])
def test_topics(model: Model, text: str, topic: str) -> None:
    scores = model.score(text)
    assert scores.topic == topic
    assert sum(scores.topics.values()) == pytest.approx(1.0)


def test_features_read_the_normalised_text() -> None:
    same = [ngram_buckets(text) for text in ("¿Qué es HER2+?", "que es her 2", "QUE ES HER2")]
    for buckets, counts in same[1:]:
        assert np.array_equal(buckets, same[0][0]) and np.array_equal(counts, same[0][1])
    assert len(ngram_buckets("")[0]) == len(ngram_buckets("🚢 ¿?")[0]) == 0
    # An emoji of locales/emoji.txt is a word the model reads ("😢" says feelings).
    assert np.array_equal(ngram_buckets("😢")[0], ngram_buckets("emojifeelings")[0])


def test_feature_hashing_is_stable() -> None:
    """The buckets are part of the weights' format: a change to the hashing must bump FORMAT and
    retrain, or the shipped model reads the wrong weights."""
    buckets, counts = ngram_buckets("me quiero morir")
    assert buckets.min() >= 0 and buckets.max() < BUCKETS
    assert (len(buckets), int(counts.sum())) == (50, 51)  # 46 character n-grams, 3 words, 2 pairs
    assert int(buckets.sum()) == 7148592


def test_a_4096_character_message_scores_in_bounded_time(model: Model) -> None:
    text = ("my mom has stage 4 with mets in her bones and liver, the doctors say a lot of things "
            "and I do not understand half of it, " * 60)[:4096]
    model.score(text)
    started = time.perf_counter()
    for _ in range(10):
        scores = model.score(text)
    assert (time.perf_counter() - started) / 10 < 0.05
    assert 0.0 <= scores.crisis <= 1.0
    for blob in ("a" * 4096, "ab " * 100_000):  # one 4,096-letter "word"; a body far past Twilio's limit
        started = time.perf_counter()
        model.score(blob)
        assert time.perf_counter() - started < 0.05
    columns, values = vectorise(text, column_map(model.keys), model.idf)
    buckets, counts = ngram_buckets(text)
    counts = counts[column_map(model.keys)[buckets] >= 0]
    # Each occurrence of a column adds its idf squared to the divisor's square: they add up to one.
    assert np.isclose((values * values / counts).sum(), 1.0) and len(columns) == len(set(columns.tolist()))


SCORED = [
    "me quiero morir", "¿Qué es HER2+?", "my mom has stage 4 stage 4 stage 4 with mets", "😢🙏 gracias",
    "I CANT BREATHE", "hola hola hola hola", "x", "qwzzkx vbnm", "5 kms from the hospital", "ß ﬁ ÆØÅ",
    ("she had a seizure last year but now she cant wake up and her breathing is slow " * 40)[:4096],
    "a" * 4096, "ab " * 3000, "mama " + "supercalifragilisticexpialidocious" * 2 + " mama mia",
]


@pytest.mark.parametrize("text", SCORED)
def test_the_bot_scores_a_message_with_the_features_training_uses(model: Model, text: str) -> None:
    """The bot's scorer (each word's part of the scores kept between messages, word pairs and
    words too long to keep gathered apart) and training's
    (``features.vectorise``, numpy over the whole message) must read a message alike."""
    columns, values = vectorise(text, column_map(model.keys), model.idf)
    crisis = 1.0 / (1.0 + np.exp(-(values @ model.crisis_coef[columns] + model.crisis_intercept)))
    logits = values @ model.topic_coef[columns] + model.topic_intercept
    topics = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    for _ in range(2):  # the second time from the words' kept columns
        scores = model.score(text)
        assert scores.crisis == pytest.approx(crisis, abs=1e-12)
        assert list(scores.topics.values()) == pytest.approx(topics.tolist(), abs=1e-12)


def test_the_words_kept_between_messages_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    made_up = " ".join(f"word{i}x" for i in range(50))
    unbounded = Model.load().score(made_up)
    monkeypatch.setattr(model_module, "WORD_CACHE", 10)
    fresh = Model.load()
    first = fresh.score(made_up)
    assert len(fresh._words) <= 10
    assert fresh.score(made_up) == first == Model.load().score(made_up)
    # The 40 words past the table are scored as the 10 kept ones are.
    assert first.crisis == pytest.approx(unbounded.crisis, abs=1e-12)
    assert list(first.topics.values()) == pytest.approx(list(unbounded.topics.values()), abs=1e-12)
    fresh.score("other words now")  # the table starts again between messages, never during one
    assert fresh.score(made_up) == first


def test_bad_examples_files_name_file_and_line(tmp_path) -> None:
    folder = tmp_path / "es" / "examples"
    folder.mkdir(parents=True)
    bad = folder / "w9.tsv"
    bad.write_text("# set: w9\n# writer: x\ncrisis\tme quiero morir\ncrysis\tno puedo mas\n", encoding="utf-8")
    with pytest.raises(ExamplesError, match=r"es/examples/w9\.tsv:4: unknown label 'crysis'"):
        load_examples(tmp_path)
    bad.write_text("# set: w9\nfeelings tengo miedo\n", encoding="utf-8")
    with pytest.raises(ExamplesError, match=r"es/examples/w9\.tsv:2: expected 'label<TAB>message'"):
        load_examples(tmp_path)
    bad.write_text("thanks\tgracias\n", encoding="utf-8")
    with pytest.raises(ExamplesError, match=r"no '# set: NAME' header"):
        read_file(bad, "es", "es/examples/w9.tsv")


def test_examples_hash_changes_with_any_example(tmp_path) -> None:
    folder = tmp_path / "en" / "examples"
    folder.mkdir(parents=True)
    path = folder / "a.tsv"
    path.write_text("# set: a\nthanks\tthank you\n", encoding="utf-8")
    before = examples_hash(tmp_path)
    path.write_text("# set: a\nthanks\tthank you!\n", encoding="utf-8")
    assert examples_hash(tmp_path) != before


def test_every_label_in_the_examples_is_known_and_every_set_named() -> None:
    examples = load_examples()
    assert {e.lang for e in examples} == {"en", "es"}
    assert all(e.set for e in examples)


def test_every_examples_set_is_described_in_examples_md() -> None:
    """Where each set came from (writer, first contact) is recorded beside the files."""
    described = (repo_locales_dir() / "EXAMPLES.md").read_text(encoding="utf-8")
    sets = {e.set for e in load_examples()}
    undescribed = sorted(name for name in sets if f"`{name}`" not in described and f"| {name} |" not in described)
    assert undescribed == []


def test_replying_never_imports_scikit_learn() -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom mbcsms.cli import main\n"
            "from mbcsms.understanding.model import Model\nModel.load().score('me quiero morir')\n"
            "result = CliRunner().invoke(main, ['reply', 'hola'])\nassert result.exit_code == 0, result.output\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_first_contact_with_a_new_set_scores_the_model_and_the_phrase_rules(tmp_path) -> None:
    new_set = tmp_path / "w10"
    new_set.mkdir()
    (new_set / "en.tsv").write_text("# set: w10\ncrisis\tim going to kill myself tonight\n"
                                    "not_crisis\tmy back hurts a bit after the scan\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["model", "evaluate", "--on", str(new_set)])
    assert result.exit_code == 0, result.output
    assert "w10  crisis recall 100.0% (1/1)" in result.output
    assert "| rules: recall 100.0% false alarms 0.0%" in result.output


def test_threads_scoring_at_once_each_read_their_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """A threaded server (``mbcsms serve --dev``) scores messages at once: a small word table,
    started again between messages, must never hand one message's rows to another's words."""
    messages = [" ".join(f"w{i}x{j}" for j in range(5)) for i in range(60)]
    expected = [Model.load().score(message) for message in messages]
    monkeypatch.setattr(model_module, "WORD_CACHE", 8)
    shared = Model.load()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    try:
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):
                for got, want in zip(pool.map(shared.score, messages), expected, strict=True):
                    assert got.crisis == pytest.approx(want.crisis, abs=1e-12)
                    assert list(got.topics.values()) == pytest.approx(list(want.topics.values()), abs=1e-12)
    finally:
        sys.setswitchinterval(previous)


def test_training_reads_the_crisis_rules_as_the_understander_decides_with_the_model():
    """The operating points are chosen on the rules as the bot applies them: a rule of parts
    under TOGETHER_FLOOR does not fire, every other rule does."""
    from mbcsms.training.examples import Example
    from mbcsms.understanding.understander import TOGETHER_FLOOR

    texts = ["fever and chills since lunch, chemo was wednesday", "i want to kill myself",
             "what is her2", "fever and chills and me voy a matar"]
    examples = [Example("out_of_scope", text, "t", "en", f"t:{i}") for i, text in enumerate(texts)]
    readings = training.RuleReadings.of(examples)
    assert readings.crisis.tolist() == [True, True, False, True]
    assert readings.circumstantial.tolist() == [True, False, False, False]
    low = readings.given(np.full(len(texts), TOGETHER_FLOOR / 2))
    assert low.crisis.tolist() == [False, True, False, True]
    assert readings.given(np.full(len(texts), TOGETHER_FLOOR)).crisis.tolist() == [True, True, False, True]
