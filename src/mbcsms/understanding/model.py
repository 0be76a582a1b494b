"""The learned classifiers: is a message a crisis, and which topic does it ask about.

Two linear models over the features of :mod:`.features`, trained by ``mbcsms model train``
(scikit-learn, at build time only) and shipped as arrays in ``weights/model.npz``. No
scikit-learn at run time: the features are a sum of each word's and word pair's parts
(``features``), so a word or a word pair met before (``WORD_CACHE`` of each are kept) brings its
row of both models' scores, worked out once with numpy; a message adds up its words' and pairs'
rows in plain Python. Nothing is counted a message and numpy is not called for a message met
before: on a request path that also runs Flask, SQLite and logging, what matters is how much
memory a message touches, and numpy's code and tables for three calls were about a sixth of a
request's cache misses (cachegrind with a 1 MiB last-level cache: README, Performance), worth
more than the few hundred additions they did in C.

- ``score``: both models on one message. ``Scores.crisis`` is the crisis model's probability;
  the bot treats a message as a crisis at ``crisis_threshold`` or above (chosen on out-of-fold
  scores of the training sets, for recall). ``Scores.topics`` is a distribution over ``topics``
  (the topic ids, ``out_of_scope``, small talk, ``feelings``); below ``topic_floor`` the best
  topic is not trusted: the bot falls back to the helpline.
- ``examples_hash``: the sha256 of the examples it was trained on (``mbcsms.training.examples``);
  a test fails when the examples in the repo no longer match it.
"""

from __future__ import annotations

import itertools
import json
import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .features import BITS, pair_bucket, word_bucket, word_crc, word_grams, words_of

# Words kept with their row of the score (one float for each of both models' outputs), and as
# many word pairs; past it a table starts again (a stream of made-up words cannot grow it without
# bound). A word longer than CACHED_WORD is never kept.
WORD_CACHE = 50_000
CACHED_WORD = 40

WEIGHTS = Path(__file__).resolve().parent / "weights" / "model.npz"
# 2: term frequency is the count (format 1: 1 + log count) and the divisor sums every occurrence.
FORMAT = 2


class ModelError(ValueError):
    """A weights file that cannot be read or was made for other features."""


@dataclass(frozen=True)
class Scores:
    crisis: float  # probability
    topics: dict[str, float]  # topic -> probability

    @property
    def topic(self) -> str:
        return max(self.topics, key=self.topics.__getitem__)


class _Word(NamedTuple):
    # Its row: one float a model output, crisis first, then a topic each.
    row: array[float] | None  # idf * weights summed over its known columns (None: it has none)
    squares: float  # sum of idf ** 2 over its columns
    crc: int  # features.word_crc, for its pairs


class _Pair(NamedTuple):
    row: array[float]  # idf * weights of the pair's column
    square: float  # its idf ** 2


