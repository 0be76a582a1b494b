"""How hard a reply is to read, measured the way the content rules are written.

English: Flesch-Kincaid grade, at most 7. Spanish: Fernández-Huerta reading ease, at least 65.
Both as computed by textstat 0.7.3 (pyphen syllables); newer textstat releases count Spanish
syllables differently, so the version is pinned in pyproject.toml. Other languages are not
measured: there is no agreed formula for them here.

textstat keeps its language in one module-wide object (``textstat.set_lang`` changes it for every
caller and clears its caches). This module never touches that object: it keeps one private
``textstatistics`` per language, made once under a lock, each set to its own language, so calls
from any thread, in any order of languages, give the same figures as ``textstat.set_lang(lang)``
followed by the formula.
"""

from __future__ import annotations

import threading

from textstat.textstat import textstatistics

FK_GRADE_MAX = 7.0
FERNANDEZ_HUERTA_MIN = 65.0

# Our language code -> the locale textstat is told (textstat's own default for English).
_TEXTSTAT_LANG = {"en": "en_US", "es": "es"}
_instances: dict[str, textstatistics] = {}
_lock = threading.Lock()


def measured(lang: str) -> bool:
    """Whether replies in ``lang`` have a reading-level limit."""
    return _root(lang) in _TEXTSTAT_LANG


def _root(lang: str) -> str:
    return lang.replace("-", "_").split("_")[0].lower()


def _stats(lang: str) -> textstatistics:
    root = _root(lang)
    if root not in _TEXTSTAT_LANG:
        raise ValueError(f"no reading-level formula for language {lang!r}")
    with _lock:
        stats = _instances.get(root)
        if stats is None:
            stats = textstatistics()
            stats.set_lang(_TEXTSTAT_LANG[root])
            _instances[root] = stats
        return stats


def reading_level(text: str, lang: str) -> float:
    """English: Flesch-Kincaid grade (lower is easier). Spanish: Fernández-Huerta ease (higher
    is easier). Raises ValueError for a language without a formula."""
    stats = _stats(lang)
    if _root(lang) == "es":
        return float(stats.fernandez_huerta(text))
    return float(stats.flesch_kincaid_grade(text))


def within_limit(text: str, lang: str) -> bool:
    """English at grade 7 or lower, Spanish at ease 65 or higher; other languages: True (not
    measured)."""
    if not measured(lang):
        return True
    level = reading_level(text, lang)
    if _root(lang) == "es":
        return level >= FERNANDEZ_HUERTA_MIN
    return level <= FK_GRADE_MAX


def limit_text(lang: str) -> str:
    """The limit in words, for messages: "grade <= 7" / "ease >= 65"."""
    if not measured(lang):
        return "not measured"
    if _root(lang) == "es":
        return f"Fernández-Huerta ease >= {FERNANDEZ_HUERTA_MIN:g}"
    return f"Flesch-Kincaid grade <= {FK_GRADE_MAX:g}"
