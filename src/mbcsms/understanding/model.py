"""The learned classifiers: is a message a crisis, and which topic does it ask about.

Two linear models over the features of :mod:`.features`, trained by ``mbcsms model train``
(scikit-learn, at build time only) and shipped as arrays in ``weights/model.npz``. Scoring is a
count of the message's known columns, their TF-IDF values, and one gather-and-dot of both
models' weights at once: no scikit-learn. A word's character n-gram columns are computed once
and kept (``WORD_CACHE`` words): most of a message's features are its words' n-grams, and most
words of a message were seen before. On a request path that also runs Flask, SQLite and
logging, numpy's per-call cost grows several-fold as the other work leaves the CPU caches cold
(in-process requests of bench/profile_request.py: 450 us a message for the array version, 180 us
alone); this path makes three numpy calls a message where the array version made about thirty.

- ``score``: both models on one message. ``Scores.crisis`` is the crisis model's probability;
  the bot treats a message as a crisis at ``crisis_threshold`` or above (chosen on out-of-fold
  scores of the training sets, for recall). ``Scores.topics`` is a distribution over ``topics``
  (the topic ids, ``out_of_scope``, small talk, ``feelings``); below ``topic_floor`` the best
  topic is not trusted: the bot falls back to the helpline.
- ``examples_hash``: the sha256 of the examples it was trained on (``mbcsms.training.examples``);
  a test fails when the examples in the repo no longer match it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import BITS, word_buckets, word_grams, words_of

# Words whose n-gram columns are kept; past it the table starts again (a stream of made-up words
# cannot grow it without bound). A word longer than CACHED_WORD is never kept.
WORD_CACHE = 50_000
CACHED_WORD = 40
# Sublinear term frequency, 1 + log(count), for the counts a message of a few hundred words has.
_TF = [0.0] + [1.0 + math.log(n) for n in range(1, 2048)]

WEIGHTS = Path(__file__).resolve().parent / "weights" / "model.npz"
FORMAT = 1


class ModelError(ValueError):
    """A weights file that cannot be read or was made for other features."""


@dataclass(frozen=True)
class Scores:
    crisis: float  # probability
    topics: dict[str, float]  # topic -> probability

    @property
    def topic(self) -> str:
        return max(self.topics, key=self.topics.__getitem__)


class Model:
    def __init__(self, arrays: dict[str, np.ndarray], meta: dict[str, object]) -> None:
        self.meta = meta
        if meta.get("format") != FORMAT or meta.get("bits") != BITS:
            raise ModelError(f"weights of format {meta.get('format')}, {meta.get('bits')} bits; "
                             f"this code reads format {FORMAT}, {BITS} bits: run `mbcsms model train`")
        self.keys = arrays["keys"].astype(np.int64)
        self.idf = arrays["idf"].astype(np.float64)
        # Both models' weights side by side, one row a column: one gather and one product a
        # message. crisis_coef and topic_coef are views of it.
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
        self._word_columns: dict[str, tuple[int, ...]] = {}
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

    def features(self, text: str, plain: str | None = None) -> tuple[list[int], list[float]]:
        """The message's known columns and their TF-IDF values (1 + log count, times idf), not
        yet scaled to unit length. ``plain``: the message already normalised
        (``text.normalise``), if at hand."""
        words = words_of(text, plain)
        column = self.column.get
        found = [col for word in words for col in self._columns_of(word)]
        found.extend(col for b in word_buckets(words) if (col := column(b)) is not None)
        idf = self._idf
        counts = Counter(found)
        if len(found) < len(_TF):  # no count can reach the table's end: no log to take
            return list(counts), [_TF[n] * idf[col] for col, n in counts.items()]
        return list(counts), [(1.0 + math.log(n)) * idf[col] for col, n in counts.items()]

    def _columns_of(self, word: str) -> tuple[int, ...]:
        """The columns of a word's character n-grams that the model knows (repeats kept)."""
        found = self._word_columns.get(word)
        if found is None:
            column = self.column.get
            found = tuple(col for b in word_grams(word) if (col := column(b)) is not None)
            if len(word) <= CACHED_WORD:
                if len(self._word_columns) >= WORD_CACHE:
                    self._word_columns.clear()
                self._word_columns[word] = found
        return found

    def _logits(self, text: str, plain: str | None = None) -> list[float]:
        """Both models' logits: the crisis model's first, then one a topic."""
        columns, values = self.features(text, plain)
        if not columns:
            return list(self._intercepts)
        norm = math.hypot(*values)
        products = (np.fromiter(values, dtype=np.float64, count=len(values))
                    @ self._weights.take(columns, axis=0)).tolist()
        return [p / norm + b for p, b in zip(products, self._intercepts, strict=True)]

    def crisis_probability(self, text: str) -> float:
        return _sigmoid(self._logits(text)[0])

    def score(self, text: str, plain: str | None = None) -> Scores:
        """Both models on one message, its features computed once."""
        logits = self._logits(text, plain)
        return Scores(_sigmoid(logits[0]), dict(zip(self.topics, _softmax(logits[1:]), strict=True)))


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
