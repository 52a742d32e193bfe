"""TLS trust against real TLS servers on loopback, with a throwaway PKI.

A "public" CA stands in for the operating system's store (SSL_CERT_FILE is where OpenSSL's default
paths look first), a "corporate" CA is what `ca_bundle` names. `ca_bundle` must add to the usual
trust, `ca_bundle_only` must replace it, for the Twilio client (aiohttp) and the ERP clients (httpx)
alike; a refused certificate must say why.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest

from ml_connector.channels.http import AiohttpTransport, TransportError
from ml_connector.checks import describe
from ml_connector.errors import ConfigError, SourceError
from ml_connector.sources.oracle_ebs import OracleEbsConfig, OracleEbsSource
from ml_connector.sources.syspro import SysproConfig, SysproSource
from ml_connector.tls import client_ssl_context, tls_failure, unverified_tls, warn_unverified_tls
from tests.support.pki import Ca, https_server, make_ca, server_context


@dataclass
class Pki:
    public: Ca      # trusted by the "system store"
    corporate: Ca   # only in ca_bundle
    directory: Path


@pytest.fixture
def pki(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pki:
    public = make_ca(tmp_path, "Public Root CA")
    corporate = make_ca(tmp_path, "Corporate Root CA")
    monkeypatch.setenv("SSL_CERT_FILE", str(public.pem))
    return Pki(public, corporate, tmp_path)


# -- what each client reaches --------------------------------------------------------------------

Fetch = Callable[..., Awaitable[str]]


async def via_aiohttp(url: str, **tls: Any) -> str:
    transport = AiohttpTransport(**tls)
    try:
        response = await transport.request("GET", url + "/x", headers={}, body=None, timeout=5)
        return response.body.decode()
    except TransportError as exc:
        return exc.detail
    finally:
        await transport.aclose()


async def via_httpx(url: str, **tls: Any) -> str:
    async with httpx.AsyncClient(verify=client_ssl_context(**tls), timeout=5) as client:
        try:
            return (await client.get(url + "/x")).text
        except httpx.HTTPError as exc:
            return tls_failure(exc) or type(exc).__name__


@pytest.fixture(params=[via_aiohttp, via_httpx], ids=["twilio-aiohttp", "erp-httpx"])
def fetch(request: pytest.FixtureRequest) -> Fetch:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def servers(pki: Pki) -> AsyncIterator[tuple[str, str]]:
    """(public server URL, corporate server URL)."""
    async with https_server(server_context(pki.directory, pki.public)) as public, \
            https_server(server_context(pki.directory, pki.corporate)) as corporate:
        yield public, corporate


async def test_default_trust_reaches_public_but_not_corporate(fetch: Fetch, servers: tuple[str, str]) -> None:
    public, corporate = servers
    assert await fetch(public) == "ok"
    assert "unknown CA" in await fetch(corporate)


async def test_ca_bundle_adds_the_corporate_ca_to_the_default_trust(
    fetch: Fetch, servers: tuple[str, str], pki: Pki
) -> None:
    public, corporate = servers
    assert await fetch(corporate, ca_bundle=str(pki.corporate.pem)) == "ok"
    assert await fetch(public, ca_bundle=str(pki.corporate.pem)) == "ok"  # it used to replace it


async def test_ca_bundle_only_trusts_the_bundle_alone(fetch: Fetch, servers: tuple[str, str], pki: Pki) -> None:
    public, corporate = servers
    assert await fetch(corporate, ca_bundle=str(pki.corporate.pem), ca_bundle_only=True) == "ok"
    assert "unknown CA" in await fetch(public, ca_bundle=str(pki.corporate.pem), ca_bundle_only=True)


def test_the_default_trust_includes_certifi_and_the_bundle(pki: Pki) -> None:
    certifi_subjects = {str(c["subject"]) for c in ssl.create_default_context(cafile=certifi.where()).get_ca_certs()}
    adding = client_ssl_context(ca_bundle=pki.corporate.pem)
    only = client_ssl_context(ca_bundle=pki.corporate.pem, ca_bundle_only=True)
    assert isinstance(adding, ssl.SSLContext) and isinstance(only, ssl.SSLContext)
    adding_subjects = {str(c["subject"]) for c in adding.get_ca_certs()}
    only_subjects = {str(c["subject"]) for c in only.get_ca_certs()}
    corporate = str(((("commonName", "Corporate Root CA"),),))
    assert corporate in adding_subjects and corporate in only_subjects
    assert certifi_subjects <= adding_subjects
    assert only_subjects == {corporate}
    assert adding.verify_mode is ssl.CERT_REQUIRED and adding.check_hostname
    assert only.verify_mode is ssl.CERT_REQUIRED and only.check_hostname


def test_verification_off_and_bad_bundles(tmp_path: Path) -> None:
    assert client_ssl_context(verify=False) is False
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot be read as PEM"):
        client_ssl_context(ca_bundle=broken)
    with pytest.raises(ConfigError, match="ca_bundle_only"):
        client_ssl_context(ca_bundle_only=True)


# -- a refused certificate says why ---------------------------------------------------------------


async def test_expired_certificate_is_named(fetch: Fetch, pki: Pki) -> None:
    async with https_server(server_context(pki.directory, pki.public, expired=True)) as url:
        assert "certificate expired" in await fetch(url)


async def test_hostname_mismatch_is_named(fetch: Fetch, pki: Pki) -> None:
    async with https_server(server_context(pki.directory, pki.public, hosts=("erp.example.com",))) as url:
        assert "hostname mismatch" in await fetch(url)


async def test_unknown_ca_says_to_add_it_with_ca_bundle(fetch: Fetch, pki: Pki) -> None:
    async with https_server(server_context(pki.directory, pki.corporate)) as url:
        said = await fetch(url)
    assert said.startswith(("ClientConnectorCertificateError: TLS: unknown CA", "TLS: unknown CA")), said
    assert "ca_bundle" in said


async def test_check_line_names_the_tls_cause(pki: Pki) -> None:
    async with https_server(server_context(pki.directory, pki.public, expired=True)) as url:
        transport = AiohttpTransport()
        try:
            with pytest.raises(TransportError) as caught:
                await transport.request("GET", url + "/2010-04-01/Accounts/AC1.json", headers={}, body=None,
                                        timeout=5)
        finally:
            await transport.aclose()
    line = describe(caught.value)
    assert line.startswith(f"cannot reach {url}/2010-04-01/Accounts/AC1.json: ")
    assert "TLS: certificate expired" in line
    assert "ConnectError" not in line.replace("ClientConnectorCertificateError", "")


async def test_plain_http_spoken_to_as_https_is_a_handshake_failure() -> None:
    import asyncio

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        said = await via_httpx(f"https://127.0.0.1:{port}")
    finally:
        server.close()
        await server.wait_closed()
    assert said.startswith("TLS: handshake failed"), said


# -- the ERP sources use the same trust and report the same causes --------------------------------


def ebs(url: str, **tls: Any) -> OracleEbsSource:
    config = OracleEbsConfig.model_validate({
        "type": "oracle_ebs", "base_url": url, "username": "U", "password": "p", "auth": "basic",
        "mode": "ords", "timezone": "UTC", "retries": 0, "retry_delay": 0,
        "entities": {"invoices": {"object": "ap_invoices", "key": "invoice_id", "changed_at": "last_update_date"}},
        **tls})
    return OracleEbsSource("ebs", config)


def syspro(url: str, **tls: Any) -> SysproSource:
    config = SysproConfig.model_validate({
        "type": "syspro", "base_url": url, "operator": "MLC", "company_id": "EDU1", "timezone": "UTC",
        "retries": 0, "retry_delay": 0, "entities": {"pos": {"table": "PorMasterHdr", "key": "PurchaseOrder"}},
        **tls})
    return SysproSource("erp", config)


@pytest.mark.parametrize("make", [ebs, syspro], ids=["oracle_ebs", "syspro"])
async def test_sources_name_the_tls_cause_and_trust_the_added_bundle(make: Any, pki: Pki) -> None:
    async with https_server(server_context(pki.directory, pki.corporate)) as url:
        source = make(url)
        try:
            with pytest.raises(SourceError) as refused:
                await source.check()
        finally:
            await source.aclose()
        assert "TLS: unknown CA" in str(refused.value)

        source = make(url, ca_bundle=str(pki.corporate.pem))
        try:
            with pytest.raises(SourceError) as past_tls:  # our server answers "ok", not the ERP's format
                await source.check()
        finally:
            await source.aclose()
        assert "TLS" not in str(past_tls.value)

    async with https_server(server_context(pki.directory, pki.public)) as url:
        source = make(url, ca_bundle=str(pki.corporate.pem))  # the bundle adds: public CAs still count
        try:
            with pytest.raises(SourceError) as past_tls:
                await source.check()
        finally:
            await source.aclose()
        assert "TLS" not in str(past_tls.value)


# -- verify_tls: false never goes unnoticed ---------------------------------------------------------


@dataclass
class _Section:
    verify_tls: bool


@dataclass
class _Twilio:
    accounts: dict[str, _Section]


@dataclass
class _Config:
    twilio: _Twilio
    sources: dict[str, Any]


def test_unverified_systems_are_listed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = _Config(_Twilio({"main": _Section(True), "lab": _Section(False)}),
                     {"erp": _Section(False), "db": object()})
    assert [(kind, name) for kind, name, _ in unverified_tls(config)] == [("twilio", "lab"), ("source", "erp")]
    with caplog.at_level(logging.WARNING, logger="ml_connector.tls"):
        warn_unverified_tls(config)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert "twilio lab: verify_tls is false" in caplog.text and "source erp: verify_tls is false" in caplog.text
