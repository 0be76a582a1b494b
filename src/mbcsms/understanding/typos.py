"""Stage 2 of understanding: each unknown word corrected to the nearest word we know.

rapidfuzz's edit distance on candidates from a symmetric-delete index, so the cost stays flat
however large the vocabulary grows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from rapidfuzz.distance import OSA


def allowed_typos(word: str) -> int:
    """Edits tolerated in a word: none in short words, where one edit makes another word."""
    if len(word) < 4 or word.isdigit():
        return 0
    return 1 if len(word) < 8 else 2


def deletions(word: str, depth: int) -> set[str]:
    """``word`` with up to ``depth`` letters left out, in every way."""
    variants = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        variants |= frontier
    return variants


class TypoIndex:
    """Nearest known word within a small edit distance, in time independent of vocabulary size."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self._candidates: dict[str, list[str]] = defaultdict(list)
        self._longest = 0
        for word in sorted(set(vocabulary)):
            self._longest = max(self._longest, len(word))
            for variant in deletions(word, allowed_typos(word)):
                self._candidates[variant].append(word)

    def nearest(self, word: str) -> set[str]:
        """The known words nearest to ``word`` (all of them, when several are equally near)."""
        budget = allowed_typos(word)
        if budget == 0:
            return set()
        if len(word) - budget > self._longest:
            # No variant of it can be a key: without this, one long token (a pasted URL, 1,600
            # letters) costs len**3 (200 letters: 0.3 s; 1,600: minutes) and stalls the worker.
            return set()
        nearest: set[str] = set()
        best_distance = budget + 1
        for variant in deletions(word, budget):
            for candidate in self._candidates.get(variant, ()):
                limit = min(budget, allowed_typos(candidate))
                distance = OSA.distance(word, candidate, score_cutoff=limit)
                if distance > limit or distance > best_distance:
                    continue
                if distance < best_distance:
                    nearest, best_distance = set(), distance
                nearest.add(candidate)
        return nearest
