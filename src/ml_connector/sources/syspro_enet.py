"""The e.net session: logon, one call at a time on the UserId, re-logon, logoff.

Every call is a GET under `/SYSPROWCFService/Rest` with query parameters. `logon` answers the
session UserId: 34 hex characters and two trailing spaces, echoed back byte for byte
(`UserId=...%20%20`). Query values are percent-encoded by hand with `%20` for spaces, because
WCF's query parsing does not turn `+` into a space.

* One call at a time per UserId: SYSPRO misbehaves with concurrent calls on one session, so a
  lock covers each call, including a re-logon and its retry. If SYSPRO still says the UserId
  is busy (a call we gave up on after the client timeout is still running there), that is a
  retriable SourceUnavailable, never a reason to log on again.
* Each logon takes an e.net licence seat, and another logon with the same operator (or a class
  licence running full) can evict ours: the next call answers `ERROR ...` about the session.
  Such an answer triggers one new logon and one retry of the call; a second refusal is a
  SourceAuthError.
* SYSPRO drops a session after its inactivity timeout; we log off and on again shortly before
  it (the configured timeout minus a margin) instead of finding out through an error.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import quote

import httpx

from ml_connector.core.redact import mask_secrets
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources import syspro_http
from ml_connector.sources.syspro_wire import SysproFailure, decode, failure_of

log = logging.getLogger(__name__)

REST_PATH = "/SYSPROWCFService/Rest"

_HINTS: Mapping[syspro_http.Action, str] = {
    "missing": "not found; is base_url the e.net REST endpoint (host:port of the SYSPRO "
               "Communications Service, path /SYSPROWCFService/Rest)?",
    "auth": "refused by the web server in front of e.net",
}

#: ERROR text of a logon -> error class and the hint added to SYSPRO's own words.
_LOGON_ERRORS: tuple[tuple[re.Pattern[str], type[SourceError], str], ...] = (
    (re.compile(r"licen[cs]e|seat", re.I), SourceAuthError,
     "no free e.net licence seat for this operator (check licence apportionment)"),
    (re.compile(r"password|operator|company|user", re.I), SourceAuthError,
     "check operator, company and their passwords"),
    (re.compile(r".*", re.S), SourceError, ""),
)

Verdict = Literal["busy", "lost", "error"]

#: ERROR text of any other call -> what it means, first match wins. "busy": a call on our UserId
#: is still running server-side (one of ours the client gave up on after its timeout), so this
#: one may be retried later; "lost": our session is gone (evicted, timed out, logged off).
_CALL_ERRORS: tuple[tuple[re.Pattern[str], Verdict], ...] = (
    (re.compile(r"\bbusy\b|overlap|another (?:call|request)|in progress", re.I), "busy"),
    (re.compile(r"user ?id|session|not logged|logged (?:off|out)|log ?on|expired", re.I), "lost"),
    (re.compile(r".*", re.S), "error"),
)

_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class EnetCredentials:
    operator: str
    operator_password: str
    company_id: str
    company_password: str

    def __repr__(self) -> str:  # passwords are credentials
        return f"EnetCredentials(operator={self.operator!r}, company_id={self.company_id!r})"

    def secrets(self) -> tuple[str, ...]:
        return (self.operator_password, self.company_password)


class _SessionLost(SourceAuthError):
    """An answer saying our UserId is no longer valid."""


def query_string(params: Sequence[tuple[str, str]]) -> str:
    """`a=1&b=x%20y`: every value percent-encoded, spaces as %20, nothing stripped."""
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params)


class EnetSession:
    """A serialised e.net session. `call` returns the decoded answer or raises a SourceError."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: EnetCredentials,
        *,
        source: str,
        clock: Callable[[], datetime],
        idle_timeout: timedelta,
        retries: int,
        retry_delay: float,
        rest_path: str = REST_PATH,
    ) -> None:
        self._http = http
        self._rest_path = "/" + rest_path.strip("/")
        self._credentials = credentials
        self._source = source
        self._clock = clock
        self._renew_after = idle_timeout - min(_MARGIN, idle_timeout / 10)
        self._retries = retries
        self._retry_delay = retry_delay
        self._lock = asyncio.Lock()
        self._user_id: str | None = None
        self._last_used: datetime | None = None
        self.logons = 0

    def __repr__(self) -> str:
        return f"EnetSession(source={self._source!r}, logged_on={self._user_id is not None})"

    @property
    def logged_on(self) -> bool:
        return self._user_id is not None

    # -- raw calls (lock held by the caller) -----------------------------------------------------

    async def _get(self, path: str, params: Sequence[tuple[str, str]], what: str) -> str:
        url = f"{self._rest_path}/{path}"
        if params:
            url += "?" + query_string(params)
        log.debug("%s: GET %s", self._source, syspro_http.safe_url(url))
        response = await syspro_http.get(
            self._http, url, what=what, source=self._source, retries=self._retries,
            retry_delay=self._retry_delay, hints=_HINTS,
        )
        return decode(response.content)

    def _said(self, failure: SysproFailure) -> str:
        text = mask_secrets(failure.text, [*self._credentials.secrets(), self._user_id])
        numbers = f" (error {', '.join(failure.numbers)})" if failure.numbers else ""
        return f"SYSPRO says: {text}{numbers}"

    async def _logon(self) -> str:
        creds = self._credentials
        text = await self._get("logon", (
            ("Operator", creds.operator), ("OperatorPassword", creds.operator_password),
            ("CompanyId", creds.company_id), ("CompanyPassword", creds.company_password),
        ), "logon")
        failure = failure_of(text)
        if failure is not None:
            kind, hint = next((k, h) for pattern, k, h in _LOGON_ERRORS if pattern.search(failure.text))
            suffix = f"; {hint}" if hint else ""
            raise kind(f"logon as {creds.operator} to company {creds.company_id} refused: "
                       f"{self._said(failure)}{suffix}", source=self._source)
        if not text.strip() or "<" in text or "\n" in text.strip():
            raise SourcePayloadError(f"logon answered something that is not a UserId "
                                     f"({len(text)} characters)", source=self._source)
        self._user_id = text  # byte for byte, trailing spaces included
        self._last_used = self._clock()
        self.logons += 1
        log.info("%s: logged on to SYSPRO company %s as %s", self._source, creds.company_id, creds.operator)
        return text

    async def _logoff_locked(self, *, strict: bool = False) -> None:
        user_id, self._user_id = self._user_id, None
        if user_id is None:
            return
        try:
            text = await self._get("logoff", (("UserId", user_id),), "logoff")
        except SourceError as exc:
            if strict:
                raise
            log.info("%s: logoff failed (%s); the session times out by itself", self._source, exc)
            return
        failure = failure_of(text)
        if failure is None:
            return
        if strict:
            raise SourceError(f"logoff: {self._said(failure)}", source=self._source)
        log.info("%s: logoff refused: %s; the session times out by itself", self._source, self._said(failure))

    async def _session(self) -> str:
        """The current UserId; a new logon when there is none or it has been idle too long."""
        if self._user_id is not None and self._last_used is not None:
            if self._clock() - self._last_used >= self._renew_after:
                log.info("%s: session idle for too long; logging on again", self._source)
                await self._logoff_locked()
        if self._user_id is None:
            return await self._logon()
        return self._user_id

    async def _call_once(self, path: str, params: Sequence[tuple[str, str]], what: str) -> str:
        user_id = await self._session()
        text = await self._get(path, [*params, ("UserId", user_id)], what)
        self._last_used = self._clock()
        failure = failure_of(text)
        if failure is None:
            return text
        message = f"{what}: {self._said(failure)}"
        verdict = next(v for pattern, v in _CALL_ERRORS if pattern.search(failure.text))
        if not failure.text.upper().startswith("ERROR"):
            verdict = "error"  # validation XML describes our input, never the session
        if verdict == "busy":
            raise SourceUnavailable(f"{message} (a previous call on this session is still running "
                                    "in SYSPRO; the next poll tries again)", source=self._source)
        if verdict == "lost":
            raise _SessionLost(message, source=self._source)
        raise SourceError(message, source=self._source)

    # -- public --------------------------------------------------------------------------------

    async def call(self, path: str, params: Sequence[tuple[str, str]], *, what: str) -> str:
        """One business-object call on the session; a lost session is replaced once."""
        async with self._lock:
            try:
                return await self._call_once(path, params, what)
            except _SessionLost:
                log.info("%s: %s: SYSPRO no longer knows our session; logging on again", self._source, what)
                self._user_id = None
            try:
                return await self._call_once(path, params, what)
            except _SessionLost as exc:
                raise SourceAuthError(f"{exc} (even right after logging on again: is another "
                                      "program logging on with the same operator?)") from None

    async def version(self) -> str:
        """`getversion`: needs no session."""
        async with self._lock:
            text = await self._get("getversion", (), "getversion")
        failure = failure_of(text)
        if failure is not None:
            raise SourceError(f"getversion: {self._said(failure)}", source=self._source)
        return text.strip()

    async def logon(self) -> None:
        """Log on now (check() reports exactly this step)."""
        async with self._lock:
            if self._user_id is None:
                await self._logon()

    async def logoff(self, *, strict: bool = False) -> None:
        """Release the licence seat. Best effort unless `strict` (the session times out anyway)."""
        async with self._lock:
            await self._logoff_locked(strict=strict)
