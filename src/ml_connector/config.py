"""The YAML configuration as frozen pydantic models, and the loader that reports every problem at once.

ERP admins edit this file by hand, so the loader's job is to make mistakes cheap: every problem
(syntax, duplicate keys, missing environment variables, wrong types, dangling references between
sections) is collected and raised together as one `ConfigError`, each line formatted
``file:line: key.path: message`` so an editor can jump straight to it.

Pipeline: read -> compose YAML (node marks give a key-path -> line index, and reveal duplicate keys
PyYAML would silently overwrite) -> construct plain data -> ``${NAME}`` / ``${NAME:-default}``
interpolation of string values, and ``${secret:NAME}`` from the store (store.secrets)
-> pydantic validation (relative paths resolved against the
config file's directory via the validation context) -> pydantic error locations mapped back to
key paths and lines, with union noise reduced to the most specific alternative.

Environment variables (one prefix, `MLC_`): see `env_settings()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

from ml_connector.audit_config import AuditConfig
from ml_connector.config_channels import EmailSender, WebhookEndpointConfig
from ml_connector.config_dashboard import DashboardConfig
from ml_connector.config_ops import ADMIN_PORT_ENV, AdminConfig, LoggingConfig
from ml_connector.core.flowspec import OPERATORS, Duration, FlowSpec, LookupRecipient
from ml_connector.core.members import MembersRecipient
from ml_connector.core.redact import mask_url
from ml_connector.core.routing import routed_lookups
from ml_connector.errors import ConfigError, MlcError
from ml_connector.sources import registry
from ml_connector.yaml_guard import check_alias_budget

# --------------------------------------------------------------------------------------------
# Environment settings
# --------------------------------------------------------------------------------------------

CONFIG_ENV = "MLC_CONFIG"
MASTER_KEY_ENV = "MLC_MASTER_KEY"
DEFAULT_CONFIG_FILE = Path("ml-connector.yaml")


@dataclass(frozen=True, slots=True)
class EnvSetting:
    """One environment variable ml-connector reads itself (the CLI shows these in --help)."""

    name: str
    help: str


_ENV_SETTINGS: tuple[EnvSetting, ...] = (
    EnvSetting(CONFIG_ENV, f"path of the configuration file (default: ./{DEFAULT_CONFIG_FILE})"),
    EnvSetting(
        MASTER_KEY_ENV,
        "encryption key(s) for data at rest, current first, comma-separated; used instead of store.key_file",
    ),
    EnvSetting(
        "MLC_WEBHOOK_PORT",
        "webhook listener port for this process; overrides webhooks.port (several processes on one machine)",
    ),
    EnvSetting(
        ADMIN_PORT_ENV,
        "admin listener port (/healthz, /readyz, /metrics) for this process; overrides admin.port",
    ),
    EnvSetting(
        "MLC_EVENT_LOOP",
        "event loop: auto (uvloop where installed, the default), uvloop, or asyncio (to rule uvloop out)",
    ),
)


def env_settings() -> tuple[EnvSetting, ...]:
    """The variables read outside the config file. Everything else goes through ``${NAME}`` in it."""
    return _ENV_SETTINGS


def default_config_path(env: Mapping[str, str]) -> Path:
    """`$MLC_CONFIG` when set and non-empty, else ./ml-connector.yaml."""
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


# --------------------------------------------------------------------------------------------
# Small value helpers
# --------------------------------------------------------------------------------------------

_SQLITE_URL = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?:///)(?P<rest>.*)$", re.DOTALL)
_DB_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite file path absolute against `base_dir`; other URLs are returned as is.

    ``sqlite:///x.db`` is relative in SQLAlchemy's URL syntax: relative to the process's working
    directory, which for a service is rarely where the admin put the config. Anchoring it to the
    config file's directory makes `ml-connector run` behave the same from any directory.
    """
    match = _SQLITE_URL.match(url)
    if match is None:
        return url
    path, sep, query = match.group("rest").partition("?")
    if path in ("", ":memory:") or path.startswith("file:") or Path(path).is_absolute():
        return url
    return f"{match.group('scheme')}{base_dir / path}{sep}{query}"


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context
    base = context.get("base_dir") if isinstance(context, Mapping) else None
    return base if isinstance(base, Path) else None


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    return value.rstrip("/")


#: An http(s) base URL kept as a string without trailing slash, so clients can append "/path".
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]


