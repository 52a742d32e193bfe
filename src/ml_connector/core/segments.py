"""SMS segment arithmetic: how many billed segments a body needs. Pure.

Twilio bills and paces per segment, so the dispatcher and the dashboard need the count before
sending. A body that fits the GSM-7 alphabet (GSM 03.38 basic set plus the extension table,
whose characters take two septets) is sent as GSM-7: 160 septets in one segment, 153 per segment
when split. Anything else is UCS-2: 70 UTF-16 code units in one segment, 67 when split (an emoji
outside the BMP is two units). A character is never split across two segments: an extension
character or a surrogate pair that does not fit the rest of a segment moves to the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

#: GSM 03.38 basic character set (the escape character 0x1B is not a printable member).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: each is sent as ESC + char, two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

#: Encoding -> (units in a single-segment message, units per segment of a split message).
SEGMENT_SIZES: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}

#: Twilio rejects a Body longer than this many characters.
MAX_BODY_CHARS = 1600


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """Encoding, billed segments, and total units (septets for GSM-7, UTF-16 units for UCS-2)."""

    encoding: Encoding
    segments: int
    units: int


def _gsm7_units(char: str) -> int:
    return 2 if char in GSM7_EXTENSION else 1


def _ucs2_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _is_gsm7(body: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body)


def _pack(costs: list[int], per_segment: int) -> int:
    """Segments needed when characters are packed in order and never split across segments."""
    segments, used = 1, 0
    for cost in costs:
        if used + cost > per_segment:
            segments, used = segments + 1, 0
        used += cost
    return segments


_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


def _single_segment(body: str) -> SegmentInfo | None:
    """The answer without a per-character loop when the body fits one segment (most SMS do).

    Set and string methods run in C; longer bodies need `_pack`, which walks the characters.
    """
    encoding: Encoding
    if GSM7_BASIC.issuperset(body):
        encoding, units = "GSM-7", len(body)
    elif _GSM7_ALL.issuperset(body):
        encoding, units = "GSM-7", len(body) + sum(map(body.count, GSM7_EXTENSION))
    else:  # UTF-16 code units: two for a character outside the BMP, as `_ucs2_units` counts
        encoding, units = "UCS-2", len(body.encode("utf-16-le", "surrogatepass")) // 2
    return SegmentInfo(encoding, 1, units) if units <= SEGMENT_SIZES[encoding][0] else None


def segment_info(body: str) -> SegmentInfo:
    """Count the segments Twilio will bill for `body` (an empty body counts as one segment)."""
    single = _single_segment(body)
    return single if single is not None else _counted(body)


def _counted(body: str) -> SegmentInfo:
    """Character by character: the definition, and the path for bodies of several segments."""
    encoding: Encoding = "GSM-7" if _is_gsm7(body) else "UCS-2"
    unit_of = _gsm7_units if encoding == "GSM-7" else _ucs2_units
    costs = [unit_of(ch) for ch in body]
    units = sum(costs)
    single, per_segment = SEGMENT_SIZES[encoding]
    segments = 1 if units <= single else _pack(costs, per_segment)
    return SegmentInfo(encoding, segments, units)


def within_twilio_limit(body: str) -> bool:
    """True when Twilio accepts the body's length (at most 1,600 characters)."""
    return len(body) <= MAX_BODY_CHARS
