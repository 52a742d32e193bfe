"""What an inbound text asks for: opt out, opt back in, help, or none of these (a reply). Pure.

Twilio's own keyword lists (twilio.md §5): opt-out `STOP STOPALL UNSUBSCRIBE CANCEL END QUIT
REVOKE OPTOUT`, opt-in `START YES UNSTOP`, help `HELP INFO`. Matching ignores case, surrounding
whitespace and punctuation ("Stop.", "stop!!", "¡STOP!").

Opting out errs on the side of the recipient: a text whose first word is an opt-out keyword
("stop please", "STOP sending these") opts out, because texting a person who asked to stop is
the one mistake that cannot be undone. Opt-in and help need the keyword alone: "YES 4711" is a
reply to "Reply YES 4711 to approve", not a request to be texted again, and "Help me find the
PO" is a question for a person. A bare "YES" is both an opt-in (lifting a suppression if there
is one) and a reply (see `wants_reply`): the caller does both.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    REPLY = "reply"


OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def _upper_set(words: Iterable[str]) -> frozenset[str]:
    return frozenset(w.strip().upper() for w in words if w.strip())


@dataclass(frozen=True)
class Keywords:
    """The keyword lists one sender answers to (defaults: Twilio's)."""

    opt_out: frozenset[str] = field(default=OPT_OUT_WORDS)
    opt_in: frozenset[str] = field(default=OPT_IN_WORDS)
    help: frozenset[str] = field(default=HELP_WORDS)

    @classmethod
    def of(cls, *, opt_out: Iterable[str] = OPT_OUT_WORDS, opt_in: Iterable[str] = OPT_IN_WORDS,
           help: Iterable[str] = HELP_WORDS) -> Keywords:  # noqa: A002 - the keyword's own name
        made = cls(_upper_set(opt_out), _upper_set(opt_in), _upper_set(help))
        overlap = (made.opt_out & made.opt_in) | (made.opt_out & made.help) | (made.opt_in & made.help)
        if overlap:
            raise ValueError(f"a keyword can have one meaning only: {', '.join(sorted(overlap))}")
        return made


DEFAULT_KEYWORDS = Keywords()


def words(body: str) -> list[str]:
    """The text's words, upper-cased, with punctuation and symbols removed (NFKC-normalised first,
    so full-width and styled letters count as the letters they look like)."""
    text = unicodedata.normalize("NFKC", body)
    kept = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return kept.upper().split()


def classify(body: str, keywords: Keywords = DEFAULT_KEYWORDS) -> Intent:
    """The one intent of an inbound text (see the module docstring for the rules)."""
    found = words(body)
    if not found:
        return Intent.REPLY
    if found[0] in keywords.opt_out:
        return Intent.OPT_OUT
    if len(found) == 1 and found[0] in keywords.opt_in:
        return Intent.OPT_IN
    if len(found) == 1 and found[0] in keywords.help:
        return Intent.HELP
    return Intent.REPLY


def wants_reply(intent: Intent) -> bool:
    """Whether the text is also offered to reply matching: replies, and a bare opt-in word such
    as "YES", which answers a question as often as it asks to be texted again."""
    return intent in (Intent.REPLY, Intent.OPT_IN)


def from_twilio_opt_out_type(value: str | None) -> Intent | None:
    """Advanced Opt-Out's `OptOutType` parameter (STOP, START, HELP): Twilio matched the keyword
    (maybe a custom or localised one) and answered it, so we record it and send no reply."""
    return {"STOP": Intent.OPT_OUT, "START": Intent.OPT_IN, "HELP": Intent.HELP}.get((value or "").strip().upper())
