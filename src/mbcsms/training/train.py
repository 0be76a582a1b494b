"""Training the crisis and topic models from the examples (scikit-learn, build time only).

- Features: :mod:`mbcsms.understanding.features`, the bot's own code. A bucket becomes a column
  when at least ``MIN_DF`` training messages have it; its idf is scikit-learn's smooth idf.
- Crisis: logistic regression, crisis against everything else, on every example.
- Topics: multinomial logistic regression on the examples that are not crises and have a topic
  label (``not_crisis`` rows train the crisis model only).
- Operating points from out-of-fold scores, each set scored by models trained on the other
  sets (the set, not the file, is held out): ``crisis_threshold`` is the highest threshold that
  keeps out-of-fold recall at ``TARGET_RECALL`` or more; ``topic_floor`` the probability below
  which answering the fallback (``out_of_scope``) is right more often than the best topic.

Deterministic: examples in file order, lbfgs with fixed settings, one BLAS thread.
"""

from __future__ import annotations

import io
import json
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..understanding.features import BITS, column_map, ngram_buckets, tfidf
from ..understanding.model import FORMAT, WEIGHTS, Model
from .examples import OUT_OF_SCOPE, TOPIC_LABELS, Example, examples_hash, load_examples

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

MIN_DF = 2
CRISIS_C = 20.0
TOPIC_C = 20.0
TARGET_RECALL = 0.98
MAX_ITER = 5000
TOL = 1e-6
# The topic model has a weight per topic and column: a tighter tolerance costs minutes a fit.
TOPIC_TOL = 1e-4


@dataclass
class Encoded:
    """Each example's buckets and counts, computed once."""

    examples: list[Example]
    buckets: list[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, examples: Sequence[Example]) -> Encoded:
        return cls(list(examples), [ngram_buckets(e.text) for e in examples])


@dataclass
class Fitted:
    keys: np.ndarray
    idf: np.ndarray
    crisis_coef: np.ndarray
    crisis_intercept: float
    topics: tuple[str, ...]
    topic_coef: np.ndarray  # (columns, topics)
    topic_intercept: np.ndarray

    def matrix(self, encoded: Encoded, rows: Sequence[int] | None = None) -> csr_matrix:
        return _matrix(encoded, range(len(encoded.examples)) if rows is None else rows,
                       column_map(self.keys), self.idf)

    def crisis_scores(self, x: csr_matrix) -> np.ndarray:
        scores: np.ndarray = 1.0 / (1.0 + np.exp(-(x @ self.crisis_coef + self.crisis_intercept)))
        return scores

    def topic_probabilities(self, x: csr_matrix) -> np.ndarray:
        z = x @ self.topic_coef + self.topic_intercept
        z = np.exp(z - z.max(axis=1, keepdims=True))
        probabilities: np.ndarray = z / z.sum(axis=1, keepdims=True)
        return probabilities


def _matrix(encoded: Encoded, rows: Sequence[int], column: np.ndarray, idf: np.ndarray) -> csr_matrix:
    from scipy.sparse import csr_matrix

    indptr, indices, data = [0], [], []
    for row in rows:
        columns, values = tfidf(*encoded.buckets[row], column, idf)
        order = np.argsort(columns)
        indices.append(columns[order])
        data.append(values[order])
        indptr.append(indptr[-1] + len(columns))
    return csr_matrix(
        (np.concatenate(data) if data else np.zeros(0), np.concatenate(indices) if indices else np.zeros(0, int),
         np.array(indptr)), shape=(len(indptr) - 1, len(idf)))


