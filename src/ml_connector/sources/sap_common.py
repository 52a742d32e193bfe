"""What both SAP ECC modes share: where the system is, which client and language, who we are.

OData (Gateway over HTTP) and RFC (through the on-premises agent) reach the same SAP system,
so its client, logon language, credentials, TLS settings and the time zone of its clock are one
model. SAP stores DATS/TIMS as the system's wall time (not UTC), so `timezone` is required
knowledge about the customer's system, never guessed.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from ml_connector.core.redact import mask_url
from ml_connector.sources.fields import PhoneRegion, TimeZoneName
from ml_connector.tls import client_ssl_context


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SapConnection(_Model):
    """The SAP system: its HTTP base URL (Gateway host and port), client, language, credentials."""

    base_url: AnyHttpUrl | None = None        # e.g. https://sapgw.example.com:44300
    sap_client: str = Field(default="100", alias="client")
    sap_language: str = Field(default="EN", alias="language")
    username: str | None = None               # OData's logon; RFC mode: the agent holds the logon
    password: SecretStr | None = None
    timezone: TimeZoneName                     # the SAP system's clock (table TTZCU / STZAC)
    default_region: PhoneRegion = "US"
    verify_tls: bool = True
    ca_bundle: Path | None = None
    ca_bundle_only: bool = False  # trust only ca_bundle, not the system and certifi stores too
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    retry_delay: float = Field(default=1.0, ge=0)

    @field_validator("sap_client")
    @classmethod
    def _client(cls, value: str) -> str:
        if not (len(value) == 3 and value.isdigit()):
            raise ValueError(f"an SAP client is three digits (e.g. '100'), got {value!r}")
        return value

    @field_validator("sap_language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not (1 <= len(value) <= 2 and value.isalpha()):
            raise ValueError(f"an SAP logon language is a one- or two-letter code (EN, DE, E), got {value!r}")
        return value.upper()

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (mask_url(str(value)) if name == "base_url" and value else value)


def tls_context(connection: SapConnection) -> ssl.SSLContext | bool:
    """Verification on by default; a corporate CA bundle (SAP Web Dispatcher's CA) adds to the
    system and certifi stores, or replaces them with `ca_bundle_only` (see ml_connector.tls)."""
    return client_ssl_context(verify=connection.verify_tls, ca_bundle=connection.ca_bundle,
                              ca_bundle_only=connection.ca_bundle_only)
