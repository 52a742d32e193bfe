"""`ml-connector check`: ping every configured system and say exactly what was reached or what failed.

One line per system. A failure says what was tried and the other side's own words (Twilio's error
code, the database driver's message), plus a hint for the mistakes admins make most often.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import exc as sa_exc

from ml_connector.channels.http import TransportError
from ml_connector.channels.twilio_api import TwilioApiError
from ml_connector.core.redact import mask_url
from ml_connector.errors import MlcError
from ml_connector.tls import unverified_tls


@dataclass(frozen=True, slots=True)
class CheckLine:
    """What one system answered. `code`: the provider's error code when it gave one."""

    kind: str
    name: str
    ok: bool
    details: tuple[str, ...]
    code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "ok": self.ok, "details": list(self.details),
                "error_code": self.code}


#: Twilio error codes that mean a configuration mistake, with what to look at.
TWILIO_HINTS: Mapping[int, str] = {
    20003: "check twilio account_sid and auth_token (or api_key_sid/api_key_secret)",
    20404: "no such account: check twilio account_sid",
    20005: "the account is not active (suspended or closed) in the Twilio Console",
}

#: Twilio account statuses that cannot send.
INACTIVE_ACCOUNT = frozenset({"suspended", "closed"})

#: Database failures whose driver text alone is too terse to act on.
CAUSE_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (sa_exc.NoSuchTableError, "table not found"),
)


def _twilio_error(exc: TwilioApiError) -> str:
    if exc.code is None:
        return f"HTTP {exc.status} that is not Twilio's error format (a proxy?): {exc.message}"
    hint = TWILIO_HINTS.get(exc.code)
    return f"Twilio answered HTTP {exc.status}, error {exc.code}: {exc.message}" + (f" ({hint})" if hint else "")


def _with_cause_hint(exc: BaseException) -> str:
    cause = exc.__cause__
    while cause is not None:
        for kind, hint in CAUSE_HINTS:
            if isinstance(cause, kind):
                return f"{exc} ({hint})"
        cause = cause.__cause__
    return str(exc)


#: How each failure reads, most specific type first.
DESCRIBE: tuple[tuple[type[BaseException], Callable[[Any], str]], ...] = (
    (TwilioApiError, _twilio_error),
    (TransportError, lambda exc: f"cannot reach {exc.where}: {exc.detail}"),
    (sa_exc.SQLAlchemyError, lambda exc: str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]),
    (MlcError, _with_cause_hint),
)


def describe(exc: BaseException) -> str:
    """A failure as one line a person can act on."""
    for kind, render in DESCRIBE:
        if isinstance(exc, kind):
            return render(exc)
    return f"{type(exc).__name__}: {exc}"


async def _store(connector: Any) -> CheckLine:
    url = mask_url(connector.config.store.url)
    name = url.partition(":")[0].partition("+")[0]
    try:
        return CheckLine("store", name, True, (url, str(await asyncio.to_thread(connector.store.ping))))
    except Exception as exc:  # report, never crash the whole check
        return CheckLine("store", name, False, (url, describe(exc)))


def _held(hold: Mapping[str, Any] | None) -> tuple[str, ...]:
    """What a running connector recorded about holding this account's sending (runtime.account_hold)."""
    if not hold:
        return ()
    return (f"sending held by the running connector since {hold.get('since')}: {hold.get('reason')} "
            "(it resumes by itself once Twilio accepts the account)",)


async def _twilio(name: str, client: Any, base_url: str, hold: Mapping[str, Any] | None = None) -> CheckLine:
    try:
        account = await client.fetch_account()
    except Exception as exc:
        code = exc.code if isinstance(exc, TwilioApiError) else None
        return CheckLine("twilio", name, False, (base_url, describe(exc), *_held(hold)), code)
    status = str(account.get("status"))
    details = (base_url, f"account {account.get('sid')} \"{account.get('friendly_name')}\"", f"status {status}",
               *_held(hold))
    if status in INACTIVE_ACCOUNT:
        return CheckLine("twilio", name, False, (*details, f"the account is {status}: it cannot send"))
    return CheckLine("twilio", name, True, details)


async def _holds(connector: Any) -> Mapping[str, Mapping[str, Any]]:
    try:
        holds: Mapping[str, Mapping[str, Any]] = await asyncio.to_thread(connector.store.account_holds)
    except Exception:  # the store line reports the store's own failure
        return {}
    return holds


async def _source(name: str, source: Any) -> CheckLine:
    try:
        result = await source.check()
    except Exception as exc:
        return CheckLine("source", name, False, (describe(exc),))
    details = tuple(f"{key}: {value}" for key, value in result.details.items() if str(value).strip())
    return CheckLine("source", name, True, (result.system, *details))


def _with_tls_warnings(lines: list[CheckLine], config: Any) -> list[CheckLine]:
    """A system reached without verifying its certificate says so on its own line."""
    unverified = {(kind, name) for kind, name, _ in unverified_tls(config)}
    warning = "WARNING: verify_tls is false: the server's certificate is not checked"
    return [replace(line, details=(*line.details, warning)) if (line.kind, line.name) in unverified else line
            for line in lines]


async def run_checks(connector: Any) -> list[CheckLine]:
    """All checks concurrently; one failing system never hides the others. Closes the connector."""
    try:
        jobs = [_store(connector)]
        holds = await _holds(connector)
        jobs += [
            _twilio(name, client, str(connector.config.twilio.accounts[name].base_urls.api), holds.get(name))
            for name, client in connector.clients.items()
        ]
        jobs += [_source(name, source) for name, source in connector.sources.items()]
        return _with_tls_warnings(list(await asyncio.gather(*jobs)), connector.config)
    finally:
        await connector.aclose()
