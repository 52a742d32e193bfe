"""The status-callback endpoint: authentic callbacks reach the store, nothing else does.

Requests are signed with twilio-python's RequestValidator, independent of our signature code.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from twilio.request_validator import RequestValidator

from ml_connector.core.models import StatusEvent
from ml_connector.errors import ConfigError
from ml_connector.store.port import ApplyResult
from ml_connector.web.webhooks import create_webhook_app

PUBLIC_URL = "https://connector.example.com/twilio/status"
INTERNAL_BASE = "http://127.0.0.1:8080"
ACCOUNT = "AC" + "1" * 32
OTHER_ACCOUNT = "AC" + "2" * 32
TOKEN = "token-one-0123456789abcdef"
OTHER_TOKEN = "token-two-0123456789abcdef"
TOKENS = {ACCOUNT: TOKEN, OTHER_ACCOUNT: OTHER_TOKEN}
NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"
PHONE = "+14155550123"


class FakeStore:
    """Strict stand-in for store.port.Store: only apply_status(es) may be called."""

    def __init__(self, result: ApplyResult = ApplyResult.APPLIED, error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.events: list[StatusEvent] = []

    def apply_status(self, event: StatusEvent) -> ApplyResult:
        if self.error is not None:
            raise self.error
        self.events.append(event)
        return self.result

    def apply_statuses(self, events: Sequence[StatusEvent]) -> list[ApplyResult]:
        return [self.apply_status(event) for event in events]

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the webhook app must not call Store.{name}")


class MultiDict:
    """Repeated keys in the shape twilio-python's validator reads."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(name for name, _ in self._pairs))

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


def callback_params(**overrides: str | None) -> list[tuple[str, str]]:
    """A delivered-status callback as Twilio sends it; None removes a field."""
    base: dict[str, str | None] = {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "From": "+15017122661",
        "MessageSid": "SM" + "a" * 32,
        "MessageStatus": "delivered",
        "SmsSid": "SM" + "a" * 32,
        "SmsStatus": "delivered",
        "To": PHONE,
        "RawDlrDoneDate": "2611221030",
    }
    base.update(overrides)
    return [(k, v) for k, v in base.items() if v is not None]


def sign(url: str, pairs: Sequence[tuple[str, str]], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, MultiDict(pairs)))


AppFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client() -> AsyncIterator[AppFactory]:
    """Factory: a client for an app built with defaults and overrides; closed after the test."""
    clients: list[httpx.AsyncClient] = []

    def factory(store: FakeStore, **overrides: Any) -> httpx.AsyncClient:
        options: dict[str, Any] = {
            "store": store,
            "auth_tokens": TOKENS,
            "status_callback_url": PUBLIC_URL,
            "clock": lambda: NOW,
        }
        options.update(overrides)
        app = create_webhook_app(**options)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=INTERNAL_BASE)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


async def post_signed(
    client: httpx.AsyncClient,
    pairs: Sequence[tuple[str, str]],
    *,
    path: str = "/twilio/status",
    signed_url: str = PUBLIC_URL,
    token: str = TOKEN,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    all_headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(signed_url, pairs, token)}
    all_headers.update(headers or {})
    return await client.post(path, content=urlencode(pairs).encode(), headers=all_headers)


