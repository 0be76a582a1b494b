"""Stage 1 of understanding: a message as plain words.

Patients type fast, on small keyboards, often scared: without accents, with typos, in English or
Spanish or a mix, sometimes with an emoji and nothing else. :func:`normalise` makes every form of
a message one plain text (case, accents and punctuation gone), after reading each emoji listed in
``locales/emoji.txt`` as a word that says what it means (😢 -> ``emojifeelings``, 👍 ->
``emojithanks``), so "😢" alone is not an empty message and the model and the rules both see
it. :func:`stemmer_for` gives each language's word stems (Snowball, through PyStemmer).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import Stemmer
from babel import Locale, UnknownLocaleError

MIN_STEMMED = 5
# An emoji is read as this prefix and its label: one word the model and the rules can see.
EMOJI_WORD = "emoji"
EMOJI_FILE = "emoji.txt"
# What an emoji may stand for: small talk and feelings, never a crisis on its own.
EMOJI_LABELS = frozenset({"thanks", "ack", "goodbye", "greeting", "feelings"})

_APOSTROPHES = re.compile(r"['’‘`´]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_DIGIT = re.compile(r"[0-9]")
_LETTER_DIGIT = re.compile(r"(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])")
# "5 kms" is a distance; "kms" alone is texting slang for "kill myself".
_DISTANCE = re.compile(r"\b([0-9]+) kms?\b")


class EmojiError(ValueError):
    """A malformed line of ``emoji.txt``, with file and line."""


def read_emoji(path: Path) -> dict[str, str]:
    """``emoji.txt``: one emoji and its label a line (``😢 feelings``), ``#`` comments allowed."""
    table: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return table
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in EMOJI_LABELS:
            raise EmojiError(f"{path}:{number}: expected an emoji and one of "
                             f"{', '.join(sorted(EMOJI_LABELS))}, found {line!r}")
        # Variation selectors (❤️ is ❤ and U+FE0F) and skin tones are not part of the key.
        table[_bare(parts[0])] = parts[1]
    return table


def _bare(emoji: str) -> str:
    return "".join(ch for ch in emoji if not (0xFE00 <= ord(ch) <= 0xFE0F or 0x1F3FB <= ord(ch) <= 0x1F3FF))


def default_emoji_file() -> Path:
    from ..catalog import default_locales_dir

    return default_locales_dir() / EMOJI_FILE


@lru_cache(maxsize=1)
def emoji_table() -> dict[int, str]:
    """The shipped emoji table as a ``str.translate`` table: code point -> " emoji<label> ".
    An ASCII character is never read as an emoji (``normalise`` skips the table for ASCII text)."""
    return {ord(emoji): f" {EMOJI_WORD}{label} " for emoji, label in read_emoji(default_emoji_file()).items()
            if len(emoji) == 1 and not emoji.isascii()}


def emoji_label(word: str) -> str | None:
    """The label an emoji word stands for (``emojifeelings`` -> ``feelings``), else None."""
    if word.startswith(EMOJI_WORD) and word[len(EMOJI_WORD):] in EMOJI_LABELS:
        return word[len(EMOJI_WORD):]
    return None


def normalise(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: "¿Qué es HER2+?" -> "que es her 2";
    a listed emoji becomes a word: "gracias 🙏" -> "gracias emojithanks"."""
    if text.isascii():  # most messages: no emoji, no accent to take off
        plain = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text.translate(emoji_table()).casefold())
        plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = _NOT_WORD.sub(" ", _APOSTROPHES.sub("", plain))
    if _DIGIT.search(plain) is None:  # most messages: no "her2" to split, no "5 kms" to read
        return plain.strip()
    return _DISTANCE.sub(r"\1 kilometers", _LETTER_DIGIT.sub(" ", plain)).strip()


def tokenize(text: str) -> list[str]:
    return normalise(text).split()


def stemmer_for(lang: str) -> Callable[[str], str]:
    """The Snowball stemmer of a language (by its English name), or none for a language
    Snowball does not know: its keywords then match as typed."""
    try:
        name = (Locale.parse(lang).english_name or "").lower()
    except (ValueError, UnknownLocaleError):
        name = ""
    if name not in Stemmer.algorithms():
        return lambda word: word
    stem_word = Stemmer.Stemmer(name).stemWord

    def stem(word: str) -> str:
        # Short words stay whole: their stems collide ("como" and "comer" are both "com").
        return word if len(word) < MIN_STEMMED else stem_word(word)

    return stem
