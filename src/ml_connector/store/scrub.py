"""Mask phone numbers inside free text before it is stored in clear (errors, reasons, audit).

Provider error messages quote the number ("The 'To' number +13125550142 is not a valid phone
number"); stored as is, they would defeat encryption at rest. The masking is core.redact's, the
one choke point: phone numbers only, so URLs, ports, SIDs and ERP document numbers in a stored
error stay readable (every digit run was once masked: `127.0.0.1:***********01`).
"""

from __future__ import annotations

from ml_connector.core.redact import scrub_phones


def mask_numbers(text: str | None) -> str | None:
    """`text` with every phone number masked; None stays None."""
    if text is None:
        return None
    return scrub_phones(text)
