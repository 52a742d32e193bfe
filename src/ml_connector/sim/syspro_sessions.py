"""e.net sessions: UserIds, licence seats, eviction, inactivity timeout, one call at a time.

What is modelled, and the choices made where SYSPRO's behaviour is not documented:

* A logon returns a UserId of 34 uppercase hex characters followed by two spaces. The spaces
  are part of the id: a client must send ``UserId=...%20%20``; the stripped id is unknown.
* Each live session holds an e.net licence seat. A second logon by the same operator evicts the
  operator's earlier session (SYSPRO clears the operator's user-file entries). Sessions idle
  longer than the timeout are purged before counting; if every seat is still taken the logon is
  refused (no LRU eviction of active sessions).
* An expired, evicted or logged-off UserId gets ``ERROR: Invalid UserId. You may need to log on
  again.`` (invented wording; the caller cannot tell the three apart, as with SYSPRO).
* A call arriving while another call on the same UserId is in flight is refused with an
  ``ERROR:`` text (real SYSPRO misbehaves; a refusal makes the overlap visible).
* The inactivity clock restarts when a call starts and when it ends.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from ml_connector.sim.syspro_wire import (
    BAD_COMPANY,
    BAD_COMPANY_PASSWORD,
    BAD_OPERATOR,
    BAD_PASSWORD,
    INVALID_USER_ID,
    NO_LICENCE,
    SESSION_BUSY,
    EnetError,
)


@dataclass(frozen=True)
class SysproOperator:
    """An operator (SYSPRO user) who may log on to e.net and authenticate to OData."""

    code: str
    password: str


DEFAULT_OPERATORS: tuple[SysproOperator, ...] = (
    SysproOperator("ADMIN", "secret"),
    SysproOperator("MLC", "mlc-pass"),
    SysproOperator("CLERK", "clerk-pass"),
)


@dataclass
class Session:
    """A live e.net session."""

    user_id: str
    operator: str
    last_used: datetime
    busy: bool = False


class SessionBook:
    """The e.net licence manager's view: who is logged on, and which seats are used."""

    def __init__(
        self,
        *,
        operators: Iterable[SysproOperator],
        company: str,
        company_password: str,
        seats: int,
        timeout: float,
        rng: random.Random,
    ) -> None:
        if seats < 1:
            raise ValueError("enet_seats must be at least 1")
        self.operators: Mapping[str, SysproOperator] = MappingProxyType(
            {o.code.upper(): o for o in operators})
        self.company = company
        self.company_password = company_password
        self.seats = seats
        self.timeout = timeout
        self._rng = rng
        self._sessions: dict[str, Session] = {}

    def authenticate(self, operator: str, password: str) -> SysproOperator | None:
        """Operator codes are case-insensitive; passwords are not."""
        found = self.operators.get(operator.upper())
        if found is None or not secrets.compare_digest(found.password.encode(), password.encode()):
            return None
        return found

    def logon(self, *, operator: str, password: str, company: str, company_password: str,
              now: datetime) -> Session:
        if company.upper() != self.company.upper():
            raise EnetError(BAD_COMPANY.format(company))
        if not secrets.compare_digest(company_password.encode(), self.company_password.encode()):
            raise EnetError(BAD_COMPANY_PASSWORD)
        found = self.operators.get(operator.upper())
        if found is None:
            raise EnetError(BAD_OPERATOR)
        if self.authenticate(operator, password) is None:
            raise EnetError(BAD_PASSWORD)
        self.purge_expired(now)
        self.evict(found.code)
        if len(self._sessions) >= self.seats:
            raise EnetError(NO_LICENCE)
        user_id = f"{self._rng.getrandbits(128):032X}00  "
        session = Session(user_id, found.code, now)
        self._sessions[user_id] = session
        return session

    def begin(self, user_id: str, now: datetime) -> Session:
        """Start a call on ``user_id``: it must be live, not timed out, and not busy."""
        session = self._live(user_id, now)
        if session.busy:
            raise EnetError(SESSION_BUSY)
        session.busy = True
        session.last_used = now
        return session

    def end(self, session: Session, now: datetime) -> None:
        session.busy = False
        session.last_used = now

    def logoff(self, user_id: str, now: datetime) -> None:
        self._live(user_id, now)
        del self._sessions[user_id]

    def _live(self, user_id: str, now: datetime) -> Session:
        session = self._sessions.get(user_id)
        if session is None:
            raise EnetError(INVALID_USER_ID)
        if self._idle(session, now):
            del self._sessions[user_id]
            raise EnetError(INVALID_USER_ID)
        return session

    def _idle(self, session: Session, now: datetime) -> bool:
        return not session.busy and (now - session.last_used).total_seconds() >= self.timeout

    def purge_expired(self, now: datetime) -> int:
        dead = [uid for uid, s in self._sessions.items() if self._idle(s, now)]
        for uid in dead:
            del self._sessions[uid]
        return len(dead)

    def evict(self, operator: str) -> int:
        """Drop every session of ``operator`` (another logon by the same operator)."""
        dead = [uid for uid, s in self._sessions.items() if s.operator.upper() == operator.upper()]
        for uid in dead:
            del self._sessions[uid]
        return len(dead)

    def expire_all(self) -> int:
        count = len(self._sessions)
        self._sessions.clear()
        return count

    def live(self) -> list[Session]:
        return list(self._sessions.values())
