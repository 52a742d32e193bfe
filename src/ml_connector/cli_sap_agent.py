"""`ml-connector sap-agent`: the reference SAP RFC agent, run next to SAP where the NW RFC SDK is.

It reads its own file (not the connector's config: the SAP logon lives only here), loads pyrfc
and serves protocol v1 (docs/sap-agent-protocol.md) with uvicorn, over HTTPS and mutual TLS when
`tls` is set. Without pyrfc or the SDK it says which is missing and exits 1.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ml_connector.sap_agent.config import AgentConfig

AGENT_CONFIG_ENV = "MLC_SAP_AGENT_CONFIG"


def connector(pyrfc: Any, params: dict[str, str]) -> Any:
    """A function opening one pyrfc connection with the configured parameters (CODEPAGE among
    them); CHAR fields right-trimmed, DATS/TIMS as ABAP strings YYYYMMDD/HHMMSS (protocol v1)."""

    def connect() -> Any:
        return pyrfc.Connection(config={"rstrip": True, "dtime": False}, **params)

    return connect


def logon_check(connect: Callable[[], Any]) -> str:
    """Open one connection, call RFC_SYSTEM_INFO, close it: what was reached, in one line."""
    connection = connect()
    try:
        info = connection.call("RFC_SYSTEM_INFO").get("RFCSI_EXPORT") or {}
    finally:
        close = getattr(connection, "close", None)
        if close is not None:
            close()
    return (f"system {str(info.get('RFCSYSID', '?')).strip()}, release {str(info.get('RFCSAPRL', '?')).strip()}, "
            f"host {str(info.get('RFCHOST', '?')).strip()}, code page {str(info.get('RFCCHARTYP', '?')).strip()}")


def tls_options(config: AgentConfig) -> dict[str, Any]:
    """uvicorn's TLS settings: HTTPS with the agent's certificate; with `client_ca`, a client
    certificate signed by it is required (mutual TLS) before any request reaches the app."""
    if config.tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(config.tls.cert), "ssl_keyfile": str(config.tls.key)}
    if config.tls.client_ca is not None:
        options.update(ssl_ca_certs=str(config.tls.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


@click.command("sap-agent")
@click.option("--agent-config", "agent_config", envvar=AGENT_CONFIG_ENV, required=True, show_envvar=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The agent's YAML file (SAP logon, token, TLS).")
@click.option("--host", default=None, help="Listen address (default: listen.host of the file).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Listen port (default: listen.port).")
@click.option("--check", "check_only", is_flag=True,
              help="Log on to SAP once (RFC_SYSTEM_INFO), print what was reached, and exit.")
def sap_agent(agent_config: Path, host: str | None, port: int | None, check_only: bool) -> None:
    """Serve SAP RFC to ml-connector (protocol v1) from a host that has SAP's NW RFC SDK.

    Before serving it logs on once, so a wrong password or client stops it at start."""
    from ml_connector.errors import ConfigError
    from ml_connector.sap_agent.backend import SdkMissing, error_of, load_pyrfc
    from ml_connector.sap_agent.config import load_agent_config

    try:
        config = load_agent_config(agent_config)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    try:
        pyrfc = load_pyrfc()
    except SdkMissing as exc:
        click.echo(f"sap-agent: {exc}", err=True)
        raise SystemExit(1) from None
    import uvicorn

    from ml_connector.web.sap_agent import AgentApp

    connect = connector(pyrfc, config.connection_params())
    try:
        reached = logon_check(connect)
    except Exception as exc:  # noqa: BLE001 - pyrfc's errors, said in the protocol's words
        click.echo(f"sap-agent: SAP logon failed: {error_of(exc).describe()}", err=True)
        raise SystemExit(1) from None
    click.echo(f"sap-agent: reached SAP {reached}", err=True)
    if check_only:
        return
    app = AgentApp(config, connect)
    options = tls_options(config)
    listen_host, listen_port = host or config.listen.host, port or config.listen.port
    shown = config.shown()
    click.echo(f"sap-agent: serving protocol v1 on {'https' if config.tls else 'http'}://{listen_host}:{listen_port} "
               f"for {shown.get('ashost') or shown.get('mshost') or shown.get('dest', 'SAP')} client "
               f"{shown.get('client', '?')} (pool {config.pool.size})", err=True)
    # log_config=None: uvicorn's lines go through the command's own logging (format, redaction)
    uvicorn.run(app.create_app(), host=listen_host, port=listen_port, log_level="warning", log_config=None, **options)