def _frozen_config() -> ConfigDict:
    return ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class StoreConfig(BaseModel):
    """Where ml-connector keeps its outbox, watermarks and audit, and the data-at-rest key."""

    model_config = _frozen_config()

    url: str = "sqlite:///ml-connector.db"
    key_file: Path = Path("ml-connector.key")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        if not _DB_URL.match(value):
            raise ValueError(
                "must be a database URL such as sqlite:///ml-connector.db or postgresql://user@host/db"
            )
        base = _base_dir(info)
        return resolve_sqlite_url(value, base) if base else value

    @field_validator("key_file")
    @classmethod
    def _key_file(cls, value: Path, info: ValidationInfo) -> Path:
        base = _base_dir(info)
        return base / value if base and not value.is_absolute() else value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The URL may carry a database password: show it masked."""
        for name, value in super().__repr_args__():
            yield name, (mask_url(value) if name == "url" and isinstance(value, str) else value)


class WebhookConfig(BaseModel):
    """The webhook listener, and the public URL Twilio calls (signatures are computed over it)."""

    model_config = _frozen_config()

    public_url: AnyHttpUrl | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    status_path: str = "/twilio/status"
    #: Where Twilio posts texts people send to our numbers (set it as the number's or Messaging
    #: Service's incoming-message webhook: public_url + inbound_path).
    inbound_path: str = "/twilio/inbound"
    max_body_bytes: int = Field(default=65536, ge=1024)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is None:
            return None
        if value.query or value.fragment:
            raise ValueError("must not have a query string or fragment")
        if value.host and "_" in value.host:
            # Twilio rejects StatusCallback hosts with underscores (error 21609).
            raise ValueError("host name must not contain '_' (Twilio rejects such callback URLs)")
        return value

    @field_validator("status_path", "inbound_path")
    @classmethod
    def _status_path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("must be a path starting with '/', without query string")
        return value

    @property
    def status_callback_url(self) -> str | None:
        """public_url + status_path with exactly one '/' between them; None without public_url."""
        if self.public_url is None:
            return None
        return str(self.public_url).rstrip("/") + "/" + self.status_path.lstrip("/")

    @property
    def inbound_url(self) -> str | None:
        if self.public_url is None:
            return None
        return str(self.public_url).rstrip("/") + "/" + self.inbound_path.lstrip("/")

    @model_validator(mode="after")
    def _distinct_paths(self) -> WebhookConfig:
        if self.inbound_path.rstrip("/") == self.status_path.rstrip("/"):
            raise ValueError("inbound_path and status_path must differ")
        return self


class ConversationsConfig(BaseModel):
    """What ml-connector answers to texts people send, and how far an opt-out reaches."""

    model_config = _frozen_config()

    #: The answer to HELP / INFO (who sends these texts and how to stop them).
    help_text: str | None = None
    #: Our own confirmations; off by default because Twilio's opt-out handling answers itself.
    opt_out_reply: str | None = None
    opt_in_reply: str | None = None
    #: `sender`: STOP stops texts from the number (or Messaging Service) written to, as Twilio
    #: does; `everywhere`: from every sender of this deployment.
    opt_out_scope: Literal["sender", "everywhere"] = "sender"
    #: Extra keywords (e.g. localised ones) on top of Twilio's.
    opt_out_keywords: list[str] = []
    opt_in_keywords: list[str] = []
    help_keywords: list[str] = []


SenderKind = Literal["long_code", "toll_free", "short_code", "alphanumeric", "messaging_service"]
FromFormat = Literal["e164", "short_code", "alphanumeric"]

#: Shapes of a `from` value, most specific first. Toll-free: the NANP toll-free area codes.
_FROM_FORMATS: tuple[tuple[FromFormat, re.Pattern[str]], ...] = (
    ("short_code", re.compile(r"^\d{5,6}$")),
    ("e164", re.compile(r"^\+[1-9]\d{6,14}$")),
    ("alphanumeric", re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")),
)
_NANP_TOLL_FREE = re.compile(r"^\+1(800|833|844|855|866|877|888)\d{7}$")
_MESSAGING_SERVICE_SID = r"^MG[0-9a-fA-F]{32}$"

#: Which `from` shapes each kind accepts (messaging_service takes messaging_service_sid instead).
_KIND_ACCEPTS: Mapping[SenderKind, frozenset[FromFormat]] = {
    "long_code": frozenset({"e164"}),
    "toll_free": frozenset({"e164"}),
    "short_code": frozenset({"short_code"}),
    "alphanumeric": frozenset({"alphanumeric"}),
    "messaging_service": frozenset(),
}

#: Messages per second (segments) Twilio drains from one sender's queue by default.
DEFAULT_MPS: Mapping[SenderKind, float] = {
    "long_code": 1.0,
    "toll_free": 3.0,
    "short_code": 100.0,
    "alphanumeric": 1.0,
    "messaging_service": 1.0,  # per pool number
}


def _from_format(value: str) -> FromFormat | None:
    return next((name for name, pattern in _FROM_FORMATS if pattern.match(value)), None)


def _infer_kind(from_: str) -> SenderKind:
    fmt = _from_format(from_)
    if fmt == "e164":
        return "toll_free" if _NANP_TOLL_FREE.match(from_) else "long_code"
    inferred: Mapping[FromFormat | None, SenderKind] = {
        "short_code": "short_code",
        "alphanumeric": "alphanumeric",
    }
    return inferred.get(fmt, "long_code")


class Sender(BaseModel):
    """One sending identity: a number/short code/alphanumeric ID, or a Messaging Service pool."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = Field(default=None, pattern=_MESSAGING_SERVICE_SID)
    kind: SenderKind = Field(default=None, validate_default=True)
    mps: PositiveFloat | None = None
    pool_mps: list[PositiveFloat] | None = None
    pool_size: int = Field(default=1, ge=1)

    @field_validator("from_")
    @classmethod
    def _from_shape(cls, value: str | None) -> str | None:
        if value is not None and _from_format(value) is None:
            # The value itself is a phone number: never echo it.
            raise ValueError(
                "must be an E.164 number (+15551234567), a 5-6 digit short code, or an alphanumeric "
                "sender ID (1-11 letters, digits or spaces, at least one letter)"
            )
        return value

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            return value
        if info.data.get("messaging_service_sid"):
            return "messaging_service"
        from_ = info.data.get("from_")
        if from_:
            return _infer_kind(from_)
        return "long_code"  # nothing to infer from; the model check reports the missing sender

    @model_validator(mode="after")
    def _consistent(self) -> Sender:
        if (self.from_ is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of 'from' or 'messaging_service_sid'")
        if self.kind == "messaging_service":
            if self.messaging_service_sid is None:
                raise ValueError("kind messaging_service needs messaging_service_sid (MG...)")
        elif self.from_ is None or _from_format(self.from_) not in _KIND_ACCEPTS[self.kind]:
            raise ValueError(f"kind {self.kind} does not match the shape of 'from'")
        pool_keys = {"pool_mps", "pool_size"} & self.model_fields_set
        if pool_keys and self.kind != "messaging_service":
            raise ValueError(f"{', '.join(sorted(pool_keys))} only apply to a messaging service")
        return self

    @property
    def address(self) -> str:
        """What goes into the send request: the From value or the Messaging Service SID."""
        return self.from_ if self.from_ is not None else str(self.messaging_service_sid)

    @property
    def effective_mps(self) -> float:
        """Pacing rate: `mps` if set, else the kind's default (a pool: sum of pool_mps or 1/number)."""
        if self.mps is not None:
            return self.mps
        if self.kind == "messaging_service":
            return sum(self.pool_mps) if self.pool_mps else self.pool_size * DEFAULT_MPS[self.kind]
        return DEFAULT_MPS[self.kind]


class TwilioBaseUrls(BaseModel):
    """Twilio API hosts; override them to point at a simulator or an egress proxy."""

    model_config = _frozen_config()

    api: BaseUrl = "https://api.twilio.com"
    messaging: BaseUrl = "https://messaging.twilio.com"
    verify: BaseUrl = "https://verify.twilio.com"
    lookups: BaseUrl = "https://lookups.twilio.com"


class TwilioAccount(BaseModel):
    """One Twilio account (or subaccount): credentials, hosts, TLS, concurrency and its senders."""

    model_config = _frozen_config()

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr | None = None
    api_key_sid: str | None = Field(default=None, pattern=r"^SK[0-9a-fA-F]{32}$")
    api_key_secret: SecretStr | None = None
    base_urls: TwilioBaseUrls = TwilioBaseUrls()
    concurrency: int = Field(default=100, ge=1, le=10_000)
    ca_bundle: Path | None = None
    #: Trust only ca_bundle, not the system and certifi stores it otherwise adds to.
    ca_bundle_only: bool = False
    verify_tls: bool = True
    senders: dict[str, Sender] = Field(default_factory=dict)
    email_senders: dict[str, EmailSender] = Field(default_factory=dict)  # config_channels
    webhook_endpoints: dict[str, WebhookEndpointConfig] = Field(default_factory=dict)  # config_channels
    #: Voice flows: calls this account starts per second (Twilio's default CPS is 1).
    calls_per_second: PositiveFloat = 1.0

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = _base_dir(info)
        path = base / value if base and not value.is_absolute() else value
        if not path.is_file():
            raise ValueError(f"CA bundle file not found: {path}")
        return path

    @model_validator(mode="after")
    def _credentials(self) -> TwilioAccount:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together: set both or neither")
        if self.auth_token is None and self.api_key_sid is None:
            raise ValueError("needs credentials: auth_token, or api_key_sid + api_key_secret")
        for name, secret in (("auth_token", self.auth_token), ("api_key_secret", self.api_key_secret)):
            if secret is not None and not secret.get_secret_value().strip():
                raise ValueError(f"{name} is empty (is its environment variable set?)")
        if self.ca_bundle is not None and not self.verify_tls:
            raise ValueError("ca_bundle is set but verify_tls is false; remove one of them")
        if self.ca_bundle_only and self.ca_bundle is None:
            raise ValueError("ca_bundle_only is set but ca_bundle is not: name the CA bundle to trust")
        return self


class TwilioConfig(BaseModel):
    """Twilio accounts by name; flows pick a sender as "<account>.<sender>"."""

    model_config = _frozen_config()

    accounts: dict[str, TwilioAccount] = Field(min_length=1)


class DispatcherConfig(BaseModel):
    """How the dispatcher claims and sends outbox rows."""

    model_config = _frozen_config()

    #: Notifications this process works on at once, from claim until the attempt is recorded.
    #: Requests to Twilio are bounded by each account's `concurrency`; twice that here keeps an
    #: account's requests in flight while earlier attempts are being recorded.
    concurrency: int = Field(default=200, ge=1, le=10_000)
    lease: Duration = timedelta(seconds=60)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    idle_poll: Duration = timedelta(milliseconds=200)
    #: A message this long without its final status callback gets its status fetched from Twilio.
    status_check_after: Duration = timedelta(minutes=10)
    #: At a graceful stop, how long pending write-backs to the ERP may still be sent; what is
    #: left stays queued and is sent at the next start.
    shutdown_grace: Duration = timedelta(seconds=10)
    #: How often an account whose sending is held (Twilio refused its credentials) is probed.
    account_probe_every: Duration = timedelta(seconds=30)

    @field_validator("lease", "idle_poll", "status_check_after", "shutdown_grace", "account_probe_every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


# --------------------------------------------------------------------------------------------
# Cross-references between sections
# --------------------------------------------------------------------------------------------

Loc = tuple[str | int, ...]

_SIGNED_CALLBACKS_NEED_AUTH = (
    "auth_token is required because webhooks.public_url is set: Twilio signs status callbacks with "
    "the account's primary Auth Token, and an API key cannot validate those signatures"
)


def _names(items: Collection[str]) -> str:
    return ", ".join(sorted(items)) or "(none)"


def _reference_problems(
    flows: Mapping[str, FlowSpec],
    source_entities: Mapping[str, Collection[str] | None],
    senders: Mapping[str, Collection[str] | None],
    email_senders: Mapping[str, Collection[str] | None] | None = None,
    endpoints: Mapping[str, Collection[str] | None] | None = None,
) -> list[tuple[Loc, str]]:
    """Dangling names in flows. `None` entities/senders mean "unknown here": not checked.
    Email flows name an account's `email_senders`, other flows its `senders`."""
    problems: list[tuple[Loc, str]] = []
    for name, flow in flows.items():
        where: Loc = ("flows", name)
        if flow.source not in source_entities:
            problems.append(
                ((*where, "source"), f"unknown source {flow.source!r}; sources: {_names(source_entities)}")
            )
        else:
            entities = source_entities[flow.source]
            lookups = [
                ((*where, "recipients", i, "lookup", "entity"), r.lookup.entity)
                for i, r in enumerate(flow.recipients)
                if isinstance(r, LookupRecipient)
            ] + [
                ((*where, "recipients", i, "members", "entity"), r.members.entity)
                for i, r in enumerate(flow.recipients)
                if isinstance(r, MembersRecipient)
            ]
            lookups += routed_lookups(flow.routing_table, where)
            for loc, entity in [((*where, "entity"), flow.entity), *lookups]:
                if entities is not None and entity not in entities:
                    message = f"source {flow.source!r} has no entity {entity!r}; entities: {_names(entities)}"
                    problems.append((loc, message))
        account, dot, sender = flow.sender.partition(".")
        loc = (*where, "sender")
        known_senders = email_senders if flow.channel == "email" and email_senders is not None else senders
        if flow.channel == "webhook" and endpoints is not None:
            known_senders = endpoints
        if not dot or not account or not sender:
            problems.append((loc, "must be '<account>.<sender>' naming an entry of twilio.accounts"))
        elif account not in known_senders:
            problems.append((loc, f"unknown Twilio account {account!r}; accounts: {_names(known_senders)}"))
        elif (known := known_senders[account]) is not None and sender not in known:
            kind = ("email sender" if known_senders is email_senders else
                    "webhook endpoint" if known_senders is endpoints else "sender")
            problems.append((loc, f"account {account!r} has no {kind} {sender!r}; {kind}s: {_names(known)}"))
    return problems


def _token_problems(accounts: Mapping[str, TwilioAccount], public_url_set: bool) -> list[tuple[Loc, str]]:
    if not public_url_set:
        return []
    return [
        (("twilio", "accounts", name, "auth_token"), _SIGNED_CALLBACKS_NEED_AUTH)
        for name, account in accounts.items()
        if account.auth_token is None
    ]


def _raise_problems(title: str, problems: Sequence[tuple[Loc, str]]) -> None:
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [InitErrorDetails(type=PydanticCustomError("reference", msg), loc=loc, input=None)
             for loc, msg in problems],
        )


# --------------------------------------------------------------------------------------------
# The whole file
# --------------------------------------------------------------------------------------------


def _validate_source(name: str, raw: Any, context: Any) -> BaseModel:
    """Validate one source section with the model registered for its `type:`."""
    if isinstance(raw, BaseModel):
        return raw
    known = _names(registry.SOURCE_TYPES)
    if not isinstance(raw, Mapping):
        raise _one_error((name,), f"expected a mapping with a 'type' key (one of: {known})")
    type_name = raw.get("type")
    if type_name is None:
        raise _one_error((name, "type"), f"missing; known source types: {known}")
    if not isinstance(type_name, str) or type_name not in registry.SOURCE_TYPES:
        raise _one_error((name, "type"), f"unknown source type {type_name!r}; known types: {known}")
    try:
        model = registry.config_model(type_name)
    except (ImportError, AttributeError) as exc:
        raise _one_error((name, "type"), f"source type {type_name!r} is not available: {exc}") from None
    data = dict(raw)
    base = context.get("base_dir") if isinstance(context, Mapping) else None
    if isinstance(base, Path) and isinstance(data.get("url"), str):
        data["url"] = resolve_sqlite_url(data["url"], base)
    try:
        validated: BaseModel = model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ValidationError.from_exception_data(
            "source",
            [
                InitErrorDetails(
                    type=PydanticCustomError(err["type"], err["msg"]),
                    loc=(name, *err["loc"]),
                    input=err.get("input"),
                )
                for err in exc.errors(include_url=False)
            ],
        ) from None
    return validated


def _one_error(loc: Loc, message: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "source", [InitErrorDetails(type=PydanticCustomError("source", message), loc=loc, input=None)]
    )


class Config(BaseModel):
    """The whole configuration file. Build it with `load_config` to get line-numbered errors."""

    model_config = _frozen_config()

    version: Literal[1] = 1
    store: StoreConfig = StoreConfig()
    webhooks: WebhookConfig = WebhookConfig()
    twilio: TwilioConfig
    sources: dict[str, Any] = Field(min_length=1)
    flows: dict[str, FlowSpec] = Field(min_length=1)
    dispatcher: DispatcherConfig = DispatcherConfig()
    audit: AuditConfig = AuditConfig()
    dashboard: DashboardConfig | None = None  # served with the web role when present
    admin: AdminConfig = AdminConfig()
    logging: LoggingConfig = LoggingConfig()
    conversations: ConversationsConfig = ConversationsConfig()
    path: SkipJsonSchema[Path] = Field(exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _store_default(cls, data: Any) -> Any:
        """Validate a missing store section too, so its relative paths get resolved."""
        if isinstance(data, Mapping) and "store" not in data:
            return {**data, "store": {}}
        return data

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, Mapping):
            return value  # the dict type check reports it
        validated: dict[str, Any] = {}
        errors: list[InitErrorDetails] = []
        for name, raw in value.items():
            try:
                validated[name] = _validate_source(name, raw, info.context)
            except ValidationError as exc:
                errors.extend(
                    InitErrorDetails(
                        type=PydanticCustomError(err["type"], err["msg"]), loc=err["loc"], input=None
                    )
                    for err in exc.errors(include_url=False)
                )
        if errors:
            raise ValidationError.from_exception_data("sources", errors)
        return validated

    @model_validator(mode="after")
    def _references(self) -> Config:
        problems = _reference_problems(
            self.flows,
            {name: _entity_names(src) for name, src in self.sources.items()},
            {name: set(acct.senders) for name, acct in self.twilio.accounts.items()},
            {name: set(acct.email_senders) for name, acct in self.twilio.accounts.items()},
            {name: set(acct.webhook_endpoints) for name, acct in self.twilio.accounts.items()},
        )
        problems += _token_problems(self.twilio.accounts, self.webhooks.public_url is not None)
        _raise_problems("Config", problems)
        return self

    def sender(self, ref: str) -> tuple[TwilioAccount, Sender]:
        """The account and sender a flow's `sender: "<account>.<sender>"` names (validated)."""
        account, _, name = ref.partition(".")
        acct = self.twilio.accounts[account]
        return acct, acct.senders[name]


def _entity_names(source: Any) -> Collection[str] | None:
    named = getattr(source, "entity_names", None)  # a source whose entities depend on its mode
    if callable(named):
        return set(named())
    entities = getattr(source, "entities", None)
    return set(entities) if isinstance(entities, Mapping) else None


# --------------------------------------------------------------------------------------------
# YAML: parse, index lines, detect duplicates
# --------------------------------------------------------------------------------------------

LineIndex = dict[tuple[str, ...], int]


@dataclass(frozen=True, slots=True)
class _Parsed:
    data: Any
    lines: LineIndex
    duplicates: list[tuple[tuple[str, ...], int, int]]  # path, line, first line


def _parse_yaml(text: str) -> _Parsed:
    """Compose once: the node tree gives lines and duplicates, then construct the plain data."""
    lines: LineIndex = {(): 1}
    duplicates: list[tuple[tuple[str, ...], int, int]] = []
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return _Parsed(None, lines, duplicates)
        check_alias_budget(node)  # before any walk expands them
        # Index before constructing: construction flattens `<<` merge keys in place.
        lines[()] = node.start_mark.line + 1
        _index(node, (), lines, duplicates, set())
        return _Parsed(loader.construct_document(node), lines, duplicates)
    finally:
        loader.dispose()


def _index(
    node: yaml.Node,
    path: tuple[str, ...],
    lines: LineIndex,
    duplicates: list[tuple[tuple[str, ...], int, int]],
    active: set[int],
) -> None:
    if id(node) in active:  # recursive alias
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                _index_merge(value_node, path, lines, duplicates, active)
                continue
            key = key_node.value
            child = (*path, key)
            if key in seen:
                duplicates.append((child, line, seen[key]))
            seen[key] = line
            lines[child] = line
            _index(value_node, child, lines, duplicates, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines[child] = item.start_mark.line + 1
            _index(item, child, lines, duplicates, active)
    active.discard(id(node))


def _index_merge(
    node: yaml.Node,
    path: tuple[str, ...],
    lines: LineIndex,
    duplicates: list[tuple[tuple[str, ...], int, int]],
    active: set[int],
) -> None:
    """`<<: *anchor` keys: index the merged keys where no explicit key already sits."""
    merged = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for mapping in merged:
        scratch: LineIndex = {}
        _index(mapping, path, scratch, [], active)
        for key, line in scratch.items():
            lines.setdefault(key, line)


# --------------------------------------------------------------------------------------------
# ${NAME} interpolation
# --------------------------------------------------------------------------------------------

_REFERENCE = re.compile(
    r"\$(?P<escape>\$\{)"
    r"|\$\{secret:(?P<secret>[^}]*)\}"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bad>\$\{[^}]*\}?)"
)

