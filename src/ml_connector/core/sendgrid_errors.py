"""What to do about a SendGrid Mail Send answer other than 202. Pure.

SendGrid's v3 API answers errors with an HTTP status and `{"errors": [{"message", "field"}]}`;
there are no numeric codes to key on, so the table is by HTTP status, then status class
(sendgrid_mail_v3.json lists 400 401 403 404 405 413 500 for POST /v3/mail/send; 429 is the
rate limit, twilio.md §10).

A bad or under-privileged API key belongs to one email sender, not to the Twilio account the
sender is filed under, so 401/403 fail the message with the reason instead of holding the
account's SMS too. A 5xx may come after SendGrid queued the mail: RECONCILE, which the email
channel turns into its at-most-once decision (channels.email).
"""

from __future__ import annotations

from collections.abc import Mapping

from ml_connector.core.resolution import Action, Resolution

__all__ = ["SENDGRID_STATUS", "SENDGRID_STATUS_CLASS", "resolve_sendgrid_status"]

SENDGRID_STATUS: Mapping[int, Resolution] = {
    400: Resolution(Action.FAIL, "SendGrid refused the request as invalid"),
    401: Resolution(Action.FAIL, "SendGrid refused the email sender's API key (401): check its api_key"),
    403: Resolution(Action.FAIL, "SendGrid forbids this send (403): the API key lacks the Mail Send "
                                 "permission or the from address is not a verified sender"),
    404: Resolution(Action.FAIL, "SendGrid answered 404: check the sender's base_url"),
    405: Resolution(Action.FAIL, "SendGrid answered 405: check the sender's base_url"),
    408: Resolution(Action.RECONCILE, "SendGrid timed out reading the request"),
    413: Resolution(Action.FAIL, "the email is larger than SendGrid accepts (413)"),
    429: Resolution(Action.RETRY_SLOW, "SendGrid rate limit (429)", 1.0),
}

SENDGRID_STATUS_CLASS: Mapping[int, Resolution] = {
    4: Resolution(Action.FAIL, "SendGrid refused the request"),
    5: Resolution(Action.RECONCILE, "SendGrid server error: the mail may have been queued"),
}

_UNEXPECTED = Resolution(Action.FAIL, "unexpected HTTP status from SendGrid")


def resolve_sendgrid_status(status: int) -> Resolution:
    """The resolution for a non-202 answer of POST /v3/mail/send."""
    return SENDGRID_STATUS.get(status) or SENDGRID_STATUS_CLASS.get(status // 100) or _UNEXPECTED
