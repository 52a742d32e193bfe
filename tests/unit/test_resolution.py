"""The error-resolution tables, checked row by row against an independent copy of the decisions."""

from __future__ import annotations

import ast
import inspect

import pytest

from ml_connector.core import resolution
from ml_connector.core.resolution import (
    API_CODES,
    DELIVERY_CODES,
    Action,
    resolve_api_error,
    resolve_delivery_error,
    resolve_transport_error,
)

RETRY, SLOW, FAIL, RECONCILE = Action.RETRY, Action.RETRY_SLOW, Action.FAIL, Action.RECONCILE
HOLD = Action.HOLD_ACCOUNT

# The decisions, written out again (twilio.md §6, §7). A code added to the module without a row
# here fails test_every_code_has_a_row.
EXPECTED_CODES: dict[int, Action] = {
    20429: SLOW,
    21611: SLOW,
    30001: SLOW,
    30003: RETRY,
    30008: RETRY,
    30450: RETRY,
    30500: RETRY,
    **dict.fromkeys(
        [21211, 21408, 21606, 21608, 21609, 21610, 21612, 21614, 21617, 21635, 20404],
        FAIL,
    ),
    # the account, not the message: its sending is held until a probe succeeds
    **dict.fromkeys([20003, 20005, 20008], HOLD),
    **dict.fromkeys([30004, 30005, 30006, 30007, 30034, 30036], FAIL),
    63016: FAIL,  # WhatsApp free text outside the 24-hour window: a template is needed, not a retry
}

EXPECTED_DELIVERY: dict[int, Action] = {
    30001: SLOW,
    30003: RETRY,
    30008: RETRY,
    30450: RETRY,
    30500: RETRY,
    **dict.fromkeys([30004, 30005, 30006, 30007, 30034, 30036], FAIL),
    63016: FAIL,
}


def test_every_code_has_a_row() -> None:
    assert set(API_CODES) == set(EXPECTED_CODES)
    assert set(DELIVERY_CODES) == set(EXPECTED_DELIVERY)


@pytest.mark.parametrize(("code", "action"), sorted(EXPECTED_CODES.items()))
@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503])
def test_code_decides_before_status(code: int, action: Action, status: int) -> None:
    result = resolve_api_error(status, code)
    assert result.action is action
    assert str(code) in result.reason


@pytest.mark.parametrize(
    ("status", "code", "action"),
    [
        (429, None, SLOW),
        (429, 99999, SLOW),  # unknown code: the exact status decides
        (500, None, RETRY),
        (503, None, RETRY),
        (599, 12345, RETRY),
        (502, None, RECONCILE),  # a gateway may have forwarded the create
        (504, None, RECONCILE),
        (400, None, FAIL),
        (400, 21212, FAIL),  # unknown 4xx code
        (401, None, HOLD),  # credentials refused: the account is held, the message waits
        (403, None, HOLD),
        (403, 21608, FAIL),  # a known code decides
        (404, None, FAIL),
        (409, 54321, FAIL),
        (302, None, FAIL),  # not an answer Twilio gives: never retried blindly
        (200, None, FAIL),
    ],
)
def test_status_fallbacks(status: int, code: int | None, action: Action) -> None:
    assert resolve_api_error(status, code).action is action


def test_pumping_block_carries_a_minimum_delay() -> None:
    assert resolve_api_error(400, 30450).min_delay == 900.0
    assert resolve_delivery_error(30450).min_delay == 900.0
    assert resolve_api_error(429, 20429).min_delay is None


@pytest.mark.parametrize(("code", "action"), sorted(EXPECTED_DELIVERY.items()))
def test_delivery_codes(code: int, action: Action) -> None:
    assert resolve_delivery_error(code).action is action


@pytest.mark.parametrize("code", [None, 30009, 30010, 63016, 21610, 1])
def test_unknown_delivery_codes_are_final(code: int | None) -> None:
    assert resolve_delivery_error(code).action is FAIL


def test_transport_errors() -> None:
    assert resolve_transport_error("connect").action is RETRY
    assert resolve_transport_error("lost").action is RECONCILE


def test_module_is_pure() -> None:
    """core/ imports no I/O, clock or environment module."""
    tree = ast.parse(inspect.getsource(resolution))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"__future__", "collections", "dataclasses", "enum", "typing"}
