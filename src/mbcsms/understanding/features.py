"""The model's view of a message: hashed n-grams of its normalised text, as TF-IDF.

One function, :func:`ngram_buckets`, turns a message into feature buckets, and
:func:`vectorise` into the weighted, L2-normalised values the linear models read. Training
(``mbcsms model train``) and the bot call exactly these functions, so the features cannot drift
apart.

- The text is normalised as the keyword matcher does it
  (``mbcsms.understanding.text.normalise``: case, accents and punctuation gone), so
  "¿Qué es HER2+?" and "que es her2" are one message.
- Character 2- to 5-grams inside each word padded with a space either side (" me", "mor",
  "rir ": typos and word forms still share most of them), and word 1- and 2-grams.
- Each n-gram is hashed into one of ``2**BITS`` buckets: a character n-gram is its own bytes
  as a number, a word its ``zlib.crc32``, each then mixed by two multiplications, all in a few
  numpy operations over the whole message. Stable across processes and machines (unlike
  Python's ``hash``), and linear in the length of the longest message (4,096 characters).
- Sublinear term frequency (1 + log count) times the idf stored with the model, scaled to unit
  length. Buckets the model never saw in training are left out.
"""

from __future__ import annotations

import zlib

import numpy as np

from .text import normalise

BITS = 18
BUCKETS = 1 << BITS
CHAR_SIZES = (2, 3, 4, 5)
# A message is read up to this many characters: Twilio's longest body is 4,096.
MAX_CHARS = 8192

_U64 = np.uint64
_BASE = _U64(0x100000001B3)  # word-pair multiplier (odd)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_SHIFT = _U64(64 - BITS)
_WORD_SALT = _U64(0x9E3779B97F4A7C15)
_PAIR_SALT = _U64(0x3C6EF372FE94F82A)
_SPACE = 32
# A character n-gram as a number: its n bytes, read little-endian from 8 (so "ab" < 2**16 and
# a 3-gram, whose third byte is never 0, cannot equal it). One mask per size.
_MASKS = np.array([(1 << (8 * n)) - 1 for n in CHAR_SIZES], dtype=_U64)
_SPANS = np.array([n - 1 for n in CHAR_SIZES], dtype=np.int64)
_EMPTY = np.zeros(0, dtype=np.int64)


def _buckets(hashes: np.ndarray) -> np.ndarray:
    """Multiply, fold the high bits down, multiply again; the top BITS bits are the bucket."""
    h = hashes * _MIX1
    h ^= h >> _U64(29)
    h *= _MIX2
    return (h >> _SHIFT).astype(np.int64)


def ngram_buckets(text: str, plain: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The message's distinct feature buckets (sorted) and how often each occurs. ``plain``:
    the message already normalised, when the caller has it."""
    # Cut before normalising too: the cost stays bounded whatever reaches us.
    plain = (normalise(text[:MAX_CHARS]) if plain is None else plain)[:MAX_CHARS]
    if not plain:
        return _EMPTY, _EMPTY
    padded = f" {plain} ".encode("ascii", "replace")  # normalise leaves a-z, 0-9 and spaces
    size = len(padded)
    chars = np.frombuffer(padded, dtype=np.uint8)
    # Eight bytes from every position (zero bytes past the end): window i is at [i].
    eights = np.ndarray((size,), dtype="<u8", buffer=padded + bytes(8), strides=(1,))
    # A window may hold spaces only at its two ends: from i, it reaches at most the first
    # space after i.
    spaces = np.flatnonzero(chars == _SPACE)
    starts = np.arange(size)
    reach = spaces[np.minimum(np.searchsorted(spaces, starts + 1), len(spaces) - 1)]
    inside = (starts[:, None] + _SPANS) <= reach[:, None]
    inside[-1] = False  # the closing space starts no window
    grams = (eights[:, None] & _MASKS)[inside]
    with np.errstate(over="ignore"):
        words = np.fromiter((zlib.crc32(word.encode()) for word in plain.split()), dtype=_U64)
        pairs = words[:-1] * _BASE + words[1:] + _PAIR_SALT
        ordered = np.sort(_buckets(np.concatenate((grams, words + _WORD_SALT, pairs))))
    # np.unique(..., return_counts=True), without its fixed cost of ~50 us a call.
    firsts = np.empty(len(ordered), dtype=bool)
    firsts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=firsts[1:])
    first = np.flatnonzero(firsts)
    counts = np.empty(len(first), dtype=np.int64)
    np.subtract(first[1:], first[:-1], out=counts[:-1])
    counts[-1] = len(ordered) - first[-1]
    return ordered[first], counts


def vectorise(text: str, column: np.ndarray, idf: np.ndarray,
              plain: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The message as (columns, values): sublinear TF-IDF over the model's known buckets,
    L2-normalised. ``column`` maps a bucket to its column (-1: unknown), ``idf`` a column to
    its inverse document frequency."""
    return tfidf(*ngram_buckets(text, plain), column, idf)


def tfidf(buckets: np.ndarray, counts: np.ndarray, column: np.ndarray,
          idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`vectorise` from the message's buckets and counts (training computes those once a
    message, then weighs them by each fold's idf)."""
    columns = column[buckets]
    known = columns >= 0
    columns = columns[known]
    values = (1.0 + np.log(counts[known])) * idf[columns]
    norm = np.sqrt(values @ values)
    if norm > 0:
        values /= norm
    return columns, values


def column_map(keys: np.ndarray) -> np.ndarray:
    """A bucket -> column lookup for the sorted known buckets ``keys`` (-1 for the others)."""
    column = np.full(BUCKETS, -1, dtype=np.int32)
    column[keys] = np.arange(len(keys), dtype=np.int32)
    return column
