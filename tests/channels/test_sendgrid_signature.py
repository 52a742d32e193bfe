"""The Event Webhook signature check against SendGrid's published test vector
(sendgrid/sendgrid-python test/unit/test_eventwebhook.py, twilio.md §10)."""

from __future__ import annotations

import json

import pytest

from ml_connector.channels.sendgrid_signature import load_public_key, verify_event_signature

PUBLIC_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
              "2fNNRaINXvVpiglSI8eNEc6wEA3F+g==")
OTHER_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDt"
             "hvj+y7GjUuFDb/R1NGe1OPzpA==")
SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
OTHER_SIGNATURE = ("MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j"
                   "/0=")
TIMESTAMP = "1600112502"
PAYLOAD = (json.dumps([{
    "email": "hello@world.com", "event": "dropped", "reason": "Bounced Address",
    "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
    "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
    "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>", "timestamp": 1600112492,
}], sort_keys=True, separators=(",", ":")) + "\r\n").encode()

KEY = (load_public_key(PUBLIC_KEY),)


def test_the_published_vector_verifies() -> None:
    assert verify_event_signature(KEY, SIGNATURE, TIMESTAMP, PAYLOAD)


@pytest.mark.parametrize(
    ("keys", "signature", "timestamp", "body"),
    [
        ((load_public_key(OTHER_KEY),), SIGNATURE, TIMESTAMP, PAYLOAD),  # another account's key
        (KEY, SIGNATURE, TIMESTAMP, b"payload"),  # another body
        (KEY, SIGNATURE, TIMESTAMP, PAYLOAD.rstrip(b"\r\n")),  # the trailing CRLF is signed too
        (KEY, OTHER_SIGNATURE, TIMESTAMP, PAYLOAD),  # another signature
        (KEY, SIGNATURE, "timestamp", PAYLOAD),  # another timestamp
        (KEY, None, TIMESTAMP, PAYLOAD),  # unsigned
        (KEY, SIGNATURE, None, PAYLOAD),
        (KEY, "not base64!", TIMESTAMP, PAYLOAD),
        (KEY, "bm90IGEgREVSIHNpZ25hdHVyZQ==", TIMESTAMP, PAYLOAD),  # base64, not DER
        ((), SIGNATURE, TIMESTAMP, PAYLOAD),  # no key configured
    ],
)
def test_anything_else_is_refused(keys: tuple[object, ...], signature: str | None, timestamp: str | None,
                                  body: bytes) -> None:
    assert not verify_event_signature(keys, signature, timestamp, body)  # type: ignore[arg-type]


def test_one_of_several_configured_keys_is_enough() -> None:
    assert verify_event_signature((load_public_key(OTHER_KEY), *KEY), SIGNATURE, TIMESTAMP, PAYLOAD)


@pytest.mark.parametrize("text", ["", "not base64", "aGVsbG8=",
                                  # an Ed25519 key is not what SendGrid uses
                                  "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="])
def test_a_wrong_key_is_a_clear_error_without_the_key(text: str) -> None:
    with pytest.raises(ValueError, match="public key") as info:
        load_public_key(text)
    assert text not in str(info.value) or not text
