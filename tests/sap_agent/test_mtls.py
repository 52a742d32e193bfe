"""Mutual TLS between the connector and the reference agent, on a real loopback socket."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ml_connector.cli_sap_agent import tls_options
from ml_connector.errors import SourceUnavailable
from ml_connector.sap_agent.config import AgentConfig
from ml_connector.sources.sap_rfc_source import SapRfcSource
from ml_connector.web.sap_agent import AgentApp
from tests.contract.sap_rfc import rfc_config

NOW = dt.datetime.now(dt.UTC)


def _cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
          *, ca: bool = False, ip: str | None = None) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(minutes=5))
               .not_valid_after(NOW + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
    return path


class Conn:
    def call(self, function: str, **params: Any) -> dict[str, Any]:
        return {"RFCSI_EXPORT": {"RFCSYSID": "ECD", "RFCSAPRL": "731"}}

    def get_connection_attributes(self) -> dict[str, str]:
        return {"client": "100", "user": "MLC_RFC"}


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test agent CA", ca_key, None, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_path = _write(tmp_path / "ca.pem", ca)
    server = _write(tmp_path / "server.pem", _cert("agent", server_key, (ca.subject, ca_key), ip="127.0.0.1"),
                    server_key)
    _write(tmp_path / "client.pem", _cert("connector", client_key, (ca.subject, ca_key)), client_key)
    config = AgentConfig.model_validate({"tls": {"cert": str(server), "key": str(server.with_suffix(".key")),
                                                 "client_ca": str(ca_path)}, "sap": {"ashost": "sapecd01"}})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(AgentApp(config, Conn).create_app(), host="127.0.0.1", port=port,
                                       log_level="error", lifespan="off", log_config=None, **tls_options(config)))
    task = asyncio.create_task(uv.serve())
    while not uv.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    yield f"https://127.0.0.1:{port}", tmp_path
    uv.should_exit = True
    await task


async def test_the_connector_with_its_certificate_is_let_in(agent: tuple[str, Path]) -> None:
    url, files = agent
    source = SapRfcSource("sap", rfc_config(ca_bundle=str(files / "ca.pem"), agent={
        "url": url, "client_cert": str(files / "client.pem"), "client_key": str(files / "client.key")}))
    try:
        result = await source.check()
    finally:
        await source.aclose()
    assert result.details["release"] == "731" and result.details["user"] == "MLC_RFC"


async def test_without_a_certificate_the_handshake_fails(agent: tuple[str, Path]) -> None:
    url, files = agent
    source = SapRfcSource("sap", rfc_config(ca_bundle=str(files / "ca.pem"), retries=0,
                                            agent={"url": url, "token": "a-token-is-not-enough-here"}))
    try:
        with pytest.raises(SourceUnavailable, match="cannot be reached"):
            await source.check()
    finally:
        await source.aclose()
