"""Channel sections of a Twilio account: `email_senders:` (Twilio SendGrid) and `webhook_endpoints:`.

    twilio:
      accounts:
        main:
          ...
          email_senders:
            vendor-mail:
              from: purchasing@example.com
              from_name: Purchasing
              reply_to: buyers@example.com
              api_key: ${SENDGRID_API_KEY}          # a Mail Send key of this sender's SendGrid account
              event_public_key: ${SENDGRID_EVENT_KEY}  # Event Webhook verification key (base64 DER)
              categories: [ml-connector]
              rate: 10                               # mails per second

A flow with `channel: email` names one as `sender: main.vendor-mail`. Each sender has its own key
(SendGrid keys are per account or subuser, scoped by permission), so a refused key fails that
sender's mails with the reason, never the account's SMS.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, SecretStr, field_validator

from ml_connector.channels.sendgrid_signature import load_public_key
from ml_connector.compliance.emails import normalise_email
from ml_connector.errors import RecipientError

__all__ = ["EmailSender", "WebhookEndpointConfig"]


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalise_email(value, "", "address")
    except RecipientError as exc:
        raise ValueError(exc.reason) from None


class EmailSender(BaseModel):
    """One sending identity on SendGrid: a verified from address and the API key that sends."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    from_name: str | None = Field(default=None, max_length=200)
    reply_to: str | None = None
    api_key: SecretStr
    event_public_key: str | None = None
    base_url: str = "https://api.sendgrid.com"
    categories: list[str] = Field(default_factory=list, max_length=9)
    rate: PositiveFloat = 10.0
    verify_tls: bool = True

    @field_validator("from_", "reply_to")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        return _address(value)

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty (is its environment variable set?)")
        return value

    @field_validator("event_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is not None:
            load_public_key(value)  # ValueError says what is wrong, never the key
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http:// or https:// URL with a host and no query")
        return value.rstrip("/")

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        if any(not c.strip() or len(c) > 255 for c in value):
            raise ValueError("each category is 1-255 characters")
        return value


class WebhookEndpointConfig(BaseModel):
    """A customer endpoint that outbound webhook flows post to (`channel: webhook`), signed the
    Standard Webhooks way with `secret` ("whsec_" + base64, from ${ENV})."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    secret: SecretStr
    timeout: PositiveFloat = 10.0
    rate: PositiveFloat = 10.0
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise ValueError("must be an http(s) URL with a host and no credentials")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("must use https; plain http is only allowed for loopback hosts")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip().removeprefix("whsec_")
        try:
            raw = base64.b64decode(text + "==", validate=False)
        except ValueError:
            raw = b""
        if len(raw) < 16:
            raise ValueError("must be 'whsec_' followed by base64 of at least 16 random bytes")
        return value
