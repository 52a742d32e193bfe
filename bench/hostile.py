"""Benchmark 7: what a hostile status callback costs the webhook app before it is refused.

    python bench/hostile.py --repeat 200

Calls the webhook app in-process (no sockets, a store that records nothing) with a normal signed
callback and with forged ones: many fields (7,000 fields in 48 KB, the size a default body limit
lets through), a body at the size limit with a few large fields, and oversized headers. Prints
CPU time per request (process time, the median of `--repeat` runs) and the answer each got, so
a refusal's cost can be compared with a normal callback's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from common import machine, print_table

from ml_connector.channels.signature import compute_signature
from ml_connector.core.models import StatusEvent
from ml_connector.store.port import ApplyResult
from ml_connector.web.webhooks import create_webhook_app

PUBLIC_URL = "https://connector.example.com/twilio/status"
ACCOUNT = "AC" + "1" * 32
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105


class NullStore:
    """Records nothing: the figure is the app's own cost."""

    def apply_status(self, event: StatusEvent) -> ApplyResult:
        return ApplyResult.APPLIED

    def apply_statuses(self, events: Sequence[StatusEvent]) -> list[ApplyResult]:
        return [ApplyResult.APPLIED for _ in events]


def normal_fields() -> list[tuple[str, str]]:
    sid = "SM" + "a" * 32
    return [("AccountSid", ACCOUNT), ("ApiVersion", "2010-04-01"), ("From", "+15017122661"),
            ("MessageSid", sid), ("MessageStatus", "delivered"), ("SmsSid", sid),
            ("SmsStatus", "delivered"), ("To", "+14155550123"), ("RawDlrDoneDate", "2611221030")]


def cases() -> list[tuple[str, bytes, list[tuple[bytes, bytes]]]]:
    form = [(b"content-type", b"application/x-www-form-urlencoded")]
    normal = normal_fields()
    signed = compute_signature(TOKEN, PUBLIC_URL, normal).encode()
    many = normal + [(f"f{i}", "x") for i in range(7000)]
    large = normal + [(f"Big{i}", "y" * 6000) for i in range(10)]
    forged = [(b"x-twilio-signature", b"A" * 28)]
    big_headers = [(f"x-h{i}".encode(), b"v" * 100) for i in range(400)]
    return [
        ("normal signed callback", urlencode(normal).encode(), form + [(b"x-twilio-signature", signed)]),
        ("forged, 7,000 fields", urlencode(many).encode(), form + forged),
        ("forged, 10 fields of 6 KB", urlencode(large).encode(), form + forged),
        ("forged, 40 KB of headers", urlencode(normal).encode(), form + forged + big_headers),
    ]


async def one(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    sent = False
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    scope = {"type": "http", "method": "POST", "path": "/twilio/status", "root_path": "",
             "query_string": b"", "client": ("127.0.0.1", 5000),
             "headers": [(b"content-length", str(len(body)).encode()), *headers]}
    await app(scope, receive, send)
    return int(answer["status"])


async def main(repeat: int) -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # rejections are logged, not printed
    app = create_webhook_app(store=NullStore(), auth_tokens={ACCOUNT: TOKEN},  # type: ignore[arg-type]
                             status_callback_url=PUBLIC_URL, clock=lambda: datetime.now(UTC))
    rows = []
    for name, body, headers in cases():
        timings = []
        status = 0
        for _ in range(repeat):
            started = time.process_time()
            status = await one(app, body, headers)
            timings.append(time.process_time() - started)
        rows.append((name, f"{len(body):,}", str(status), f"{statistics.median(timings) * 1e6:,.0f}"))
    print(machine())
    print_table(("request", "body bytes", "answer", "CPU µs (median)"), rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    asyncio.run(main(parser.parse_args().repeat))
