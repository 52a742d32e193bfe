"""Hostile or odd status callbacks are refused cheaply and never crash the endpoint.

Cheap means before decoding, sorting or hashing: the tests prove the order by counting the
signature computations a refused request causes (none), not by timing it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from ml_connector.web import webhooks
from tests.web import test_webhooks as base
from tests.web.test_webhooks import (
    FORM,
    PUBLIC_URL,
    AppFactory,
    FakeStore,
    callback_params,
    post_signed,
)

make_client = base.make_client  # the same client factory fixture


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the webhook app computes a signature over."""
    seen: list[str] = []
    original = webhooks.compute_signature

    def counting(token: str, url: str, params: webhooks.Sequence[tuple[str, str]] = ()) -> str:
        seen.append(url)
        return original(token, url, params)

    monkeypatch.setattr(webhooks, "compute_signature", counting)
    return seen


async def test_thousands_of_fields_are_413_before_any_signature_is_computed(
    make_client: AppFactory, signatures: list[str]
) -> None:
    store = FakeStore()
    pairs = callback_params() + [(f"f{i}", "x") for i in range(7000)]
    body = urlencode(pairs).encode()
    assert len(body) < 65536  # under the default body limit: the field count is what refuses it
    response = await make_client(store).post(
        "/twilio/status", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": "A" * 28})
    assert response.status_code == 413
    assert response.text == "too many form fields\n"
    assert signatures == []
    assert store.events == []


async def test_field_limit_is_inclusive_and_configurable(make_client: AppFactory) -> None:
    pairs = callback_params() + [(f"Extra{i}", "x") for i in range(11)]  # 20 fields
    store = FakeStore()
    assert (await post_signed(make_client(store, max_fields=20), pairs)).status_code == 200
    assert (await post_signed(make_client(store, max_fields=19), pairs)).status_code == 413
    assert len(store.events) == 1


async def test_a_generous_real_callback_passes_the_default_limits(make_client: AppFactory) -> None:
    """An inbound MMS-sized callback (about 60 fields) is nowhere near the limits."""
    pairs = callback_params() + [(f"MediaUrl{i}", "https://api.twilio.com/x") for i in range(50)]
    store = FakeStore()
    assert (await post_signed(make_client(store), pairs)).status_code == 200
    assert len(store.events) == 1


async def test_oversized_headers_are_431_before_any_signature_is_computed(
    make_client: AppFactory, signatures: list[str]
) -> None:
    store = FakeStore()
    pairs = callback_params()
    response = await post_signed(make_client(store), pairs, headers={"X-Padding": "p" * 20000})
    assert response.status_code == 431
    assert signatures == []
    assert store.events == []


async def test_too_many_headers_are_431(make_client: AppFactory) -> None:
    store = FakeStore()
    extra = {f"X-H{i}": "v" for i in range(150)}
    response = await post_signed(make_client(store), callback_params(), headers=extra)
    assert response.status_code == 431
    assert store.events == []


async def test_header_limit_is_configurable(make_client: AppFactory) -> None:
    store = FakeStore()
    pairs = callback_params()
    client = make_client(store, max_header_bytes=4096)
    assert (await post_signed(client, pairs, headers={"X-Padding": "p" * 1000})).status_code == 200
    assert (await post_signed(client, pairs, headers={"X-Padding": "p" * 5000})).status_code == 431


@pytest.mark.parametrize("code", ["1" * 40, "9" * 10, "1" + "0" * 9])
async def test_out_of_range_error_code_is_400(make_client: AppFactory, code: str) -> None:
    store = FakeStore()
    response = await post_signed(make_client(store), callback_params(MessageStatus="failed", ErrorCode=code))
    assert response.status_code == 400
    assert store.events == []


@pytest.mark.parametrize(("code", "parsed"), [("999999999", 999_999_999), ("0030007", 30007),
                                               ("0" * 5000, 0)])
async def test_error_codes_within_nine_digits_are_kept(make_client: AppFactory, code: str, parsed: int) -> None:
    store = FakeStore()
    response = await post_signed(make_client(store), callback_params(MessageStatus="failed", ErrorCode=code))
    assert response.status_code == 200
    assert [e.error_code for e in store.events] == [parsed]


async def test_limits_must_be_positive() -> None:
    with pytest.raises(webhooks.ConfigError):
        webhooks.create_webhook_app(store=FakeStore(), auth_tokens={"AC": "t"},  # type: ignore[arg-type]
                                    status_callback_url=PUBLIC_URL, max_fields=0)

