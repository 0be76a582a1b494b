"""How many SMS segments a text costs: GSM-7 (160 septets alone, 153 a segment when split) unless
one character is outside it, then UCS-2 (70 UTF-16 code units alone, 67 a segment)."""

from __future__ import annotations

import pytest

from mbcsms.conversation import Reply
from mbcsms.sms import GSM7, UCS2, SegmentCount, count_segments


def test_nothing_costs_nothing():
    assert count_segments("") == SegmentCount(GSM7, 0, 0)


@pytest.mark.parametrize(("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (612, 4)])
def test_gsm7_fits_160_alone_and_153_a_segment_when_split(length, segments):
    assert count_segments("a" * length) == SegmentCount(GSM7, length, segments)


def test_the_extension_table_takes_two_septets_a_character():
    assert count_segments("€" * 80) == SegmentCount(GSM7, 160, 1)
    assert count_segments("€" * 81) == SegmentCount(GSM7, 162, 2)
    assert count_segments("{}[]~|^\\").units == 16


def test_spanish_letters_in_gsm7_keep_it_and_the_others_switch_to_ucs2():
    # é, ñ, ü, ¿ and ¡ are in GSM-7; á, í, ó, ú are not, and one halves the room.
    assert count_segments("¿Qué pasó? ¡Niño! pingüino").encoding == UCS2
    assert count_segments("¿Qué es? ¡Niño! pingüino").encoding == GSM7
    assert count_segments("Sí").encoding == UCS2


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_fits_70_alone_and_67_a_segment_when_split(length, segments):
    assert count_segments("á" * length) == SegmentCount(UCS2, length, segments)


def test_an_emoji_takes_two_ucs2_code_units():
    assert count_segments("🙂" * 35) == SegmentCount(UCS2, 70, 1)
    assert count_segments("🙂" * 36) == SegmentCount(UCS2, 72, 2)


def test_a_line_break_is_one_gsm7_character():
    assert count_segments("a\nb") == SegmentCount(GSM7, 3, 1)


def test_a_reply_reports_its_cost_and_a_silent_reply_costs_nothing():
    reply = Reply("her2", "es", "á" * 71)
    assert (reply.segments, reply.encoding) == (2, UCS2)
    assert (Reply("stop", "en", None).segments, Reply("stop", "en", None).encoding) == (0, None)
