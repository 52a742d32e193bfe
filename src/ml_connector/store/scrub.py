"""Mask phone numbers inside free text before it is stored in clear (errors, reasons, audit).

Provider error messages quote the number ("The 'To' number +13125550142 is not a valid phone
number"); stored as is, they would defeat encryption at rest. Runs of 7+ digits (with the usual
separators) keep only their last two digits.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\+?\(?\d[\d ().\-/]{5,}\d")
_MIN_DIGITS = 7


def _mask(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = [c for c in text if c.isdigit()]
    if len(digits) < _MIN_DIGITS:
        return text
    prefix = "+" if text.startswith("+") else ""
    return prefix + "*" * (len(digits) - 2) + "".join(digits[-2:])


def mask_numbers(text: str | None) -> str | None:
    """`text` with every phone-like number masked; None stays None."""
    if text is None:
        return None
    return _NUMBER.sub(_mask, text)
