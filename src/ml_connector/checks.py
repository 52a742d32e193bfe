"""`ml-connector check`: ping every configured system and say exactly what was reached or what failed."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from ml_connector.channels.http import TransportError
from ml_connector.channels.twilio_api import TwilioApiError
from ml_connector.core.redact import mask_url
from ml_connector.errors import MlcError


@dataclass(frozen=True, slots=True)
class CheckLine:
    kind: str
    name: str
    ok: bool
    details: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TwilioApiError):
        return f"Twilio answered HTTP {exc.status}, code {exc.code}: {exc.message}"
    if isinstance(exc, TransportError):
        return f"cannot reach: {exc}"
    if isinstance(exc, MlcError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


async def _store(connector: Any) -> CheckLine:
    try:
        return CheckLine("store", mask_url(connector.config.store.url), True,
                         await asyncio.to_thread(connector.store.ping))
    except Exception as exc:  # report, never crash the whole check
        return CheckLine("store", mask_url(connector.config.store.url), False, _describe(exc))


async def _twilio(name: str, client: Any, base_url: str) -> CheckLine:
    try:
        account = await client.fetch_account()
        return CheckLine("twilio", name, True,
                         f"{base_url}: account {account.get('sid')} \"{account.get('friendly_name')}\" "
                         f"status {account.get('status')}")
    except Exception as exc:
        return CheckLine("twilio", name, False, f"{base_url}: {_describe(exc)}")


async def _source(name: str, source: Any) -> CheckLine:
    try:
        result = await source.check()
        details = ", ".join(f"{k}={v}" for k, v in result.details.items())
        return CheckLine("source", name, True, f"{result.system}: {details}")
    except Exception as exc:
        return CheckLine("source", name, False, _describe(exc))


async def run_checks(connector: Any) -> list[CheckLine]:
    """All checks concurrently; one failing system never hides the others."""
    try:
        jobs = [_store(connector)]
        jobs += [
            _twilio(name, client, str(connector.config.twilio.accounts[name].base_urls.api))
            for name, client in connector.clients.items()
        ]
        jobs += [_source(name, source) for name, source in connector.sources.items()]
        return list(await asyncio.gather(*jobs))
    finally:
        await connector.aclose()
