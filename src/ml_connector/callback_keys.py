"""Accounts whose webhooks cannot be verified, and what `validate` and `run` do about them.

Twilio signs every webhook (status callbacks, inbound messages) with the account's primary Auth
Token; an API key (SK... + secret) can send messages but cannot check those signatures. An
account configured with an API key only still sends: its delivery statuses come from the status
sweep (`dispatcher.status_check_after`), which asks Twilio for each message's status. When no
account has an Auth Token the web role has nothing to verify callbacks with, so `run` with the
default roles starts the other roles with one warning instead of refusing to start; asking for
`--role web` explicitly stays an error.
"""

from __future__ import annotations

from collections.abc import Sequence

from ml_connector.config import Config

WEB = "web"


def accounts_without_auth_token(config: Config) -> list[str]:
    """The Twilio accounts configured with an API key only, by name."""
    return [name for name, account in config.twilio.accounts.items() if account.auth_token is None]


def validate_warnings(config: Config) -> list[str]:
    """What `validate` says about unverifiable callbacks (warnings: the config is valid)."""
    missing = accounts_without_auth_token(config)
    if not missing:
        return []
    sweep = config.dispatcher.status_check_after
    warnings = [
        f"twilio.accounts.{name}: no auth_token (API key only): Twilio signs callbacks with the Auth Token, "
        f"so this account's status callbacks cannot be verified; its delivery statuses come from the "
        f"status sweep (messages not final after {sweep} are looked up)"
        for name in missing
    ]
    if len(missing) == len(config.twilio.accounts):
        warnings.append("no Twilio account has an auth_token: `ml-connector run` starts without the web role "
                        "(no webhooks); poller and dispatcher run")
    return warnings


def runnable_roles(config: Config, chosen: Sequence[str], explicit: bool) -> tuple[tuple[str, ...], str | None]:
    """The roles `run` starts, and the one warning to show (None: nothing to say).

    Without any Auth Token the web role is dropped from the default roles; an explicit
    `--role web` is kept, so the webhook app refuses to start with its own clear error.
    """
    if WEB not in chosen or explicit or accounts_without_auth_token(config) != list(config.twilio.accounts):
        return tuple(chosen), None
    roles = tuple(role for role in chosen if role != WEB)
    warning = ("no Twilio account has an auth_token (API key only): Twilio signs webhooks with the Auth Token, "
               "so callbacks cannot be verified and the web role is not started; delivery statuses come from "
               f"the status sweep. Running: {', '.join(roles)}")
    return roles, warning
