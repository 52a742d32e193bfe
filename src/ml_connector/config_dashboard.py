"""The `dashboard:` section: where the dashboard and REST API listen and who may sign in.

Apart from config.py so that the operator surface's settings stay in one small place. The
dashboard has its own listener (not the webhook one, which faces Twilio and the internet):
bind it to loopback or an internal address and put a TLS-terminating proxy in front of it.
"""

from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_connector.core.flowspec import Duration

__all__ = ["DashboardConfig", "SsoConfig"]


class SsoConfig(BaseModel):
    """A reverse proxy that authenticates people and names them in a header.

    The header is believed only on connections from `proxies` (addresses or networks); from
    anywhere else it is ignored, so a client cannot name itself.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    header: str = Field(default="X-Forwarded-User", min_length=1, pattern=r"^[A-Za-z0-9-]+$")
    proxies: list[IPv4Network | IPv6Network] = Field(min_length=1)
    #: Role of a person the proxy names who is not a local user (`users add` sets one otherwise).
    default_role: Literal["viewer", "operator"] = "viewer"

    @field_validator("proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        return [ip_network(str(v), strict=False) if isinstance(v, str) else v for v in value]

    def trusts(self, host: str | None) -> bool:
        """Whether a connection from `host` may name its user in the header."""
        if not host:
            return False
        try:
            address = ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)


class DashboardConfig(BaseModel):
    """The dashboard and REST API listener (served with the web role)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    #: How long a sign-in lasts; the signed session cookie expires with it.
    session_max_age: Duration = timedelta(hours=8)
    #: Send the session cookie only over HTTPS. Turn off only for plain-HTTP loopback use.
    secure_cookies: bool = True
    sso: SsoConfig | None = None
    #: Where an attempt's "Twilio console" link points; {sid} is replaced by the message SID.
    twilio_console_url: str = "https://console.twilio.com/us1/monitor/logs/sms/{sid}"
