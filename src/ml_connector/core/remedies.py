"""What a permanent Twilio error means and what to fix before sending again. Pure.

Replaying a notification that Twilio refused for good (an invalid number, a recipient who
opted out) only earns the same refusal, so `replay` refuses it unless forced, and says what
to change first. The codes come from core.resolution's tables: a code whose action is FAIL.
Where the fix is the recipient's number, a replay that looked the recipient up again
(`--re-resolve`) and found another number is the fix, and goes ahead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ml_connector.core.resolution import API_CODES, DELIVERY_CODES, Action

_NUMBER = "correct the phone number in the ERP, then replay with --re-resolve"

#: code -> what to fix first.
FIXES: Mapping[int, str] = {
    20404: "the resource (sender, service) no longer exists: fix the sender in the config",
    21211: _NUMBER,
    21408: "enable SMS to the destination country in the Twilio console (Messaging geo permissions)",
    21606: "use a sender (twilio.accounts.*.senders) that is an SMS-capable number of this account",
    21608: "verify the number in the Twilio console or upgrade the trial account",
    21609: "fix webhooks.public_url: Twilio refused the status callback URL",
    21610: "the recipient replied STOP: they must text START to the sender, or record another number",
    21612: "this sender cannot reach that number: use another sender or " + _NUMBER,
    21614: "record a mobile number for the recipient, then replay with --re-resolve",
    21617: "shorten the flow's template (at most 1600 characters)",
    21635: "record a mobile number instead of the landline, then replay with --re-resolve",
    30004: "the message was blocked by the carrier or the recipient: check with the recipient",
    30005: "the number is unknown to the carrier: " + _NUMBER,
    30006: "a landline or an unreachable carrier: record a mobile number, then replay with --re-resolve",
    30007: "the carrier filtered the message: review the template and the sender's registration",
    30034: "register the sender for US A2P 10DLC in the Twilio console",
    30036: "the message expired in Twilio's queue: replay it (with --force) when the sender is less busy",
}

#: Codes that a different number for the recipient fixes.
RECIPIENT_CODES = frozenset({21211, 21610, 21612, 21614, 21635, 30005, 30006})


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    code: int
    meaning: str
    fix: str
    recipient_fixes_it: bool


def permanent_failure(code: int | None) -> PermanentFailure | None:
    """The meaning and fix of `code` when Twilio refused for good; None when a retry may help."""
    if code is None:
        return None
    resolution = API_CODES.get(code) or DELIVERY_CODES.get(code)
    if resolution is None or resolution.action is not Action.FAIL:
        return None
    meaning = resolution.reason.removesuffix(f" ({code})")
    fix = FIXES.get(code, "fix the cause Twilio's page describes before sending again")
    return PermanentFailure(code, meaning, fix, code in RECIPIENT_CODES)
