"""Held Twilio accounts: sending stops while Twilio refuses the account, and resumes by itself.

Wrong or rotated credentials (20003, HTTP 401), a suspended account (20005), test credentials
(20008) or a 403 are about the account, not the message: failing each notification would burn
every event into `failed` until someone noticed. Instead the first such answer holds the account:
its notifications stay pending (deferred, using none of their retry budget), the operator is told
once (a log line, the `mlc_twilio_account_held` metric, `ml-connector check`), and a cheap probe
of the account (channels.base.Probe) runs every `probe_every`; the first that succeeds releases
the hold. A restart with fixed credentials starts with no hold at all.

In memory per process; the store keeps a copy for `check` (Store.record_account_hold).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.errors import DeliveryError

log = logging.getLogger(__name__)

#: How often a held account is probed.
PROBE_EVERY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Hold:
    """Why an account's sending is held, since when, and when it is probed next."""

    reason: str
    code: int | None
    since: datetime
    next_probe: datetime

    def describe(self) -> str:
        code = f"[{self.code}] " if self.code is not None else ""
        return f"{code}{self.reason}"


class AccountHolds:
    """The accounts whose sending is held. One per dispatcher; only the event loop touches it."""

    def __init__(self, clock: Callable[[], datetime], probe_every: timedelta = PROBE_EVERY) -> None:
        self._clock = clock
        self.probe_every = probe_every
        self._held: dict[str, Hold] = {}
        #: Times each account was held, since the process started (the metric's counter).
        self.times_held: dict[str, int] = {}

    def get(self, account: str) -> Hold | None:
        return self._held.get(account)

    def snapshot(self) -> Mapping[str, Hold]:
        return dict(self._held)

    def hold(self, account: str, exc: DeliveryError) -> tuple[Hold, bool]:
        """Hold `account` because of `exc`; True the first time (then it is logged, once)."""
        known = self._held.get(account)
        if known is not None:
            return known, False
        now = self._clock()
        held = Hold(exc.reason, exc.code, now, now + self.probe_every)
        self._held[account] = held
        self.times_held[account] = self.times_held.get(account, 0) + 1
        log.error(
            "Twilio account %s refused: %s. Its sending is held (notifications stay pending, no retry is "
            "used); it is probed every %.0f s and resumes by itself once Twilio accepts it: fix the "
            "credentials or the account (`ml-connector check` shows it)",
            account, held.describe(), self.probe_every.total_seconds(),
        )
        return held, True

    def due_probes(self) -> list[str]:
        now = self._clock()
        return sorted(a for a, h in self._held.items() if h.next_probe <= now)

    def probe_failed(self, account: str, exc: DeliveryError) -> None:
        """Still refused (or unreachable): probe again later; logged at debug only (no storm)."""
        held = self._held.get(account)
        if held is None:
            return
        self._held[account] = Hold(held.reason, held.code, held.since, self._clock() + self.probe_every)
        log.debug("Twilio account %s still held: %s", account, exc)

    def release(self, account: str) -> bool:
        """The probe succeeded: sending resumes. True if the account was held (logged once)."""
        held = self._held.pop(account, None)
        if held is None:
            return False
        log.warning("Twilio account %s accepted again after %.0f s: sending resumes",
                    account, (self._clock() - held.since).total_seconds())
        return True


__all__ = ["PROBE_EVERY", "AccountHolds", "Hold"]
