"""core.redact: the one place phone numbers and secrets are masked."""

from __future__ import annotations

import pytest

from ml_connector.core.redact import is_secret_name, mask_phone, mask_secrets, mask_url, scrub_phones


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+13125550142", "+1312•••0142"),
        ("+442079460958", "+44207•••0958"),
        ("+4930123456", "+4930•••56"),          # 8-digit national number keeps less
        ("+353123456", "+353•••56"),             # 6-digit national number: last two only
        ("+35312345", "+353•••"),                # 5 digits or fewer: all hidden
        ("(312) 555-0142", "312•••0142"),       # no "+": no country code guessed
        ("12345", "•••"),
        ("whatsapp:+13125550142", "whatsapp:+1312•••0142"),
        ("  +1 312 555 0142 ", "+1312•••0142"),
        ("", ""),
        (None, ""),
        ("no digits", "•••"),
    ],
)
def test_mask_phone(raw: str | None, masked: str) -> None:
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(
    "raw", ["+13125550142", "+442079460958", "+4930123456", "3125550142", "+353123456", "+35312345"]
)
def test_mask_phone_always_hides_at_least_three_digits(raw: str) -> None:
    digits_in = sum(ch.isdigit() for ch in raw)
    digits_out = sum(ch.isdigit() for ch in mask_phone(raw))
    assert digits_in - digits_out >= 3


def test_mask_phone_is_stable() -> None:
    assert mask_phone("+13125550142") == mask_phone("+1 (312) 555-0142")


def test_mask_secrets() -> None:
    text = "login with pw=hunter2 token=abc123abc123 then hunter2 again"
    assert mask_secrets(text, ["hunter2", "abc123abc123", "", None]) == (
        "login with pw=**** token=**** then **** again"
    )


def test_mask_secrets_longest_first() -> None:
    assert mask_secrets("key=abcdef", ["abc", "abcdef"]) == "key=****"


def test_mask_secrets_with_nothing_to_mask() -> None:
    assert mask_secrets("plain", []) == "plain"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "https://erp/SYSPROWCFService/Rest/logon?CompanyId=EDU1&CompanyPassword=&Operator=ADMIN"
            "&OperatorPassword=secret",
            "https://erp/SYSPROWCFService/Rest/logon?CompanyId=EDU1&CompanyPassword=****&Operator=ADMIN"
            "&OperatorPassword=****",
        ),
        ("https://u:pw@host:8443/p?q=1", "https://u:****@host:8443/p?q=1"),
        ("https://user@host/p", "https://user@host/p"),
        ("https://h/p?api_key=K&Token=T&x=1&pwd=P&client_secret=S", "https://h/p?api_key=****&Token=****&x=1&pwd=****&client_secret=****"),
        ("https://h/p?flag&password", "https://h/p?flag&password"),   # names without values stay
        ("https://h/p?a=1#frag", "https://h/p?a=1#frag"),
        ("https://h/p", "https://h/p"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_url_never_echoes_an_unparseable_url() -> None:
    assert "secret" not in mask_url("http://[::1/?password=secret")


@pytest.mark.parametrize(
    ("name", "secret"),
    [("CompanyPassword", True), ("OPERATORPASSWORD", True), ("X-Auth-Token", True), ("Authorization", True),
     ("apiKey", True), ("Operator", False), ("CompanyId", False), ("To", False)],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("send to +13125550142 now", "send to +1312•••0142 now"),
        ("send to +1 312 555 0142.", "send to +1312•••0142."),
        ("call (312) 555-0142 or 312.555.0199", "call 312•••0142 or 312•••0199"),
        ("digits 3125550142", "digits 312•••0142"),
        ("UK +44 20 7946 0958 office", "UK +44207•••0958 office"),
        ("a SID SM0123456789abcdef0123456789abcdef stays", "a SID SM0123456789abcdef0123456789abcdef stays"),
        ("PO 4500001 for $1,234.50 on 2024-05-01", "PO 4500001 for $1,234.50 on 2024-05-01"),
        ("error 21211", "error 21211"),
    ],
)
def test_scrub_phones(text: str, expected: str) -> None:
    assert scrub_phones(text) == expected


def test_mask_url_keeps_absolute_sqlite_paths() -> None:
    from ml_connector.core.redact import mask_url

    assert mask_url("sqlite:////var/lib/mlc/store.db") == "sqlite:////var/lib/mlc/store.db"
    assert mask_url("sqlite:////var/lib/x.db?token=abc") == "sqlite:////var/lib/x.db?token=****"