async def metrics_text(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


# -- authentic callbacks ----------------------------------------------------------------------


async def test_valid_callback_is_stored_and_answered_200(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    pairs = callback_params(ChannelStatusMessage="Zugestellt ✓", Empty="")
    response = await post_signed(client, pairs)
    assert response.status_code == 200
    assert response.content == b""
    assert store.events == [
        StatusEvent(
            provider_id="SM" + "a" * 32,
            provider_status="delivered",
            error_code=None,
            received_at=NOW,
            raw=dict(pairs),
        )
    ]


async def test_error_code_is_parsed(make_client: AppFactory) -> None:
    store = FakeStore()
    response = await post_signed(
        make_client(store), callback_params(MessageStatus="undelivered", ErrorCode="30007")
    )
    assert response.status_code == 200
    assert [(e.provider_status, e.error_code) for e in store.events] == [("undelivered", 30007)]


async def test_second_account_uses_its_own_token(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    pairs = callback_params(AccountSid=OTHER_ACCOUNT)
    assert (await post_signed(client, pairs, token=OTHER_TOKEN)).status_code == 200
    assert (await post_signed(client, pairs, token=TOKEN)).status_code == 403
    assert len(store.events) == 1


@pytest.mark.parametrize("result", list(ApplyResult))
async def test_every_store_result_is_200(make_client: AppFactory, result: ApplyResult) -> None:
    store = FakeStore(result=result)
    client = make_client(store)
    assert (await post_signed(client, callback_params())).status_code == 200
    assert f'mlc_status_callbacks_total{{result="{result.value}"}} 1.0' in await metrics_text(client)


async def test_repeated_keys_are_authenticated_like_twilio_signs_them(make_client: AppFactory) -> None:
    store = FakeStore()
    pairs = [*callback_params(), ("MediaUrl", "https://m/2"), ("MediaUrl", "https://m/1")]
    assert (await post_signed(make_client(store), pairs)).status_code == 200
    assert store.events[0].raw["MediaUrl"] == "https://m/2"


# -- authentication -------------------------------------------------------------------------------


async def test_forged_signature_is_403_and_stores_nothing(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    pairs = callback_params()
    forged = sign(PUBLIC_URL, callback_params(MessageStatus="failed"))
    response = await client.post(
        "/twilio/status",
        content=urlencode(pairs).encode(),
        headers={"Content-Type": FORM, "X-Twilio-Signature": forged},
    )
    assert response.status_code == 403
    assert response.text == "forbidden\n"
    assert store.events == []


async def test_tampered_body_is_403(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    signature = sign(PUBLIC_URL, callback_params())
    response = await client.post(
        "/twilio/status",
        content=urlencode(callback_params(MessageStatus="failed")).encode(),
        headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
    )
    assert response.status_code == 403
    assert store.events == []


async def test_unsigned_is_403(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    response = await client.post(
        "/twilio/status", content=urlencode(callback_params()).encode(), headers={"Content-Type": FORM}
    )
    assert response.status_code == 403
    assert store.events == []
    assert 'mlc_status_callbacks_total{result="unsigned"} 1.0' in await metrics_text(client)


@pytest.mark.parametrize(
    "pairs",
    [
        callback_params(AccountSid="AC" + "9" * 32),
        callback_params(AccountSid=None),
        [*callback_params(), ("AccountSid", OTHER_ACCOUNT)],
    ],
    ids=["unknown", "missing", "two-accounts"],
)
async def test_unknown_account_is_403(make_client: AppFactory, pairs: list[tuple[str, str]]) -> None:
    store = FakeStore()
    client = make_client(store)
    response = await post_signed(client, pairs)  # correctly signed with a known token
    assert response.status_code == 403
    assert store.events == []
    assert 'mlc_status_callbacks_total{result="unknown_account"} 1.0' in await metrics_text(client)


async def test_signature_uses_public_url_not_the_proxied_request_url(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    pairs = callback_params()
    assert (await post_signed(client, pairs, signed_url=PUBLIC_URL)).status_code == 200
    internal = INTERNAL_BASE + "/twilio/status"
    assert (await post_signed(client, pairs, signed_url=internal)).status_code == 403
    assert len(store.events) == 1


@pytest.mark.parametrize(
    ("configured", "signed"),
    [
        ("https://connector.example.com/twilio/status", "https://connector.example.com:443/twilio/status"),
        ("https://connector.example.com:443/twilio/status", "https://connector.example.com/twilio/status"),
        ("https://connector.example.com:443/twilio/status", "https://connector.example.com:443/twilio/status"),
        ("https://connector.example.com:8443/twilio/status", "https://connector.example.com:8443/twilio/status"),
        ("https://connector.example.com/twilio/status", "https://connector.example.com/twilio/status/"),
        ("https://connector.example.com/twilio/status/", "https://connector.example.com/twilio/status"),
        ("https://hook:pw@connector.example.com/twilio/status", "https://connector.example.com/twilio/status"),
        ("https://connector.example.com/twilio/status#rc=3&rt=5000", "https://connector.example.com/twilio/status"),
        ("https://connector.example.com/twilio/st%20atus", "https://connector.example.com/twilio/st%20atus"),
    ],
)
async def test_public_url_variants_are_accepted(
    make_client: AppFactory, configured: str, signed: str
) -> None:
    store = FakeStore()
    client = make_client(store, status_callback_url=configured)
    path = urlsplit(configured).path
    assert (await post_signed(client, callback_params(), path=path, signed_url=signed)).status_code == 200
    assert len(store.events) == 1


@pytest.mark.parametrize("path", ["/twilio/status", "/twilio/status/"])
@pytest.mark.parametrize("configured", [PUBLIC_URL, PUBLIC_URL + "/"])
async def test_both_slash_spellings_are_served_without_redirect(
    make_client: AppFactory, path: str, configured: str
) -> None:
    store = FakeStore()
    client = make_client(store, status_callback_url=configured)
    signed = "https://connector.example.com" + path
    response = await post_signed(client, callback_params(), path=path, signed_url=signed)
    assert response.status_code == 200
    assert len(store.events) == 1


async def test_query_string_in_public_url_is_signed(make_client: AppFactory) -> None:
    store = FakeStore()
    configured = PUBLIC_URL + "?tenant=acme&x=%20y"
    client = make_client(store, status_callback_url=configured)
    path = "/twilio/status?tenant=acme&x=%20y"
    pairs = callback_params()
    assert (await post_signed(client, pairs, path=path, signed_url=configured)).status_code == 200
    assert (await post_signed(client, pairs, path=path, signed_url=PUBLIC_URL)).status_code == 403
    assert len(store.events) == 1


async def test_request_query_string_is_part_of_the_signed_url(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    pairs = callback_params()
    response = await post_signed(client, pairs, path="/twilio/status?n=1", signed_url=PUBLIC_URL + "?n=1")
    assert response.status_code == 200
    response = await post_signed(client, pairs, path="/twilio/status?n=2", signed_url=PUBLIC_URL + "?n=1")
    assert response.status_code == 403
    assert len(store.events) == 1


async def test_rejection_logs_are_masked(make_client: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    client = make_client(store)
    caplog.set_level(logging.WARNING, logger="ml_connector.web.webhooks")
    pairs = callback_params()
    response = await client.post(
        "/twilio/status",
        content=urlencode(pairs).encode(),
        headers={"Content-Type": FORM, "X-Twilio-Signature": sign(PUBLIC_URL, pairs, token="wrong")},
    )
    assert response.status_code == 403
    assert "bad_signature" in caplog.text
    for secret in (PHONE, PHONE[1:], TOKEN, OTHER_TOKEN, ACCOUNT):
        assert secret not in caplog.text


# -- body limits and decoding ---------------------------------------------------------------------


async def test_oversized_content_length_is_413(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store, max_body_bytes=512)
    pairs = callback_params(Padding="x" * 1000)
    response = await post_signed(client, pairs)
    assert response.status_code == 413
    assert store.events == []


async def test_body_at_the_limit_is_accepted(make_client: AppFactory) -> None:
    store = FakeStore()
    pairs = callback_params()
    client = make_client(store, max_body_bytes=len(urlencode(pairs)))
    assert (await post_signed(client, pairs)).status_code == 200


async def test_oversized_streamed_body_without_content_length_is_413(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store, max_body_bytes=512)
    pairs = callback_params(Padding="x" * 1000)
    body = urlencode(pairs).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    response = await client.post(
        "/twilio/status",
        content=chunks(),
        headers={"Content-Type": FORM, "X-Twilio-Signature": sign(PUBLIC_URL, pairs)},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert store.events == []


async def raw_post(
    headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes], store: FakeStore, max_body_bytes: int = 1000
) -> tuple[int, int]:
    """POST straight through ASGI, so headers are exactly as given: (status, chunks read)."""
    app = create_webhook_app(
        store=store, auth_tokens=TOKENS, status_callback_url=PUBLIC_URL, max_body_bytes=max_body_bytes
    )
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        assert read < 1000, "the app kept reading past its limit"
        return {"type": "http.request", "body": next(chunks, b""), "more_body": True}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/twilio/status", "raw_path": b"/twilio/status", "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5000), "headers": headers,
    }
    await app(scope, receive, send)
    return sent[0]["status"], read


async def test_endless_body_with_lying_content_length_is_cut_off() -> None:
    """Content-Length says 10, the stream never ends: the app stops reading past its limit."""
    store = FakeStore()
    endless = itertools.repeat(b"a" * 64)
    headers = [(b"content-type", FORM.encode()), (b"content-length", b"10")]
    status, read = await raw_post(headers, endless, store, max_body_bytes=1000)
    assert status == 413
    assert read == 1000 // 64 + 1
    assert store.events == []


async def test_non_numeric_content_length_is_400() -> None:
    store = FakeStore()
    headers = [(b"content-type", FORM.encode()), (b"content-length", b"ten")]
    status, _ = await raw_post(headers, iter([b"a=1"]), store)
    assert status == 400
    assert store.events == []


@pytest.mark.parametrize(
    "body",
    [b"MessageSid=%FF%FE", b"AccountSid=AC1&MessageSid", b"a=1&&b=2", b"\xff\xfe=1"],
    ids=["bad-utf8-escape", "field-without-equals", "empty-field", "raw-non-utf8"],
)
async def test_undecodable_body_is_400(make_client: AppFactory, body: bytes) -> None:
    store = FakeStore()
    client = make_client(store)
    response = await client.post(
        "/twilio/status", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": "x"}
    )
    assert response.status_code == 400
    assert store.events == []


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain", "multipart/form-data; boundary=x", f"{FORM}; charset=latin-1"],
)
async def test_wrong_media_type_is_415(make_client: AppFactory, content_type: str | None) -> None:
    store = FakeStore()
    client = make_client(store)
    pairs = callback_params()
    headers = {"X-Twilio-Signature": sign(PUBLIC_URL, pairs)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post("/twilio/status", content=urlencode(pairs).encode(), headers=headers)
    assert response.status_code == 415
    assert store.events == []


async def test_form_media_type_with_utf8_charset_is_accepted(make_client: AppFactory) -> None:
    store = FakeStore()
    response = await post_signed(
        make_client(store), callback_params(), headers={"Content-Type": f"{FORM}; charset=UTF-8"}
    )
    assert response.status_code == 200


# -- required fields, after authentication --------------------------------------------------------


@pytest.mark.parametrize(
    "pairs",
    [
        callback_params(MessageSid=None),
        callback_params(MessageStatus=None),
        callback_params(MessageSid=""),
        [*callback_params(), ("MessageSid", "SM" + "b" * 32)],
        callback_params(ErrorCode="3000x"),
    ],
    ids=["no-sid", "no-status", "empty-sid", "two-sids", "bad-error-code"],
)
async def test_authentic_but_incomplete_is_400(make_client: AppFactory, pairs: list[tuple[str, str]]) -> None:
    store = FakeStore()
    client = make_client(store)
    assert (await post_signed(client, pairs)).status_code == 400
    assert store.events == []
    assert 'mlc_status_callbacks_total{result="invalid_fields"} 1.0' in await metrics_text(client)


async def test_unsigned_incomplete_is_403_not_400(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    body = urlencode(callback_params(MessageSid=None)).encode()
    response = await client.post(
        "/twilio/status", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": "forged"}
    )
    assert response.status_code == 403


# -- store failures, metrics, other routes --------------------------------------------------------


async def test_store_failure_is_500(make_client: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(error=RuntimeError("database is locked"))
    client = make_client(store)
    response = await post_signed(client, callback_params())
    assert response.status_code == 500
    assert 'mlc_status_callbacks_total{result="store_error"} 1.0' in await metrics_text(client)
    assert PHONE not in caplog.text


async def test_metrics_count_callbacks_by_result(make_client: AppFactory) -> None:
    store = FakeStore()
    client = make_client(store)
    pairs = callback_params()
    await post_signed(client, pairs)
    await post_signed(client, pairs)
    await post_signed(client, pairs, token="wrong")
    text = await metrics_text(client)
    assert 'mlc_status_callbacks_total{result="applied"} 2.0' in text
    assert 'mlc_status_callbacks_total{result="bad_signature"} 1.0' in text
    assert 'mlc_status_callbacks_total{result="store_error"} 0.0' in text
    assert "mlc_status_callback_handling_seconds_count 3.0" in text


async def test_each_app_has_its_own_metrics(make_client: AppFactory) -> None:
    first, second = make_client(FakeStore()), make_client(FakeStore())
    await post_signed(first, callback_params())
    assert 'mlc_status_callbacks_total{result="applied"} 0.0' in await metrics_text(second)


async def test_healthz(make_client: AppFactory) -> None:
    response = await make_client(FakeStore()).get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"


async def test_get_on_callback_path_is_405(make_client: AppFactory) -> None:
    assert (await make_client(FakeStore()).get("/twilio/status")).status_code == 405


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"status_callback_url": "/twilio/status"}, "absolute http"),
        ({"status_callback_url": "ftp://example.com/x"}, "absolute http"),
        ({"status_callback_url": "ftp://user:s3cret@example.com/x"}, "^[^@]*$"),
        ({"status_callback_url": "https://example.com/metrics"}, "collides"),
        ({"auth_tokens": {}}, "AccountSid"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
    ],
)
def test_bad_configuration_is_refused(overrides: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {"store": FakeStore(), "auth_tokens": TOKENS, "status_callback_url": PUBLIC_URL}
    options.update(overrides)
    with pytest.raises(ConfigError, match=message):
        create_webhook_app(**options)