#: Reads secrets from the store a config names: (store section, names) -> values of those found.
SecretReader = Callable[["StoreConfig", Collection[str]], Mapping[str, str]]


@dataclass(slots=True)
class _Secrets:
    """The `${secret:NAME}` references of one file: where each is used, then their values."""

    used: dict[str, list[Loc]]
    values: Mapping[str, str] | None = None
    unreadable: bool = False  # the store could not be read: each use has its problem already


def _interpolate(
    value: Any, env: Mapping[str, str], path: tuple[str | int, ...], problems: list[tuple[Loc, str]],
    secrets: _Secrets | None = None,
) -> Any:
    """Substitute ${NAME} / ${NAME:-default} / ${secret:NAME} in string values (never keys); $${ is
    a literal ${. Without `secrets.values`, secret references are noted and left as they are."""
    if isinstance(value, str):
        return _REFERENCE.sub(lambda m: _substitute(m, env, path, problems, secrets), value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, k), problems, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, i), problems, secrets) for i, v in enumerate(value)]
    return value


def _secret(match: re.Match[str], path: Loc, problems: list[tuple[Loc, str]], secrets: _Secrets | None) -> str:
    name = match.group("secret")
    if path[:1] == ("store",):
        problems.append((path, "${secret:...} cannot be used in the store section: the secrets are kept in "
                               "the store it configures"))
        return match.group(0)
    if secrets is None:
        return match.group(0)
    if secrets.values is None:
        secrets.used.setdefault(name, []).append(path)
        return match.group(0)
    if not _SECRET_NAME.fullmatch(name):
        problems.append((path, f"secret name {name!r} is not usable: use letters, digits, '_', '.' and '-' "
                               "(starting with a letter or '_')"))
        return match.group(0)
    value = secrets.values.get(name)
    if value is None and secrets.unreadable:
        return match.group(0)
    if value is None:
        problems.append((path, f"secret {name} is not set in the store "
                               f"(set it with `ml-connector secrets set {name}`)"))
        return match.group(0)
    return value


