"""The learned classifiers: is a message a crisis, and which topic does it ask about.

Two linear models over the features of :mod:`.features`, trained by ``mbcsms model train``
(scikit-learn, at build time only) and shipped as arrays in ``weights/model.npz``. Scoring is a
gather of the message's columns from the weight arrays and a dot product: no scikit-learn, no
per-feature Python objects.

- ``crisis_probability``: the crisis model's probability. The bot treats a message as a crisis
  at ``crisis_threshold`` or above (chosen on out-of-fold scores of the training sets, for
  recall).
- ``topic_probabilities``: a distribution over ``topics`` (the topic ids, ``out_of_scope``,
  small talk, ``feelings``). Below ``topic_floor`` the best topic is not trusted: the bot falls
  back to the helpline.
- ``examples_hash``: the sha256 of the examples it was trained on (``mbcsms.training.examples``);
  a test fails when the examples in the repo no longer match it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import BITS, column_map, vectorise

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
        self.crisis_coef = arrays["crisis_coef"].astype(np.float64)
        self.crisis_intercept = float(arrays["crisis_intercept"][0])
        self.topic_coef = arrays["topic_coef"].astype(np.float64)  # (columns, topics)
        self.topic_intercept = arrays["topic_intercept"].astype(np.float64)
        self.topics: tuple[str, ...] = tuple(str(t) for t in arrays["topics"])
        self.column = column_map(self.keys)
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

    def features(self, text: str, plain: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``plain``: the message already normalised (``text.normalise``), if at hand."""
        return vectorise(text, self.column, self.idf, plain)

    def crisis_probability(self, text: str) -> float:
        columns, values = self.features(text)
        return _sigmoid(values @ self.crisis_coef[columns] + self.crisis_intercept)

    def topic_probabilities(self, text: str) -> dict[str, float]:
        columns, values = self.features(text)
        return dict(zip(self.topics, _softmax(values @ self.topic_coef[columns] + self.topic_intercept), strict=True))

    def score(self, text: str, plain: str | None = None) -> Scores:
        """Both models on one message, its features computed once."""
        columns, values = self.features(text, plain)
        crisis = _sigmoid(values @ self.crisis_coef[columns] + self.crisis_intercept)
        topics = _softmax(values @ self.topic_coef[columns] + self.topic_intercept)
        return Scores(crisis, dict(zip(self.topics, topics, strict=True)))

    def is_crisis(self, text: str) -> bool:
        return self.crisis_probability(text) >= self.crisis_threshold


def _sigmoid(z: float) -> float:
    z = float(z)
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softmax(z: np.ndarray) -> list[float]:
    # A handful of topics: plain floats are quicker than numpy's per-call cost.
    logits = z.tolist()
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [v / total for v in exps]
