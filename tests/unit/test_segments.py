"""core.segments: encoding choice and segment counts at every boundary."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_connector.core.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_BODY_CHARS,
    SegmentInfo,
    _counted,
    segment_info,
    within_twilio_limit,
)

EMOJI = "😀"  # outside the BMP: two UTF-16 code units


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", SegmentInfo("GSM-7", 1, 0)),
        ("a", SegmentInfo("GSM-7", 1, 1)),
        # GSM-7 single segment ends at 160 septets; then 153 per segment.
        ("a" * 160, SegmentInfo("GSM-7", 1, 160)),
        ("a" * 161, SegmentInfo("GSM-7", 2, 161)),
        ("a" * 306, SegmentInfo("GSM-7", 2, 306)),
        ("a" * 307, SegmentInfo("GSM-7", 3, 307)),
        ("a" * 459, SegmentInfo("GSM-7", 3, 459)),
        ("a" * 460, SegmentInfo("GSM-7", 4, 460)),
        # Extension characters count two septets.
        ("€" * 80, SegmentInfo("GSM-7", 1, 160)),
        ("€" * 80 + "a", SegmentInfo("GSM-7", 2, 161)),
        ("a" * 159 + "€", SegmentInfo("GSM-7", 2, 161)),
        ("a" * 158 + "{", SegmentInfo("GSM-7", 1, 160)),
        # UCS-2 single segment ends at 70 code units; then 67 per segment.
        ("ж" * 70, SegmentInfo("UCS-2", 1, 70)),
        ("ж" * 71, SegmentInfo("UCS-2", 2, 71)),
        ("ж" * 134, SegmentInfo("UCS-2", 2, 134)),
        ("ж" * 135, SegmentInfo("UCS-2", 3, 135)),
        # One non-GSM character switches the whole body to UCS-2.
        ("a" * 69 + "ж", SegmentInfo("UCS-2", 1, 70)),
        ("a" * 70 + "ж", SegmentInfo("UCS-2", 2, 71)),
        # Emoji count two units.
        (EMOJI * 35, SegmentInfo("UCS-2", 1, 70)),
        (EMOJI * 35 + "a", SegmentInfo("UCS-2", 2, 71)),
        # A surrogate pair never straddles two segments: 66 + 2 does not fit in 67.
        ("a" * 66 + EMOJI + "a" * 66, SegmentInfo("UCS-2", 3, 134)),
        ("a" * 65 + EMOJI + "a" * 67, SegmentInfo("UCS-2", 2, 134)),
    ],
)
def test_segment_boundaries(body: str, expected: SegmentInfo) -> None:
    assert segment_info(body) == expected


def test_extension_char_at_split_boundary_moves_to_next_segment() -> None:
    # 152 septets, then "[" (2 septets) would make 154 > 153: it starts segment two.
    body = "a" * 152 + "[" + "a" * 152
    info = segment_info(body)
    assert info.units == 306
    # Segment 1 holds 152, segment 2 holds "[" + 151 "a" = 153, segment 3 holds the last "a".
    assert info.segments == 3


def test_extension_char_fitting_exactly_at_split_boundary() -> None:
    body = "a" * 151 + "[" + "a" * 153   # 151 + 2 = 153 exactly, then 153
    assert segment_info(body) == SegmentInfo("GSM-7", 2, 306)


def test_every_basic_character_is_one_septet_and_every_extension_two() -> None:
    assert segment_info("".join(sorted(GSM7_BASIC))).units == len(GSM7_BASIC)
    assert segment_info("".join(sorted(GSM7_EXTENSION))).units == 2 * len(GSM7_EXTENSION)
    assert len(GSM7_BASIC) == 127  # 128 code points minus the escape
    assert len(GSM7_EXTENSION) == 10


@pytest.mark.parametrize("char", ["ç", "á", "Ä", "`", "\t", "’", "“"])
def test_characters_outside_or_inside_gsm(char: str) -> None:
    expected = "GSM-7" if char in GSM7_BASIC else "UCS-2"
    assert segment_info("hello " + char).encoding == expected


def test_common_lookalikes_force_ucs2() -> None:
    # Curly quotes pasted from Word are a frequent, expensive surprise.
    assert segment_info("PO 42 isn’t approved").encoding == "UCS-2"
    assert segment_info("PO 42 isn't approved").encoding == "GSM-7"


def test_twilio_body_limit() -> None:
    assert within_twilio_limit("a" * MAX_BODY_CHARS)
    assert not within_twilio_limit("a" * (MAX_BODY_CHARS + 1))
    assert MAX_BODY_CHARS == 1600


# --------------------------------------------------------------------------- fast path = definition

_ALPHABET = st.sampled_from(sorted(GSM7_BASIC) + sorted(GSM7_EXTENSION) + ["ж", "é", "😀", "\ud800", "\x1b", "ü"])


@settings(max_examples=2000, deadline=None)
@given(body=st.one_of(st.text(_ALPHABET, max_size=200), st.text(max_size=200)))
def test_segment_info_equals_the_character_by_character_count(body: str) -> None:
    assert segment_info(body) == _counted(body)