_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,199}")


def _substitute(
    match: re.Match[str], env: Mapping[str, str], path: Loc, problems: list[tuple[Loc, str]],
    secrets: _Secrets | None = None,
) -> str:
    if match.group("escape"):
        return "${"
    if match.group("secret") is not None:
        return _secret(match, path, problems, secrets)
    name = match.group("name")
    if name is None:
        problems.append((path, "malformed variable reference; write ${NAME} or ${NAME:-default} "
                               "(and $${ for a literal ${)"))
        return match.group(0)
    default = match.group("default")
    value = env.get(name)
    if default is not None and not value:
        return default
    if value is None:
        problems.append((path, f"environment variable {name} is not set "
                               f"(set it, or give a default: ${{{name}:-...}})"))
        return match.group(0)
    return value


# --------------------------------------------------------------------------------------------
# pydantic errors -> key paths, lines and plain messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    steps: tuple[tuple[bool, str | int], ...]  # (is_union_tag, key or index or tag)
    type: str
    message: str

    @property
    def keys(self) -> Loc:
        return tuple(value for is_tag, value in self.steps if not is_tag)


#: Error types whose last location element is a key absent from the data (not a union tag).
_ABSENT_KEY_ERRORS = frozenset({"missing", "reference"})


def _steps(loc: Loc, data: Any, error_type: str) -> tuple[tuple[bool, str | int], ...]:
    """Walk `loc` through the data: elements that are not keys/indices there are union tags."""
    steps: list[tuple[bool, str | int]] = []
    current = data
    for i, element in enumerate(loc):
        if isinstance(current, dict) and element in current:
            current = current[element]
        elif isinstance(current, list) and isinstance(element, int) and 0 <= element < len(current):
            current = current[element]
        elif not (i == len(loc) - 1 and error_type in _ABSENT_KEY_ERRORS):
            steps.append((True, element))
            continue
        steps.append((False, element))
    return tuple(steps)