class Model:
    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.meta = meta
        if meta.get("format") != FORMAT or meta.get("bits") != BITS:
            raise ModelError(f"weights of format {meta.get('format')}, {meta.get('bits')} bits; "
                             f"this code reads format {FORMAT}, {BITS} bits: run `mbcsms model train`")
        self.keys = arrays["keys"].astype(np.int64)
        self.idf = arrays["idf"].astype(np.float64)
        # Both models' weights side by side, one row a column: a word's or a pair's row is one
        # gather and one product. crisis_coef and topic_coef are views of it.
        self._weights = np.column_stack((arrays["crisis_coef"], arrays["topic_coef"])).astype(np.float64)
        self.crisis_coef = self._weights[:, 0]
        self.topic_coef = self._weights[:, 1:]  # (columns, topics)
        self.crisis_intercept = float(arrays["crisis_intercept"][0])
        self.topic_intercept = arrays["topic_intercept"].astype(np.float64)
        self.topics: tuple[str, ...] = tuple(str(t) for t in arrays["topics"])
        # The scorer's tables, as plain Python where it reads them one feature at a time.
        self.column: dict[int, int] = {int(key): i for i, key in enumerate(self.keys.tolist())}
        self._idf: list[float] = self.idf.tolist()
        self._intercepts: list[float] = [self.crisis_intercept, *self.topic_intercept.tolist()]
        self._words: dict[str, _Word] = {}
        # A word pair by its words' crcs (``first << 32 | second``); None: no column of the model.
        self._pairs: dict[int, _Pair | None] = {}
        self.crisis_threshold = float(meta["crisis_threshold"])  # type: ignore[arg-type]
        self.topic_floor = float(meta["topic_floor"])  # type: ignore[arg-type]
        # The understander's decision points (chosen out of fold, like the two above): at or
        # above topic_high the model's topic beats the keyword rules'; at or above feeling_bar
        # a message expresses feelings whatever its topic.
        self.topic_high = float(meta.get("topic_high", 1.01))  # type: ignore[arg-type]
        self.feeling_bar = float(meta.get("feeling_bar", 1.01))  # type: ignore[arg-type]
        self.examples_hash = str(meta["examples_hash"])
        self.versions: dict[str, str] = dict(meta.get("versions", {}))  # type: ignore[call-overload]

    @classmethod
    def load(cls, path: Path | str | None = None) -> Model:
        path = Path(path) if path else WEIGHTS
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as error:
            raise ModelError(f"cannot read model weights {path}: {error}") from None
        try:
            meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
        except (KeyError, ValueError) as error:
            raise ModelError(f"{path}: no readable metadata ({error})") from None
        return cls(arrays, meta)

    @classmethod
    def untrained(cls, topics: tuple[str, ...]) -> Model:
        """A model that knows no column (every message scores its intercepts, zero), for readings
        by the rules alone: training reads its examples so before any weights exist, or while the
        shipped ones are of another format."""
        empty = np.zeros(0)
        arrays = {"keys": empty, "idf": empty, "crisis_coef": empty, "crisis_intercept": np.zeros(1),
                  "topic_coef": np.zeros((0, len(topics))), "topic_intercept": np.zeros(len(topics)),
                  "topics": np.array(topics)}
        return cls(arrays, {"format": FORMAT, "bits": BITS, "crisis_threshold": 1.0, "topic_floor": 1.0,
                            "examples_hash": ""})

    def _word(self, word: str) -> _Word:
        """A word not kept yet: the part of the score of its known columns (its character
        n-grams' and its own, repeats kept); kept, while there is room, for the next message."""
        column, idf = self.column.get, self._idf
        crc = word_crc(word)
        columns = [col for b in word_grams(word) if (col := column(b)) is not None]
        if (own := column(word_bucket(crc))) is not None:
            columns.append(own)
        squares = math.fsum(idf[col] * idf[col] for col in columns)
        row = array("d", (self.idf.take(columns) @ self._weights.take(columns, axis=0)).tolist()) if columns else None
        known = _Word(row, squares, crc)
        if len(word) <= CACHED_WORD and len(self._words) < WORD_CACHE:
            self._words[word] = known
        return known

    def _pair(self, key: int, first: int, second: int) -> _Pair | None:
        """A word pair not kept yet (``key`` is its words' crcs together): its column's part."""
        col = self.column.get(pair_bucket(first, second))
        pair = None if col is None else _Pair(array("d", (self._weights[col] * self._idf[col]).tolist()),
                                              self._idf[col] * self._idf[col])
        if len(self._pairs) < WORD_CACHE:
            self._pairs[key] = pair
        return pair

    def _logits(self, text: str, plain: str | None = None) -> list[float]:
        """Both models' logits: the crisis model's first, then one a topic. ``plain``: the
        message already normalised (``text.normalise``), if at hand.

        The features are ``features.vectorise``'s: each occurrence of a column adds its idf to
        the column's value and its idf squared to the divisor's square, so the rows and squares
        of the message's words and word pairs add up to its scores before the divisor.
        """
        typed = words_of(text, plain)
        # Started again only between messages, so a message never pays twice for its words.
        # Each entry holds its own row: threads scoring at once (``serve --dev``) share nothing
        # a clear could take from under them.
        if len(self._words) + len(typed) > WORD_CACHE:
            self._words.clear()
        if len(self._pairs) + len(typed) > WORD_CACHE:
            self._pairs.clear()
        known, kept = self._words.get, self._pairs.get
        words = [known(word) or self._word(word) for word in typed]
        rows = [word.row for word in words if word.row is not None]
        squares = [word.squares for word in words]
        for first, second in itertools.pairwise([word.crc for word in words]):
            key = first << 32 | second
            pair = kept(key, _UNSEEN)
            if pair is _UNSEEN:
                pair = self._pair(key, first, second)
            if pair is not None:
                rows.append(pair.row)
                squares.append(pair.square)
        total = math.fsum(squares)
        if total == 0.0:  # no column the model knows
            return list(self._intercepts)
        norm = math.sqrt(total)
        # Column by column over the rows: a message's few dozen rows in C loops, with no call
        # into numpy.
        return [p / norm + b for p, b in zip(map(sum, zip(*rows, strict=True)), self._intercepts, strict=True)]

    def crisis_probability(self, text: str) -> float:
        return _sigmoid(self._logits(text)[0])

    def score(self, text: str, plain: str | None = None) -> Scores:
        """Both models on one message, its features computed once."""
        logits = self._logits(text, plain)
        return Scores(_sigmoid(logits[0]), dict(zip(self.topics, _softmax(logits[1:]), strict=True)))


# A pair not looked up yet (None is a pair the model has no column for).
_UNSEEN = _Pair(array("d"), 0.0)


def _sigmoid(z: float) -> float:
    z = float(z)
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softmax(logits: list[float]) -> list[float]:
    # A handful of topics: plain floats are quicker than numpy's per-call cost.
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [v / total for v in exps]
