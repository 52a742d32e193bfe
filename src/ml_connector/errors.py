"""The one exception tree of ml-connector. Every error says whether retrying can help.

    MlcError                      .retriable: bool
    ├── ConfigError               invalid configuration; names the file, line and key path
    ├── TemplateError             a template does not compile or render; names template and line
    ├── RecipientError            one recipient cannot be used (unparseable phone, no number)
    ├── StoreUnavailable          the database cannot be reached or stays locked (retriable: wait)
    ├── SourceError               an ERP call failed
    │   ├── SourceAuthError       credentials or session refused (not retriable)
    │   ├── SourceUnavailable     network, 5xx, timeouts (retriable)
    │   └── SourcePayloadError    the ERP answered something we cannot read (not retriable)
    └── DeliveryError             a provider call failed
        ├── TransientError        try again later (retry_after seconds if the provider said so)
        ├── PermanentError        will not succeed by retrying (provider code and reason kept)
        │   └── NotResent         a send may have happened and the provider cannot be asked
        │                         (SendGrid): at most once, so it fails instead of resending
        ├── InDoubtError          the request may have been accepted; reconcile before resending
        └── AccountError          the account's credentials or standing were refused: hold the
                                  account's sending until a probe succeeds (retriable once fixed)

Messages never carry secrets: build them from what is safe to show (see `core.redact`).
"""

from __future__ import annotations


class MlcError(Exception):
    """Base of every ml-connector error."""

    retriable: bool = False


class ConfigError(MlcError):
    """The configuration is invalid. `problems` lists each one as 'file:line: key.path: message'."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message if not problems else message + "\n" + "\n".join(problems))


class TemplateError(MlcError):
    """A template failed to compile or render. Stops its flow before anything is sent."""

    def __init__(self, template: str, line: int | None, message: str) -> None:
        self.template = template
        self.line = line
        where = f"{template}, line {line}" if line else template
        super().__init__(f"template {where}: {message}")


class RecipientError(MlcError):
    """One recipient is unusable; fails that notification only, never the batch."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"recipient from {field!r}: {reason}")


class StoreUnavailable(MlcError):
    """The store's database cannot be reached (restart, network) or stays locked beyond the busy
    timeout. Nothing was written by the failed transaction: wait, reconnect and do it again."""

    retriable = True


class SourceError(MlcError):
    """An ERP source call failed."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class SourceAuthError(SourceError):
    """The ERP refused our credentials or session (after one re-login)."""


class SourceUnavailable(SourceError):
    """The ERP could not be reached or answered 5xx; the poll is retried later."""

    retriable = True


class SourcePayloadError(SourceError):
    """The ERP answered something we cannot interpret; nothing from that page is used."""


class DeliveryError(MlcError):
    """A channel/provider call failed."""

    def __init__(self, reason: str, *, code: int | None = None, status: int | None = None) -> None:
        self.reason = reason
        self.code = code
        self.status = status
        prefix = f"[{code}] " if code is not None else ""
        super().__init__(prefix + reason)


class TransientError(DeliveryError):
    """Retrying later can succeed. `retry_after` is the provider's hint in seconds, if any."""

    retriable = True

    def __init__(
        self,
        reason: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        slow_down: bool = False,
    ) -> None:
        self.retry_after = retry_after
        self.slow_down = slow_down
        super().__init__(reason, code=code, status=status)


class PermanentError(DeliveryError):
    """Retrying will not help (bad number, opted out, auth, geo permissions...)."""


class NotResent(PermanentError):
    """The send's outcome is unknown and the provider offers no way to look it up: the channel
    chose at-most-once, so the notification fails with this reason instead of being sent again
    (and perhaps twice)."""


class InDoubtError(DeliveryError):
    """The request left and its outcome is unknown: look the message up before sending again."""

    retriable = True


class AccountError(DeliveryError):
    """The provider refused the account itself (bad or rotated credentials, suspended account,
    test credentials): nothing was sent, and no message of that account can be until the account
    is fixed. Not the message's fault: its notification waits, using none of its retry budget."""

    retriable = True
