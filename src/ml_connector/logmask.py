"""The logging choke point for URLs: HTTP clients log request URLs, and ERP URLs carry secrets.

httpx logs every request URL at INFO; SYSPRO e.net puts passwords and the session UserId in the
query string; Twilio's Lookups put the phone number in the path and list filters put it in the
query (`To=%2B1312...`). A filter on the client loggers masks any URL argument of a log record
with core.redact.mask_url and then core.redact.scrub_phones (phone numbers only: hosts, ports,
dates and SIDs stay readable), whatever source or process made the request.

`RedactFilter` is the same choke point for whole records, on the handler of `ml-connector`'s
log output (logsetup): every message and exception text, in either format.
"""

from __future__ import annotations

import logging
import traceback

from ml_connector.core.redact import mask_secrets, mask_url, scrub_phones

#: Loggers of the HTTP clients the connector uses.
CLIENT_LOGGERS = ("httpx", "httpcore", "aiohttp.client")


class MaskUrlsFilter(logging.Filter):
    """Masks secrets and phone numbers in the URL arguments of a log record (anything whose text
    contains '://')."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                scrub_phones(mask_url(str(arg))) if not isinstance(arg, int | float) and "://" in str(arg) else arg
                for arg in record.args
            )
        return True


def install() -> None:
    """Attach the mask to every HTTP client logger, once (idempotent)."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskUrlsFilter) for f in logger.filters):
            logger.addFilter(MaskUrlsFilter())


class RedactFilter(logging.Filter):
    """Renders each record's message and exception text, then masks the configured secrets
    (core.redact.mask_secrets) and scrubs phone numbers (core.redact.scrub_phones) in them."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        return scrub_phones(mask_secrets(text, self.secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show it rather than lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        record.exc_info = None  # rendered above: no formatter renders it again unredacted
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
