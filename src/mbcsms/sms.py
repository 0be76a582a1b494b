"""How many SMS segments a reply costs, and in which encoding.

Carriers bill and split by segment, and a reply over four segments is slow to arrive and easy to
lose, so every reply and every translation is measured with these rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

# GSM 03.38 basic character set, and the extension table whose characters take two septets.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentCount:
    encoding: str
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


@lru_cache(maxsize=1024)
def count_segments(text: str) -> SegmentCount:
    """Segments needed to send ``text``: 160/153 septets in GSM-7, 70/67 code units in UCS-2.

    Cached: replies come from the catalog, a few dozen texts counted on every message."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        single, multi, encoding = 160, 153, GSM7
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, UCS2
    if units == 0:
        return SegmentCount(encoding, 0, 0)
    segments = 1 if units <= single else math.ceil(units / multi)
    return SegmentCount(encoding, units, segments)
