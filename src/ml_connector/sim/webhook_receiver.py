"""A customer's webhook endpoint: verifies Standard Webhooks signatures and keeps what it got.

Verification uses the `standardwebhooks` reference package (not the connector's code): a
delivery whose signature, id or timestamp does not verify gets 401 and is not kept. A repeated
`webhook-id` is answered 200 and not kept twice, as the Standard Webhooks guidance asks of
receivers. `fail_next(status, count)` plans error answers (429/5xx/4xx) before the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["Delivery", "WebhookReceiver"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    payload: dict[str, Any]


class WebhookReceiver:
    def __init__(self, secret: str, path: str = "/hooks/erp") -> None:
        self._verifier = Webhook(secret)
        self.path = path
        self.received: list[Delivery] = []
        self.duplicates = 0
        self.refused = 0
        self._planned: list[int] = []

    def fail_next(self, status: int, count: int = 1) -> None:
        self._planned.extend([status] * count)

    def create_app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            status = self._handle(scope, body)
            await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})

        return app

    def _handle(self, scope: Scope, body: bytes) -> int:
        if scope["path"] != self.path or scope["method"] != "POST":
            return 404
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            payload = self._verifier.verify(body, headers)
        except WebhookVerificationError:
            self.refused += 1
            return 401
        if self._planned:
            return self._planned.pop(0)
        ident = headers["webhook-id"]
        if any(d.webhook_id == ident for d in self.received):
            self.duplicates += 1
            return 200
        self.received.append(Delivery(ident, payload if isinstance(payload, dict) else json.loads(body)))
        return 200
