"""TLS trust for every outbound client (ERP sources on httpx, Twilio on aiohttp), and TLS failures
in words an admin can act on.

`ca_bundle` *adds* a site's CA (a corporate CA in front of the ERP, a TLS-inspecting egress proxy)
to the usual trust: the operating system's store plus certifi's (what httpx trusts by default, so
hosts that have no system store still reach public services). `ca_bundle_only: true` trusts the
bundle alone. `verify_tls: false` turns verification off, and is reported at start and by `check`
(`unverified_tls`).

A failed handshake surfaces as a bare "ConnectError" or "ClientConnectorCertificateError";
`tls_failure` finds the `ssl` error under it and names the cause (unknown CA, hostname mismatch,
expired) from OpenSSL's verification code.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import certifi

from ml_connector.errors import ConfigError

__all__ = ["client_ssl_context", "tls_failure", "unverified_tls", "warn_unverified_tls"]

log = logging.getLogger(__name__)


def client_ssl_context(
    *, verify: bool = True, ca_bundle: str | Path | None = None, ca_bundle_only: bool = False
) -> ssl.SSLContext | Literal[False]:
    """The context a client verifies servers with; False when verification is off.

    Built once per client: loading the stores reads a few hundred certificates.
    """
    if not verify:
        return False
    if ca_bundle_only and ca_bundle is None:
        raise ConfigError("ca_bundle_only is set but no ca_bundle is given")
    try:
        if ca_bundle_only:  # a cafile given here means only it, no default stores
            return ssl.create_default_context(cafile=str(ca_bundle))
        context = ssl.create_default_context()  # the operating system's store
        context.load_verify_locations(cafile=certifi.where())
        if ca_bundle is not None:
            context.load_verify_locations(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"ca_bundle {ca_bundle}: cannot be read as PEM certificates ({reason})") from None
    return context


#: OpenSSL verification codes (X509_V_ERR_*) -> what they mean for the admin.
_VERIFY_CAUSES: Mapping[int, str] = {
    2: "unknown CA: the server's certificate is issued by a CA that is not trusted",
    18: "unknown CA: the server's certificate is self-signed",
    19: "unknown CA: the server's chain ends in a CA that is not trusted",
    20: "unknown CA: the server's certificate is issued by a CA that is not trusted",
    21: "unknown CA: the server's certificate is issued by a CA that is not trusted",
    9: "certificate not yet valid (check the clocks)",
    10: "certificate expired",
    62: "hostname mismatch: the certificate is not issued for this host name",
    64: "hostname mismatch: the certificate is not issued for this IP address",
}

_HINTS: Mapping[str, str] = {
    "unknown CA": "; add the issuing CA with ca_bundle",
    "hostname mismatch": "; connect with a host name the certificate lists",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it: __cause__, __context__ and aiohttp's wrapped errors."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (getattr(current, "certificate_error", None), getattr(current, "os_error", None),
                       current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)


def tls_failure(exc: BaseException) -> str | None:
    """"TLS: <cause>" when a certificate or handshake problem is behind `exc`, else None.

    OpenSSL's own text is kept after the cause (it names no secret: at most the host name).
    """
    for cause in _chain(exc):
        code = getattr(cause, "verify_code", None)  # aiohttp's wrapper is one too, without the code
        if isinstance(cause, ssl.SSLCertVerificationError) and isinstance(code, int):
            said = cause.verify_message or cause.reason or "certificate verify failed"
            meaning = _VERIFY_CAUSES.get(code)
            if meaning is None:
                return f"TLS: certificate rejected ({said})"
            hint = next((text for key, text in _HINTS.items() if meaning.startswith(key)), "")
            return f"TLS: {meaning} ({said}){hint}"
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: handshake failed ({cause.reason or cause.__class__.__name__})"
    return None


def unverified_tls(config: Any) -> list[tuple[str, str, str]]:
    """(kind, name, warning) for each Twilio account and source configured with `verify_tls: false`."""
    systems = [("twilio", name, section) for name, section in config.twilio.accounts.items()]
    systems += [("source", name, section) for name, section in config.sources.items()]
    return [(kind, name, f"{kind} {name}: verify_tls is false: its server's certificate is not checked, "
                         "so anyone on the network path can read and change the traffic")
            for kind, name, section in systems if getattr(section, "verify_tls", True) is False]


def warn_unverified_tls(config: Any) -> None:
    """Log each `verify_tls: false` once, when `run` starts: it must never go unnoticed."""
    for _, _, warning in unverified_tls(config):
        log.warning("%s", warning)