def _first_tag(problem: _Problem) -> tuple[int, Loc, str | int] | None:
    for i, (is_tag, value) in enumerate(problem.steps):
        if is_tag:
            return i, tuple(v for t, v in problem.steps[:i] if not t), value
    return None


def _shape_misfits(problems: Sequence[_Problem], point: Loc) -> int:
    """How badly a union member misfits the input's own keys (unknown or missing right there)."""
    return sum(
        1 for p in problems
        if p.type in ("extra_forbidden", "missing") and len(p.keys) == len(point) + 1
    )


def _drop_union_noise(problems: list[_Problem]) -> list[_Problem]:
    """At each union, keep only the alternative that fits the input best (then recurse)."""
    while any(_first_tag(p) for p in problems):
        kept: list[_Problem] = [p for p in problems if _first_tag(p) is None]
        members: dict[Loc, dict[str | int, list[_Problem]]] = {}
        for p in problems:
            found = _first_tag(p)
            if found is not None:
                _, point, tag = found
                members.setdefault(point, {}).setdefault(tag, []).append(p)
        for point, by_tag in members.items():
            best = min(by_tag.values(), key=lambda ps: (_shape_misfits(ps, point), len(ps)))
            for p in best:
                index, _, _ = _first_tag(p) or (0, (), "")
                kept.append(_Problem(p.steps[:index] + p.steps[index + 1:], p.type, p.message))
        problems = kept
    return problems


