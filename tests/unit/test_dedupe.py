"""core.dedupe: a business identity replaces the record in the idempotency key."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ml_connector.core import dedupe

FIELDS = ["Lifnr", "Xblnr", "Bukrs"]
INVOICE = {"Belnr": "5105600001", "Lifnr": "0000100000", "Xblnr": "INV-77", "Bukrs": "1000"}


def test_no_fields_keeps_the_record_key_and_version() -> None:
    assert dedupe.key_parts([], "5105600001|2024", "v1", INVOICE, {"Rbstat": "5"}) == ("5105600001|2024", "v1")


def test_the_same_document_entered_twice_has_one_identity_and_version() -> None:
    again = {**INVOICE, "Belnr": "5105600002"}
    first = dedupe.key_parts(FIELDS, "5105600001|2024", "t1#a", INVOICE, {"Rbstat": "5"})
    second = dedupe.key_parts(FIELDS, "5105600002|2024", "t2#b", again, {"Rbstat": "5"})
    assert first == second
    assert first[0].startswith(dedupe.PREFIX) and "INV-77" in first[0]


def test_two_suppliers_with_the_same_reference_differ() -> None:
    other = {**INVOICE, "Lifnr": "0000200000"}
    assert dedupe.identity(FIELDS, INVOICE) != dedupe.identity(FIELDS, other)


def test_another_company_code_differs() -> None:
    assert dedupe.identity(FIELDS, INVOICE) != dedupe.identity(FIELDS, {**INVOICE, "Bukrs": "2000"})


def test_a_later_event_of_the_same_document_is_a_new_version() -> None:
    assert dedupe.version({"Rbstat": "A"}) != dedupe.version({"Rbstat": "5"})
    assert dedupe.version({"Rbstat": "5"}) == dedupe.version({"Rbstat": "5"})


def test_an_empty_field_falls_back_to_the_record() -> None:
    for empty in ("", "   ", None):
        data = {**INVOICE, "Xblnr": empty}
        assert dedupe.identity(FIELDS, data) is None
        assert dedupe.key_parts(FIELDS, "k", "v", data, {}) == ("k", "v")
    assert dedupe.identity(FIELDS, {"Lifnr": "1", "Bukrs": "1000"}) is None  # field missing


def test_values_are_compared_as_text_without_padding_spaces() -> None:
    assert dedupe.identity(["a", "b"], {"a": " X ", "b": Decimal("10.50")}) == \
        dedupe.identity(["a", "b"], {"a": "X", "b": Decimal("10.5")})
    assert dedupe.identity(["d"], {"d": date(2024, 3, 5)}) == dedupe.identity(["d"], {"d": "2024-03-05"})


def test_field_order_and_names_are_part_of_the_identity() -> None:
    assert dedupe.identity(["a", "b"], {"a": "1", "b": "2"}) != dedupe.identity(["b", "a"], {"a": "1", "b": "2"})
    assert dedupe.identity(["a"], {"a": "x|y"}) != dedupe.identity(["a", "b"], {"a": "x", "b": "y"})
