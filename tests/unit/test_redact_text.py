"""scrub_phones (and the store's mask_numbers, and the HTTP-client log filter, which use it) masks
phone numbers in free text and nothing else: URLs keep their hosts, ports and paths, SIDs and ERP
document numbers stay readable. Every digit run was once masked (`127.0.0.1:***********01`)."""

from __future__ import annotations

import logging
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.redact import MASK, mask_phone, scrub_phones
from ml_connector.logmask import MaskUrlsFilter
from ml_connector.store.scrub import mask_numbers

# -- phone numbers are masked, in every spelling Twilio, ERPs and people use -----------------------

nanp = st.builds(lambda area, exchange, line: f"{area}{exchange}{line:04d}",
                 st.integers(200, 999), st.integers(200, 999), st.integers(0, 9999))

SPELLINGS = (
    lambda n: f"+1{n}",
    lambda n: f"+1 {n[:3]} {n[3:6]} {n[6:]}",
    lambda n: f"+1-{n[:3]}-{n[3:6]}-{n[6:]}",
    lambda n: f"+1 ({n[:3]}) {n[3:6]}-{n[6:]}",
    lambda n: f"({n[:3]}) {n[3:6]}-{n[6:]}",
    lambda n: f"{n[:3]}-{n[3:6]}-{n[6:]}",
    lambda n: f"{n[:3]}.{n[3:6]}.{n[6:]}",
    lambda n: n,
    lambda n: f"1{n}",
    lambda n: f"whatsapp:+1{n}",
    lambda n: f"tel:+1{n}",
    lambda n: f"%2B1{n}",
)

before = st.sampled_from(["", "to ", "The 'To' number ", "To=", "number: ", "(", "\"", "call ", "/PhoneNumbers/"])
after = st.sampled_from(["", " is not a valid phone number.", ".", ",", ")", "'", " now", "&From=x", "\n"])


@given(nanp, st.sampled_from(SPELLINGS), before, after)
def test_every_spelling_of_a_phone_number_is_masked(number: str, spell: object, head: str, tail: str) -> None:
    spelled = spell(number)  # type: ignore[operator]
    out = scrub_phones(head + spelled + tail)
    digits = "".join(ch for ch in out if ch.isdigit())
    assert number not in digits  # the full number is gone, however it was written
    # exactly the number's span is masked, the way mask_phone masks a number on its own
    masked = "%2B" + mask_phone("+" + spelled[3:])[1:] if spelled.startswith("%2B") else mask_phone(spelled)
    assert out == head + masked + tail


@pytest.mark.parametrize("number", ["+442079460958", "+4930123456", "+33142685300", "+61293744000",
                                    "+919876543210", "+5511987654321"])
def test_international_numbers_are_masked(number: str) -> None:
    out = scrub_phones(f"The 'To' number {number} is not reachable")
    assert number not in out and MASK in out
    if len(number) > 11:  # without its "+", ten digits read as North American or not at all
        bare = scrub_phones(f"to {number[1:]} now")
        assert number[1:] not in bare and MASK in bare


# -- and nothing else --------------------------------------------------------------------------------

hexes = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
sids = st.builds(lambda prefix, body: prefix + body, st.sampled_from(["AC", "SM", "MM", "MG", "SK", "PN", "CA"]), hexes)
ipv4 = st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *(st.integers(0, 255) for _ in range(4)))
hosts = st.one_of(ipv4, st.sampled_from(["api.twilio.com", "ebs.example.com", "localhost", "[::1]", "syspro01"]))
segments = st.one_of(
    sids,
    st.sampled_from(["2010-04-01", "v1", "v2", "Accounts", "Messages.json", "webservices", "rest", "OData"]),
    st.builds(lambda y, m, d: f"{y}-{m:02d}-{d:02d}", st.integers(1990, 2099), st.integers(1, 12), st.integers(1, 28)),
    st.integers(0, 999_999).map(str),
)
urls = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}/{'/'.join(path)}{query}",
    st.sampled_from(["http", "https", "postgresql", "sqlite"]),
    hosts,
    st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
    st.lists(segments, max_size=6),
    st.one_of(st.just(""), st.builds(lambda n, s: f"?PageSize={n}&PageToken=PA{s}", st.integers(1, 1000), hexes)),
)


@given(urls, st.sampled_from(["POST {}: ResponseLost", "cannot reach {}: ConnectFailed", "{}", "GET {} -> 503"]))
def test_urls_are_left_as_they_are(url: str, template: str) -> None:
    text = template.format(url)
    assert scrub_phones(text) == text
    assert mask_numbers(text) == text


@given(sids)
def test_sids_are_left_as_they_are(sid: str) -> None:
    text = f"message {sid} failed with 30003"
    assert scrub_phones(text) == text


@given(st.one_of(
    st.integers(4_500_000_000, 4_501_999_999).map(str),   # SAP purchase orders (45000..., 45001...)
    st.integers(1_000_000_000, 1_999_999_999).map(str),   # epoch seconds, 2001-2033
    st.integers(1_000_000_000_000, 1_999_999_999_999).map(str),  # epoch milliseconds
    st.integers(10**15, 10**40).map(str),                 # longer than any phone number
    st.integers(0, 999_999_999).map(str),                 # nine digits or fewer
    st.uuids().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
))
def test_numbers_that_are_not_phones_are_left(value: str) -> None:
    text = f"record {value} rejected"
    assert scrub_phones(text) == text


@pytest.mark.parametrize("text", [
    "POST http://127.0.0.1:8080/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json: ResponseLost",
    "error 21211 at 2026-12-07 15:35:20.123456+00:00",
    "PO 4500001 for $1,234.50 on 2024-05-01",
    "127.0.0.1:3125550142",
    "version 3125550142.5",
    "listening on [::1]:8443 and 10.20.30.40:5432",
])
def test_known_non_phones(text: str) -> None:
    assert scrub_phones(text) == text


# -- whole-text properties ------------------------------------------------------------------------------


@given(st.text(alphabet=string.printable + "•€é", max_size=200))
def test_idempotent_and_digit_free_text_untouched(text: str) -> None:
    once = scrub_phones(text)
    assert scrub_phones(once) == once
    if not any(ch.isdigit() for ch in text):
        assert once == text


@given(st.text(alphabet=string.printable, max_size=200))
def test_store_masking_is_the_same_choke_point(text: str) -> None:
    assert mask_numbers(text) == scrub_phones(text)


def test_store_masking_keeps_none() -> None:
    assert mask_numbers(None) is None


# -- the HTTP-client log filter ------------------------------------------------------------------------


def log_line(*args: object) -> str:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s"', args, None)
    assert MaskUrlsFilter().filter(record)
    return record.getMessage()


def test_log_filter_masks_phones_and_secrets_in_urls_only() -> None:
    line = log_line("GET", "https://lookups.twilio.com/v2/PhoneNumbers/+13125550142?token=abc", "HTTP/1.1 200 OK")
    assert "+13125550142" not in line and "+1312•••0142" in line and "token=****" in line
    plain = log_line("GET", "http://127.0.0.1:8080/2010-04-01/Accounts/AC" + "0" * 32 + "/Messages.json",
                     "HTTP/1.1 200 OK")
    assert plain == ('HTTP Request: GET http://127.0.0.1:8080/2010-04-01/Accounts/AC' + "0" * 32
                     + '/Messages.json "HTTP/1.1 200 OK"')
    listed = log_line("GET", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B13125550142",
                      "HTTP/1.1 200 OK")
    assert "%2B13125550142" not in listed and "To=%2B1312•••0142" in listed