_TRIGGER_HINT = (
    "; a condition is {field: NAME, <operator>: value} with one operator of "
    + ", ".join(OPERATORS) + ", or a group all: [...] / any: [...]"
)


def _plain_message(problem: _Problem) -> str:
    """Pydantic's wording, made plain. Pydantic messages never include the input value."""
    message = problem.message
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    rewrites: Mapping[str, Callable[[], str]] = {
        "missing": lambda: "required key is missing",
        "extra_forbidden": lambda: "unknown key" + (_TRIGGER_HINT if "trigger" in problem.keys else ""),
        "model_type": lambda: "expected a mapping (key: value)",
        "model_attributes_type": lambda: "expected a mapping (key: value)",
        "dict_type": lambda: "expected a mapping (key: value)",
        "list_type": lambda: "expected a list",
    }
    rewrite = rewrites.get(problem.type)
    return rewrite() if rewrite else message


def _key_path(keys: Loc) -> str:
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(top level)"


def _line(lines: LineIndex, keys: Loc) -> int:
    path = tuple(str(k) for k in keys)
    while path not in lines:
        path = path[:-1]
    return lines[path]


def _format(file: str, lines: LineIndex, keys: Loc, message: str) -> tuple[int, str]:
    line = _line(lines, keys)
    return line, f"{file}:{line}: {_key_path(keys)}: {message}"


