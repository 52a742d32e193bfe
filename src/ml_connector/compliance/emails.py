"""Email addresses of recipients: the one usable form of what an ERP field holds.

Deliberately modest: a single address, local part and domain, no display name, no comments.
The domain is lower-cased (DNS is case-blind); the local part is kept as written (RFC 5321
lets servers treat it case-sensitively). Anything else is a RecipientError with the reason,
which fails that one notification, as an unusable phone number does.
"""

from __future__ import annotations

import re

from ml_connector.errors import RecipientError

__all__ = ["normalise_email"]

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_email(raw: str | None, default_region: str, field: str) -> str:
    """`raw` as an address to send to; `default_region` is unused (same shape as phones.normalise)."""
    text = (raw or "").strip()
    if not text:
        raise RecipientError(field, "empty")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise RecipientError(field, "not an email address (no local part@domain)")
    domain = domain.lower().rstrip(".")
    labels = domain.split(".")
    if len(local) > 64 or not _LOCAL.match(local):
        raise RecipientError(field, "not an email address (local part)")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise RecipientError(field, "not an email address (domain)")
    return f"{local}@{domain}"