def _vocabulary(encoded: Encoded, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Known buckets (sorted) and their smooth idf, from the training rows."""
    present = np.concatenate([encoded.buckets[row][0] for row in rows])
    buckets, df = np.unique(present, return_counts=True)
    keep = df >= MIN_DF
    keys, df = buckets[keep], df[keep]
    idf = np.log((1.0 + len(rows)) / (1.0 + df)) + 1.0
    return keys, idf


def fit(encoded: Encoded, rows: Sequence[int] | None = None) -> Fitted:
    """Both models on the given rows (default: all)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    rows = list(range(len(encoded.examples))) if rows is None else list(rows)
    keys, idf = _vocabulary(encoded, rows)
    column = column_map(keys)
    x = _matrix(encoded, rows, column, idf)
    examples = [encoded.examples[row] for row in rows]
    is_crisis = np.array([e.crisis for e in examples], dtype=int)
    with threadpool_limits(1):
        crisis = LogisticRegression(C=CRISIS_C, class_weight="balanced", solver="lbfgs",
                                    max_iter=MAX_ITER, tol=TOL).fit(x, is_crisis)
        topical = [i for i, e in enumerate(examples) if not e.crisis and e.topic]
        labels = [examples[i].topic for i in topical]
        topics = tuple(t for t in TOPIC_LABELS if t in set(labels))
        model = LogisticRegression(C=TOPIC_C, solver="lbfgs", max_iter=MAX_ITER, tol=TOPIC_TOL).fit(x[topical], labels)
    order = [list(model.classes_).index(t) for t in topics]
    return Fitted(
        keys=keys, idf=idf, crisis_coef=crisis.coef_[0].copy(), crisis_intercept=float(crisis.intercept_[0]),
        topics=topics, topic_coef=model.coef_[order].T.copy(), topic_intercept=model.intercept_[order].copy())


@dataclass
class OutOfFold:
    """Every example scored by the models trained without its set."""

    examples: list[Example]
    crisis: np.ndarray  # probability a row
    topic: list[str]  # best topic a row
    topic_confidence: np.ndarray


def out_of_fold(encoded: Encoded, progress: Callable[[str], None] | None = None) -> OutOfFold:
    examples = encoded.examples
    crisis = np.zeros(len(examples))
    topic: list[str] = [""] * len(examples)
    confidence = np.zeros(len(examples))
    for name in sorted({e.set for e in examples}):
        held = [i for i, e in enumerate(examples) if e.set == name]
        train = [i for i, e in enumerate(examples) if e.set != name]
        if progress:
            progress(f"  holding out {name} ({len(held)} examples)")
        fitted = fit(encoded, train)
        x = fitted.matrix(encoded, held)
        crisis[held] = fitted.crisis_scores(x)
        probabilities = fitted.topic_probabilities(x)
        best = probabilities.argmax(axis=1)
        for row, b, p in zip(held, best, probabilities[np.arange(len(held)), best], strict=True):
            topic[row], confidence[row] = fitted.topics[b], p
    return OutOfFold(examples, crisis, topic, confidence)


def crisis_threshold(scores: np.ndarray, is_crisis: np.ndarray, recall: float = TARGET_RECALL) -> float:
    """The highest threshold whose recall on these scores is at least ``recall``."""
    positives = np.sort(scores[is_crisis])[::-1]
    if not len(positives):
        return 0.5
    needed = max(1, math.ceil(recall * len(positives)))
    return float(positives[needed - 1])


def topic_floor(confidence: np.ndarray, predicted: Sequence[str], truth: Sequence[str]) -> float:
    """The floor (below it: the fallback) that gets the most topics right; the lowest such."""
    right = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    fallback_right = np.array([t == OUT_OF_SCOPE for t in truth])
    best_floor, best = 0.0, int(right.sum())
    for floor in np.round(np.arange(0.05, 0.96, 0.01), 2):
        score = int(np.where(confidence >= floor, right, fallback_right).sum())
        if score > best:
            best_floor, best = float(floor), score
    return best_floor


def operating_points(oof: OutOfFold) -> tuple[float, float]:
    is_crisis = np.array([e.crisis for e in oof.examples])
    topical = [i for i, e in enumerate(oof.examples) if not e.crisis and e.topic]
    floor = topic_floor(oof.topic_confidence[topical], [oof.topic[i] for i in topical],
                        [oof.examples[i].topic for i in topical])  # type: ignore[misc]
    return crisis_threshold(oof.crisis, is_crisis), floor


def versions() -> dict[str, str]:
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__}


def train(locales: Path | None = None, progress: Callable[[str], None] | None = None
          ) -> tuple[Fitted, dict[str, object], OutOfFold]:
    """Train on every example under ``locales``: the fitted models, their metadata and the
    out-of-fold scores the operating points were chosen on."""
    examples = load_examples(locales)
    encoded = Encoded.of(examples)
    oof = out_of_fold(encoded, progress)
    threshold, floor = operating_points(oof)
    if progress:
        progress("  final fit on every example")
    fitted = fit(encoded)
    meta: dict[str, object] = {
        "format": FORMAT, "bits": BITS, "min_df": MIN_DF, "crisis_c": CRISIS_C, "topic_c": TOPIC_C,
        "tol": TOL, "topic_tol": TOPIC_TOL,
        "crisis_threshold": round(threshold, 6), "topic_floor": floor, "target_recall": TARGET_RECALL,
        "examples_hash": examples_hash(locales), "examples": len(examples),
        "sets": sorted({e.set for e in examples}), "versions": versions(),
    }
    return fitted, meta, oof


def save(fitted: Fitted, meta: dict[str, object], path: Path | None = None) -> Path:
    """Write the weights (compressed npz; topic weights as float16, the crisis model float32)."""
    path = path or WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        keys=fitted.keys.astype(np.uint32), idf=fitted.idf.astype(np.float32),
        crisis_coef=fitted.crisis_coef.astype(np.float32),
        crisis_intercept=np.array([fitted.crisis_intercept], dtype=np.float64),
        topics=np.array(fitted.topics), topic_coef=fitted.topic_coef.astype(np.float16),
        topic_intercept=fitted.topic_intercept.astype(np.float64),
    )
    path.write_bytes(buffer.getvalue())
    return path


def load_fitted(path: Path | None = None) -> Model:
    return Model.load(path)