# --------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------


def load_config(path: Path, env: Mapping[str, str], *, secrets: SecretReader | None = None) -> Config:
    """Read, interpolate and validate a config file; raise ConfigError listing every problem.

    `${secret:NAME}` values are read from the store the file's store section names (with the
    master key from `env` or its key file), unless `secrets` reads them some other way."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found", [f"{file}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{file}: cannot read configuration", [f"{file}: cannot read: {reason}"]) from None
    try:
        parsed = _parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML", [_yaml_problem(file, exc)]) from None

    found: list[tuple[int, str]] = [
        (line, f"{file}:{line}: {_key_path(dup)}: duplicate key (first defined on line {first})")
        for dup, line, first in parsed.duplicates
    ]
    data = parsed.data
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        found.append((1, f"{file}:{parsed.lines[()]}: (top level): must be a mapping of sections "
                         f"(twilio, sources, flows, ...), the file is {kind}"))
        _raise(file, found)

    base_dir = path.resolve().parent
    context = {"base_dir": base_dir, "config_path": path.resolve()}
    interpolation: list[tuple[Loc, str]] = []
    raw = data
    refs = _Secrets(used={})
    data = _interpolate(raw, env, (), interpolation, refs)
    store_problems: list[tuple[Loc, str]] = []
    if refs.used:
        refs.values = _secret_values(data, refs, context, env, secrets, store_problems)
        interpolation = []
        data = _interpolate(raw, env, (), interpolation, refs)
    interpolation += store_problems
    found += [_format(file, parsed.lines, loc, msg) for loc, msg in interpolation]
    if "path" in data:
        found.append(_format(file, parsed.lines, ("path",), "unknown key"))
        data = {k: v for k, v in data.items() if k != "path"}

    try:
        config = Config.model_validate({**data, "path": path.resolve()}, context=context)
    except ValidationError as exc:
        bad_paths = {loc for loc, _ in interpolation}
        found += [
            _format(file, parsed.lines, p.keys, _plain_message(p))
            for p in _pydantic_problems(exc, data)
            if not any(p.keys[: len(b)] == b for b in bad_paths)
        ]
        found += [_format(file, parsed.lines, loc, msg) for loc, msg in _partial_references(data, context)]
        _raise(file, found)
    if found:
        _raise(file, found)
    return config


def load_store_section(path: Path, env: Mapping[str, str]) -> StoreConfig:
    """Only the store section of a config file: what `secrets` and `keys` need, even while the
    rest of the file names secrets that are not set yet."""
    path = Path(path)
    file = str(path)
    try:
        parsed = _parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found", [f"{file}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read configuration", [f"{file}: cannot read: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML", [_yaml_problem(file, exc)]) from None
    data = parsed.data if isinstance(parsed.data, dict) else {}
    problems: list[tuple[Loc, str]] = []
    section = _interpolate(data.get("store") or {}, env, ("store",), problems, _Secrets(used={}, values={}))
    found = [_format(file, parsed.lines, loc, msg) for loc, msg in problems]
    context = {"base_dir": path.resolve().parent, "config_path": path.resolve()}
    try:
        store = StoreConfig.model_validate(section, context=context)
    except ValidationError as exc:
        found += [_format(file, parsed.lines, ("store", *p.keys), _plain_message(p))
                  for p in _pydantic_problems(exc, section)]
        _raise(file, found)
    if found:
        _raise(file, found)
    return store


def _secret_values(
    data: Mapping[str, Any], refs: _Secrets, context: Mapping[str, Any], env: Mapping[str, str],
    reader: SecretReader | None, problems: list[tuple[Loc, str]],
) -> Mapping[str, str]:
    """The values of the secrets `refs` uses, from the store the file configures; a store that
    cannot be read is one problem at each place a secret is used (never a value in a message)."""
    try:
        store = StoreConfig.model_validate(data.get("store") or {}, context=context)
    except ValidationError:
        reason = "the store section has problems (see them above)"
    else:
        try:
            return (reader or _store_secrets(env))(store, list(refs.used))
        except MlcError as exc:
            reason = str(exc).splitlines()[0]
        except Exception as exc:  # a database error: its type only (its text may quote the URL)
            reason = f"{type(exc).__name__} from the store at {mask_url(store.url)}"
    for name, places in refs.used.items():
        problems.extend((loc, f"secret {name} cannot be read: {reason}") for loc in places)
    refs.unreadable = True
    return {}


def _store_secrets(env: Mapping[str, str]) -> SecretReader:
    def read(store: StoreConfig, names: Collection[str]) -> Mapping[str, str]:
        from ml_connector.store.crypto import load_keyring
        from ml_connector.store.secrets import read_secrets

        return read_secrets(store.url, load_keyring(store.key_file, env), names)

    return read


def _raise(file: str, found: list[tuple[int, str]]) -> NoReturn:
    problems = list(dict.fromkeys(msg for _, msg in sorted(found, key=lambda item: item[0])))
    noun = "problem" if len(problems) == 1 else "problems"
    raise ConfigError(f"{file}: {len(problems)} configuration {noun}", problems)


def _yaml_problem(file: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    what = f"{context}: {problem}" if context else problem
    if mark is None:
        return f"{file}: not valid YAML: {what}"
    return f"{file}:{mark.line + 1}: not valid YAML (column {mark.column + 1}): {what}"


def _pydantic_problems(exc: ValidationError, data: Any) -> list[_Problem]:
    problems = [
        _Problem(_steps(tuple(err["loc"]), data, err["type"]), err["type"], err["msg"])
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return _drop_union_noise(problems)


def _partial_references(data: Mapping[str, Any], context: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Cross-section checks over whatever validates on its own, so one run reports everything."""
    flows: dict[str, FlowSpec] = {}
    for name, raw in _mapping(data.get("flows")).items():
        try:
            flows[name] = FlowSpec.model_validate(raw)
        except ValidationError:
            continue
    entities: dict[str, Collection[str] | None] = {}
    for name, raw in _mapping(data.get("sources")).items():
        try:
            entities[name] = _entity_names(_validate_source(name, raw, context))
        except ValidationError:
            entities[name] = None
    accounts_raw = _mapping(_mapping(data.get("twilio")).get("accounts"))
    senders = {name: _sender_names(raw) for name, raw in accounts_raw.items()}
    email_senders = {name: _sender_names(raw, "email_senders") for name, raw in accounts_raw.items()}
    endpoints = {name: _sender_names(raw, "webhook_endpoints") for name, raw in accounts_raw.items()}
    accounts: dict[str, TwilioAccount] = {}
    for name, raw in accounts_raw.items():
        try:
            accounts[name] = TwilioAccount.model_validate(raw, context=context)
        except ValidationError:
            continue
    public_url = _mapping(data.get("webhooks")).get("public_url") is not None
    return (_reference_problems(flows, entities, senders, email_senders, endpoints)
            + _token_problems(accounts, public_url))


def _sender_names(raw: Any, key: str = "senders") -> Collection[str] | None:
    senders = _mapping(raw).get(key, {})
    return set(senders) if isinstance(senders, Mapping) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --------------------------------------------------------------------------------------------
# The starter config
# --------------------------------------------------------------------------------------------


def starter_config() -> str:
    """The commented config `ml-connector init` writes (package data: starter.yaml)."""
    return files("ml_connector").joinpath("starter.yaml").read_text(encoding="utf-8")


def template_lines(path: Path) -> dict[str, int]:
    """Flow name -> line of its `template:` key (best effort: {} when the file cannot be re-read)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}

    def child(node: Any, key: str) -> tuple[Any, int] | None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    return value, key_node.start_mark.line + 1
        return None

    flows = child(root, "flows")
    lines: dict[str, int] = {}
    if flows and isinstance(flows[0], yaml.MappingNode):
        for name_node, _ in flows[0].value:
            found = child(flows[0], name_node.value) if isinstance(name_node, yaml.ScalarNode) else None
            template = child(found[0], "template") if found else None
            if template:
                lines[name_node.value] = template[1]
    return lines
