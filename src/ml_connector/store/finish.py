"""What finishing an attempt does to its notification, per outcome: a table of small pure rules.

The SQL layer applies the returned plan; keeping the decision here makes each outcome readable
and testable without a database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ml_connector.core.lifecycle import from_provider
from ml_connector.core.models import Status
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.scrub import mask_numbers

#: Provider statuses after which the notification's error fields describe the failure.
_FAILURES = frozenset({Status.FAILED, Status.UNDELIVERED})


@dataclass(frozen=True, slots=True)
class FinishPlan:
    """Column values for the notification and its attempt row."""

    status: Status
    notification: Mapping[str, Any]
    attempt_outcome: str
    drop_attempt: bool = False      # the claim did not count as an attempt
    attempts_delta: int = 0
    provider_took_it: bool = False  # look for callbacks that arrived before this commit
    budget_delta: int = 0           # the claim did not use the retry budget: give its attempt back


def _errors(result: AttemptResult) -> dict[str, Any]:
    return {"error_code": result.error_code, "error_message": mask_numbers(result.error_message)}


def _provider_took_it(result: AttemptResult, in_doubt_since: datetime | None, channel: str = "sms") -> FinishPlan:
    if not result.provider_id:
        raise ValueError(f"{result.outcome} needs the provider id")
    status = (from_provider(result.provider_status, channel) if result.provider_status else None) or Status.QUEUED
    errors = _errors(result) if status in _FAILURES else {"error_code": None, "error_message": None}
    return FinishPlan(
        status=status,
        notification={"provider_id": result.provider_id, "in_doubt_since": None, "next_attempt_at": None,
                      **errors},
        attempt_outcome=result.outcome.value,
        provider_took_it=True,
    )


def _transient(result: AttemptResult, in_doubt_since: datetime | None) -> FinishPlan:
    if result.next_attempt_at is None:  # the caller's retry policy gave up
        return FinishPlan(
            status=Status.DEAD,
            notification={"next_attempt_at": None, "reason": "retries exhausted", **_errors(result)},
            attempt_outcome=result.outcome.value,
        )
    # in_doubt_since is kept: an earlier unknown send still has to be reconciled before the retry.
    return FinishPlan(
        status=Status.PENDING,
        notification={"next_attempt_at": result.next_attempt_at, **_errors(result)},
        attempt_outcome=result.outcome.value,
    )


def _permanent(result: AttemptResult, in_doubt_since: datetime | None) -> FinishPlan:
    return FinishPlan(
        status=Status.FAILED,
        notification={"next_attempt_at": None, "in_doubt_since": None, **_errors(result)},
        attempt_outcome=result.outcome.value,
    )


def _in_doubt(result: AttemptResult, in_doubt_since: datetime | None) -> FinishPlan:
    since = min(in_doubt_since, result.started_at) if in_doubt_since else result.started_at
    return FinishPlan(
        status=Status.PENDING,
        notification={"next_attempt_at": result.next_attempt_at or result.finished_at,
                      "in_doubt_since": since, **_errors(result)},
        attempt_outcome=result.outcome.value,
    )


def _lookup_failed(result: AttemptResult, in_doubt_since: datetime | None) -> FinishPlan:
    """Still in doubt, as `_in_doubt`; the attempt row stays (it is the look-up's record) but the
    budget grows by one, since a look-up could not have sent anything (issue: look-ups are not sends)."""
    plan = _in_doubt(result, in_doubt_since)
    return FinishPlan(status=plan.status, notification=plan.notification, attempt_outcome=plan.attempt_outcome,
                      budget_delta=1)


def _held(result: AttemptResult, in_doubt_since: datetime | None) -> FinishPlan:
    """The account was refused, not the message: pending again with the account's error shown; like a
    deferral it is not an attempt (the audit row records it), so it uses none of the budget."""
    return FinishPlan(
        status=Status.PENDING,
        notification={"next_attempt_at": result.next_attempt_at or result.finished_at, **_errors(result)},
        attempt_outcome=result.outcome.value,
        drop_attempt=True,
        attempts_delta=-1,
    )


def _deferred(result: AttemptResult, in_doubt_since: datetime | None) -> FinishPlan:
    return FinishPlan(
        status=Status.PENDING,
        notification={"next_attempt_at": result.next_attempt_at or result.finished_at},
        attempt_outcome=result.outcome.value,
        drop_attempt=True,
        attempts_delta=-1,
    )


PLANS: Mapping[Outcome, Callable[[AttemptResult, datetime | None], FinishPlan]] = {
    Outcome.ACCEPTED: _provider_took_it,
    Outcome.ADOPTED: _provider_took_it,
    Outcome.TRANSIENT: _transient,
    Outcome.PERMANENT: _permanent,
    Outcome.IN_DOUBT: _in_doubt,
    Outcome.DEFERRED: _deferred,
    Outcome.LOOKUP_FAILED: _lookup_failed,
    Outcome.HELD: _held,
}


def plan_finish(result: AttemptResult, in_doubt_since: datetime | None, channel: str = "sms") -> FinishPlan:
    """The plan for `result` on a notification currently in doubt since `in_doubt_since` (or not);
    the provider's status is read in `channel`'s table."""
    if result.outcome in (Outcome.ACCEPTED, Outcome.ADOPTED):
        return _provider_took_it(result, in_doubt_since, channel)
    return PLANS[result.outcome](result, in_doubt_since)
