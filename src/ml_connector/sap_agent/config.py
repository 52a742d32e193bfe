"""The agent's configuration file (YAML, `${NAME}` and `${NAME:-default}` from the environment)::

    listen: {host: 0.0.0.0, port: 8950}
    token: ${MLC_SAP_AGENT_TOKEN}           # the connector's bearer token (compared in constant time)
    tls:                                    # optional: HTTPS, and mutual TLS with client_ca
      cert: /etc/mlc-agent/agent.pem
      key: /etc/mlc-agent/agent.key
      client_ca: /etc/mlc-agent/connector-ca.pem
    pool: {size: 5, acquire_timeout: 10}    # RFC connections (each one a dialog work process in use)
    session_idle_timeout: 300
    codepage: "4110"                        # passed to the RFC SDK as CODEPAGE (ABAP_AS_CODEPAGE in JCo)
    sap:                                    # RFC connection parameters, passed through to pyrfc
      ashost: sapecd01.corp.example
      sysnr: "00"
      client: "100"
      user: MLC_RFC
      passwd: ${SAP_RFC_PASSWORD}
      lang: EN
    allowed_functions: [RFC_READ_TABLE, ...]   # default: what ml-connector calls

The SAP password stays here: the agent never returns it, logs it or puts it in an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from ml_connector.errors import ConfigError

DEFAULT_FUNCTIONS = ("RFC_READ_TABLE", "RFC_SYSTEM_INFO", "DDIF_FIELDINFO_GET", "BAPI_PO_GETDETAIL1",
                     "BAPI_VENDOR_GETDETAIL", "BAPI_TRANSACTION_COMMIT", "BAPI_TRANSACTION_ROLLBACK")
_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_PARAMS = frozenset({"passwd", "password", "snc_myname", "snc_partnername", "x509cert", "mysapsso2",
                            "snc_lib", "gwserv_password"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Listen(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8950, ge=1, le=65535)


class Tls(_Model):
    cert: Path
    key: Path
    client_ca: Path | None = None    # set: a client certificate signed by this CA is required


class Pool(_Model):
    size: int = Field(default=5, ge=1, le=50)
    acquire_timeout: float = Field(default=10.0, ge=0)


class AgentConfig(_Model):
    listen: Listen = Listen()
    token: SecretStr | None = None
    tls: Tls | None = None
    pool: Pool = Pool()
    session_idle_timeout: float = Field(default=300.0, gt=0)
    codepage: str | None = None
    sap: dict[str, SecretStr] = Field(min_length=1)
    allowed_functions: list[str] = Field(default_factory=lambda: list(DEFAULT_FUNCTIONS), min_length=1)

    @field_validator("allowed_functions")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [name.strip().upper() for name in value]

    @model_validator(mode="after")
    def _auth(self) -> AgentConfig:
        if self.token is None and (self.tls is None or self.tls.client_ca is None):
            raise ValueError("set token, or tls.client_ca (mutual TLS): the agent must authenticate the connector")
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("token: at least 16 characters (e.g. `openssl rand -hex 32`)")
        if self.codepage is not None and not self.codepage.isdigit():
            raise ValueError(f"codepage: an SAP code page number such as 4110 (UTF-8), got {self.codepage!r}")
        return self

    def connection_params(self) -> dict[str, str]:
        """What pyrfc.Connection gets: the `sap` parameters, with CODEPAGE when configured."""
        params = {key.lower(): value.get_secret_value() for key, value in self.sap.items()}
        if self.codepage is not None:
            params["codepage"] = self.codepage
        return params

    def shown(self) -> dict[str, str]:
        """The connection parameters that may be shown (never passwords, SNC names, tickets)."""
        return {k: v for k, v in self.connection_params().items() if k not in _SECRET_PARAMS}


def _interpolate(value: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            found = env.get(name)
            if found:
                return found
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return _REFERENCE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}[{n}]", problems) for n, v in enumerate(value)]
    return value


_WIDTHS = {"sysnr": 2, "client": 3}


def _plain(value: Any) -> Any:
    """SAP connection parameters are strings; YAML reads ``sysnr: 00`` and ``client: 010`` as numbers,
    so those get their zeros back."""
    if not isinstance(value, dict):
        return value
    return {k: (f"{v:0{_WIDTHS[str(k).lower()]}d}" if isinstance(v, int) and str(k).lower() in _WIDTHS else str(v))
            for k, v in value.items()}


def load_agent_config(path: Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate the agent's file; errors name the file and the key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    problems: list[str] = []
    data = _interpolate(raw, os.environ if env is None else env, "", problems)
    if problems:
        raise ConfigError(f"{path}: invalid agent configuration", [f"{path}: {p}" for p in problems])
    if isinstance(data.get("sap"), dict):
        data["sap"] = _plain(data["sap"])
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        found = [f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path}: invalid agent configuration", found) from None
