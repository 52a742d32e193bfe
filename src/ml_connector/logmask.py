"""The logging choke point for URLs: HTTP clients log request URLs, and ERP URLs carry secrets.

httpx logs every request URL at INFO; SYSPRO e.net puts passwords and the session UserId in the
query string; Twilio's Lookups put the phone number in the path and list filters put it in the
query (`To=%2B1312...`). A filter on the client loggers masks any URL argument of a log record
with core.redact.mask_url and then core.redact.scrub_phones (phone numbers only: hosts, ports,
dates and SIDs stay readable), whatever source or process made the request.
"""

from __future__ import annotations

import logging

from ml_connector.core.redact import mask_url, scrub_phones

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
