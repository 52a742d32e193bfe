"""POSTs to the callback path skip Starlette; they must get exactly what the Starlette route gives.

Each request is sent twice as raw ASGI: once as uvicorn sends it (no root_path: the direct
path) and once under a root_path, which only the Starlette router resolves. Status, headers,
body and what reached the store must be identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from ml_connector.channels.signature import url_port_variants
from ml_connector.web.webhooks import _PublicUrl, create_webhook_app
from tests.web.test_webhooks import FakeStore

PUBLIC_URL = "https://connector.example.com/twilio/status"
ACCOUNT = "AC" + "1" * 32
TOKEN = "token-one-0123456789abcdef"
NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
FORM = b"application/x-www-form-urlencoded"


def params(**overrides: str | None) -> list[tuple[str, str]]:
    base: dict[str, str | None] = {
        "AccountSid": ACCOUNT, "MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered",
        "To": "+14155550123", "From": "+15017122661", "ApiVersion": "2010-04-01",
    }
    base.update(overrides)
    return [(k, v) for k, v in base.items() if v is not None]


def signature(pairs: Sequence[tuple[str, str]], url: str = PUBLIC_URL) -> bytes:
    return str(RequestValidator(TOKEN).compute_signature(url, dict(pairs))).encode()


def request(pairs: Sequence[tuple[str, str]], *extra: tuple[bytes, bytes], signed: bool = True,
            media: bytes = FORM) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = urlencode(pairs).encode()
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode()), *extra]
    if signed:
        headers.append((b"x-twilio-signature", signature(pairs)))
    return headers, body


CASES: dict[str, tuple[list[tuple[bytes, bytes]], bytes]] = {
    "valid": request(params()),
    "error-code": request(params(MessageStatus="undelivered", ErrorCode="30007")),
    "unsigned": request(params(), signed=False),
    "forged": request(params(), (b"x-twilio-signature", b"Zm9yZ2Vk")),
    "first-signature-wins": (
        [(b"x-twilio-signature", signature(params())), *request(params(), signed=False)[0],
         (b"x-twilio-signature", b"Zm9yZ2Vk")],
        request(params())[1],
    ),
    "first-forged-signature-wins": (
        [(b"x-twilio-signature", b"Zm9yZ2Vk"), *request(params())[0]],
        request(params())[1],
    ),
    "unknown-account": request(params(AccountSid="AC" + "9" * 32)),
    "wrong-media": request(params(), media=b"application/json"),
    "too-large": request(params(Padding="x" * 2000)),
    "undecodable": ([(b"content-type", FORM), (b"x-twilio-signature", b"x")], b"MessageSid=%FF"),
    "bad-length": ([(b"content-type", FORM), (b"content-length", b"ten")], b"a=1"),
    "missing-status": request(params(MessageStatus=None)),
}


async def call(app: Any, headers: list[tuple[bytes, bytes]], body: bytes, *, root_path: str,
               method: str = "POST") -> list[dict[str, Any]]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": root_path + "/twilio/status", "raw_path": (root_path + "/twilio/status").encode(),
        "query_string": b"", "root_path": root_path, "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 5000), "headers": headers,
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def answer(sent: list[dict[str, Any]]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    start, body = sent
    return start["status"], sorted(start["headers"]), body["body"]


@pytest.mark.parametrize("case", list(CASES))
async def test_direct_and_routed_answers_are_identical(case: str) -> None:
    headers, body = CASES[case]
    answers, stored = [], []
    for root_path in ("", "/base"):
        store = FakeStore()
        app = create_webhook_app(store=store, auth_tokens={ACCOUNT: TOKEN}, status_callback_url=PUBLIC_URL,
                                 max_body_bytes=1024, clock=lambda: NOW)
        answers.append(answer(await call(app, headers, body, root_path=root_path)))
        stored.append(store.events)
    assert answers[0] == answers[1]
    assert stored[0] == stored[1]
    assert (answers[0][0] == 200) == bool(stored[0])


async def test_store_failure_is_the_same_500_both_ways() -> None:
    headers, body = CASES["valid"]
    answers = []
    for root_path in ("", "/base"):
        app = create_webhook_app(store=FakeStore(error=RuntimeError("locked")), auth_tokens={ACCOUNT: TOKEN},
                                 status_callback_url=PUBLIC_URL)
        answers.append(answer(await call(app, headers, body, root_path=root_path)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 500


async def test_other_methods_still_get_starlettes_405() -> None:
    app = create_webhook_app(store=FakeStore(), auth_tokens={ACCOUNT: TOKEN}, status_callback_url=PUBLIC_URL)
    sent = await call(app, [], b"", root_path="", method="GET")
    assert sent[0]["status"] == 405


async def test_a_client_gone_before_its_body_gets_no_answer_and_stores_nothing() -> None:
    store = FakeStore()
    app = create_webhook_app(store=store, auth_tokens={ACCOUNT: TOKEN}, status_callback_url=PUBLIC_URL)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/twilio/status", "raw_path": b"/twilio/status", "query_string": b"", "root_path": "",
        "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5000), "headers": request(params())[0],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent == []
    assert store.events == []


@pytest.mark.parametrize("configured", [
    "https://connector.example.com/twilio/status",
    "https://connector.example.com:8443/twilio/status/",
    "http://hook:pw@127.0.0.1:8080/twilio/status?tenant=a",
])
def test_signed_urls_are_every_candidate_with_and_without_port_own_spelling_first(configured: str) -> None:
    public = _PublicUrl.parse(configured)
    for query in ("", "n=1"):
        candidates = public.candidates(query)
        urls = public.signed_urls(query)
        assert set(urls) == {variant for candidate in candidates for variant in url_port_variants(candidate)}
        assert len(urls) == len(set(urls))
        if "@" not in configured:
            assert urls[0] == candidates[0]
