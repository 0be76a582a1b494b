"""The model's view of a message: hashed n-grams of its normalised text, as TF-IDF.

:func:`word_grams` (a word's character n-grams) and :func:`word_buckets` (the words and word
pairs) give a message's feature buckets; :func:`ngram_buckets` counts them for training and
:func:`vectorise` turns them into the weighted, normalised values the linear models read.
The bot's scorer (``mbcsms.understanding.model``) builds on the same two functions, word by
word, so the features cannot drift apart (tests/test_model.py holds the two readings equal).

- The text is normalised as the keyword matcher does it
  (``mbcsms.understanding.text.normalise``: case, accents and punctuation gone), so
  "¿Qué es HER2+?" and "que es her2" are one message.
- Character 2- to 5-grams inside each word padded with a space either side (" me", "mor",
  "rir ": typos and word forms still share most of them), and word 1- and 2-grams.
- Each n-gram is hashed into one of ``2**BITS`` buckets: a character n-gram is its own bytes
  as a number, a word its ``zlib.crc32``, each then mixed by two multiplications. Stable across
  processes and machines (unlike Python's ``hash``), and linear in the length of the longest
  message (4,096 characters).
- Term frequency times the idf stored with the model, divided by the square root of the sum of
  idf squared over the message's n-gram occurrences: unit length when no n-gram repeats. A
  repeated n-gram counts once per occurrence, in the values and in the divisor alike, so a
  message's features are the sum of its words' and word pairs' parts: the bot computes each
  word's part of the score once, whatever message it stands in (``Model``). Buckets the model
  never saw in training are left out.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import numpy as np

from .text import normalise

BITS = 18
BUCKETS = 1 << BITS
CHAR_SIZES = (2, 3, 4, 5)
# A message is read up to this many characters: Twilio's longest body is 4,096.
MAX_CHARS = 8192

_M64 = (1 << 64) - 1
_BASE = 0x100000001B3  # word-pair multiplier (odd)
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_SHIFT = 64 - BITS
_WORD_SALT = 0x9E3779B97F4A7C15
_PAIR_SALT = 0x3C6EF372FE94F82A
_EMPTY = np.zeros(0, dtype=np.int64)


def bucket(value: int) -> int:
    """A 64-bit value's bucket: multiply, fold the high bits down, multiply again; the top BITS
    bits are the bucket (all modulo 2**64)."""
    value = (value * _MIX1) & _M64
    value ^= value >> 29
    return ((value * _MIX2) & _M64) >> _SHIFT


def word_grams(word: str) -> list[int]:
    """The buckets of a word's character 2- to 5-grams, the word padded with a space either
    side (repeats kept). A character n-gram is its n bytes read as a little-endian number (so
    "ab" < 2**16, and a 3-gram, whose third byte is never 0, cannot equal it). The grams never
    cross a word's edge, so a message's are the sum of its words': the bot computes each
    word's once (``Model``) and training computes them here."""
    padded = f" {word} ".encode("ascii", "replace")  # normalise leaves a-z, 0-9 and spaces
    size = len(padded)
    return [bucket(int.from_bytes(padded[start : start + n], "little"))
            for n in CHAR_SIZES for start in range(size - n + 1)]


def word_buckets(words: Sequence[str]) -> list[int]:
    """The buckets of the words and of each pair of neighbours (:func:`word_bucket`,
    :func:`pair_bucket`)."""
    crcs = [word_crc(word) for word in words]
    result = [word_bucket(crc) for crc in crcs]
    result.extend(pair_bucket(first, second) for first, second in itertools.pairwise(crcs))
    return result


def word_crc(word: str) -> int:
    """What a word's and its pairs' buckets are made from: its ``zlib.crc32``."""
    return zlib.crc32(word.encode())


def word_bucket(crc: int) -> int:
    """A word's bucket, from its :func:`word_crc`, salted."""
    return bucket((crc + _WORD_SALT) & _M64)


def pair_bucket(first: int, second: int) -> int:
    """The bucket of two neighbouring words, from their :func:`word_crc`, combined and salted."""
    return bucket((first * _BASE + second + _PAIR_SALT) & _M64)


def words_of(text: str, plain: str | None = None) -> list[str]:
    """The words the model reads: ``plain`` (the message already normalised, when the caller
    has it) or the normalised text, cut before and after normalising so the cost stays bounded
    whatever reaches us."""
    return (normalise(text[:MAX_CHARS]) if plain is None else plain)[:MAX_CHARS].split()


def ngram_buckets(text: str, plain: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The message's distinct feature buckets (sorted) and how often each occurs."""
    words = words_of(text, plain)
    if not words:
        return _EMPTY, _EMPTY
    every = [gram for word in words for gram in word_grams(word)] + word_buckets(words)
    buckets, counts = np.unique(np.array(every, dtype=np.int64), return_counts=True)
    return buckets, counts.astype(np.int64)


def vectorise(text: str, column: np.ndarray, idf: np.ndarray,
              plain: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The message as (columns, values): TF-IDF over the model's known buckets, divided by the
    root of the idf squares of every occurrence (see the module's docstring). ``column`` maps a
    bucket to its column (-1: unknown), ``idf`` a column to its inverse document frequency."""
    return tfidf(*ngram_buckets(text, plain), column, idf)


def tfidf(buckets: np.ndarray, counts: np.ndarray, column: np.ndarray,
          idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`vectorise` from the message's buckets and counts (training computes those once a
    message, then weighs them by each fold's idf)."""
    columns = column[buckets]
    known = columns >= 0
    columns = columns[known]
    weights = idf[columns]
    values = counts[known] * weights
    norm = np.sqrt(values @ weights)
    if norm > 0:
        values /= norm
    return columns, values


def column_map(keys: np.ndarray) -> np.ndarray:
    """A bucket -> column lookup for the sorted known buckets ``keys`` (-1 for the others)."""
    column = np.full(BUCKETS, -1, dtype=np.int32)
    column[keys] = np.arange(len(keys), dtype=np.int32)
    return column
