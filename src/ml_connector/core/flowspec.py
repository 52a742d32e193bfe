"""What a flow *is*, as data: trigger, recipients, template, schedule. Pure pydantic models.

These models are both the `flows:` section of the YAML config (config.py embeds them) and the
input of the pure evaluators (core.rules, core.recipients, core.templates). Keeping one
definition means the config validator and the runtime can never disagree.

Trigger syntax in YAML::

    trigger:
      all:                                  # or any:
        - {field: AUTHORIZATION_STATUS, becomes: APPROVED}   # transition vs last-seen value
        - {field: AMOUNT, gte: 1000}
        - any:
            - {field: ORG_ID, in: [204, 205]}
            - {field: VENDOR_NAME, matches: "^ACME"}

A bare condition is allowed at the top. `changed: true` fires when the value differs from the
last-seen one. Without last-seen state (first sighting), transitions follow `first_sighting`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from ml_connector.core.routing import RoutingTable

from ml_connector.core.batching import DigestSpec
from ml_connector.core.due import DueSpec
from ml_connector.core.localized import DEFAULT_LOCALE, parse_locale
from ml_connector.core.members import MembersRecipient
from ml_connector.core.windows import BusinessHours, Window, parse_time

OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null", "matches", "becomes", "changed")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value: Any) -> Any:
    """Accept "250ms", "30s", "5m", "24h", "7d", "1w" besides ISO 8601 ("PT5M") and seconds."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    return value


#: A duration in config: "30s", "5m", "24h", "PT5M" or a number of seconds.
Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Condition(_Frozen):
    """One test on one field. Exactly one operator is set."""

    field: str
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None
    is_null: bool | None = None
    matches: str | None = None
    becomes: Any = None
    changed: bool | None = None

    @model_validator(mode="after")
    def _exactly_one_operator(self) -> Condition:
        ops = self.operators()
        if len(ops) != 1:
            raise ValueError(
                f"condition on {self.field!r} needs exactly one operator of {', '.join(OPERATORS)}; "
                f"got {', '.join(ops) or 'none'}"
            )
        return self

    def operators(self) -> list[str]:
        """Names of the operators that were given (explicitly set, even to null)."""
        return [
            ("in" if name == "in_" else name)
            for name in self.model_fields_set
            if name != "field"
        ]

    @property
    def operator(self) -> str:
        return self.operators()[0]

    @property
    def operand(self) -> Any:
        op = self.operator
        return getattr(self, "in_" if op == "in" else op)


class AllOf(_Frozen):
    all: list[TriggerNode]


class AnyOf(_Frozen):
    any: list[TriggerNode]


TriggerNode = Annotated[AllOf | AnyOf | Condition, Field(union_mode="left_to_right")]
AllOf.model_rebuild()
AnyOf.model_rebuild()


class StaticRecipients(_Frozen):
    """Fixed numbers (e.g. the HR on-call phones)."""

    static: list[str]


class FieldRecipient(_Frozen):
    """A phone held in the record itself; the first non-empty of `field` (str or list) wins."""

    field: str | list[str]


class LookupSpec(_Frozen):
    entity: str
    key_field: str
    fields: list[str]


class LookupRecipient(_Frozen):
    """A phone found through the source: record[key_field] -> lookup(entity) -> first of fields."""

    lookup: LookupSpec


RecipientSpec = Annotated[
    StaticRecipients | LookupRecipient | MembersRecipient | FieldRecipient, Field(union_mode="left_to_right")
]


class LookbackSpec(_Frozen):
    every: Duration
    window: Duration


class ScheduleSpec(_Frozen):
    """How often to poll, how far back each poll re-reads, and the slow lookback poll."""

    every: Duration = timedelta(seconds=30)
    overlap: Duration = timedelta(minutes=5)
    lookback: LookbackSpec | None = None
    max_window: Duration = timedelta(days=1)
    #: How far before the flow's first start the first poll reads, to learn last-seen values
    #: (so touching an already-approved PO later does not look like a new approval).
    baseline: Duration = timedelta(days=1)
    #: Tolerated difference between our clock and the ERP's: never read up to "now" exactly.
    clock_skew: Duration = timedelta(seconds=5)


class QuietWindowSpec(_Frozen):
    days: str = "mon-fri"
    from_: str = Field(alias="from")
    to: str

    @model_validator(mode="after")
    def _valid(self) -> QuietWindowSpec:
        self.window()  # unknown days or times fail validation with the reason
        return self

    def window(self) -> Window:
        return Window.of(self.days, self.from_, self.to)


class BusinessHoursSpec(_Frozen):
    """When a flow may send, in each recipient's time zone (core.windows); outside, it waits.

        business_hours:
          windows: [{days: mon-fri, from: "08:00", to: "20:00"}, {days: sat, from: "09:00", to: "13:00"}]
          timezone_field: TIMEZONE      # the record's IANA zone for its recipient; else the flow's zone
    """

    windows: list[QuietWindowSpec] = Field(min_length=1)
    timezone_field: str | None = None

    def hours(self) -> BusinessHours:
        return BusinessHours.of(w.window() for w in self.windows)


class RepliesSpec(_Frozen):
    """Replies to a flow's texts are threaded to the notification they answer (core.threads).

        replies: {window: 3d, reference: PO_NUMBER}   # the template says "Reply YES {{ PO_NUMBER }}"
    """

    window: Duration = timedelta(days=3)
    #: A record field whose value the text carries as a short reference; a reply quoting it
    #: matches that notification even when several are open.
    reference: str | None = None


class DigestFlowSpec(_Frozen):
    """Batch a flow's events: one message per recipient per window (core.batching).

        digest:
          every: 1h                  # or  at: ["08:00"]  (recipient local time)
          max_items: 20              # also close when this many have arrived
          top: 5                     # items listed; the rest counted
          template: "{{ count }} invoices await your approval: {{ items | join(', ') }}"

    The flow's own `template` renders each event's item; `digest.template` the message, with
    `count`, `items` (the first `top`), `more` and `all_items`.
    """

    every: Duration | None = None
    at: list[str] = []
    max_items: int | None = Field(default=None, ge=1)
    top: int = Field(default=5, ge=1, le=100)
    template: str

    @model_validator(mode="after")
    def _valid(self) -> DigestFlowSpec:
        self.batching()  # every xor at, window at least a minute: the reasons as errors
        return self

    def batching(self) -> DigestSpec:
        return DigestSpec(every=self.every, at=tuple(parse_time(t) for t in self.at), max_items=self.max_items,
                          top=self.top)


class RetrySpec(_Frozen):
    max_attempts: int = Field(default=6, ge=1, le=50)
    base_delay: Duration = timedelta(seconds=5)
    max_delay: Duration = timedelta(minutes=30)


class VoiceSpec(_Frozen):
    """How a voice flow speaks: the message is said `repeat` times with a pause between, then,
    with `acknowledge`, the prompt is said inside a one-digit Gather; pressing `digit` makes the
    notification `acknowledged`. `retries` more calls are made after busy or no-answer."""

    voice: str = Field(default="Polly.Joanna", pattern=r"^[A-Za-z][A-Za-z0-9.\-]{1,63}$")
    language: str = Field(default="en-US", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    repeat: int = Field(default=2, ge=1, le=5)
    pause: int = Field(default=1, ge=0, le=10)
    acknowledge: bool = False
    prompt: str = Field(default="Press 1 to confirm.", min_length=1, max_length=500)
    digit: str = Field(default="1", pattern=r"^[0-9*#]$")
    retries: int = Field(default=0, ge=0, le=5)
    retry_delay: Duration = timedelta(minutes=5)


class FlowSpec(_Frozen):
    """One flow: source + entity + schedule + trigger + recipients + channel + template."""

    source: str
    entity: str
    schedule: ScheduleSpec = ScheduleSpec()
    trigger: TriggerNode
    first_sighting: Literal["skip", "fire"] = "skip"
    recipients: list[RecipientSpec] = []
    #: Ordered rules routing records to recipients (core.routing); None: only `recipients`.
    routing: Any = None
    #: Fields naming the business document for idempotency instead of the record (core.dedupe).
    dedupe_on: list[str] = []
    #: core.channel_kinds: "sms", "voice" (the sender's From number calls), or "email" (sender
    #: names one of the account's email_senders).
    channel: Literal["sms", "mms", "whatsapp", "voice", "email", "webhook"] = "sms"
    sender: str  # "<account>.<sender name>" from the twilio section
    template: str  # inline Jinja2 source (for email: the text part, always sent)
    #: Email only: the subject template, and the HTML part's template (autoescaped).
    subject: str | None = None
    html: str | None = None
    #: Voice only: how the message is spoken and acknowledged.
    voice: VoiceSpec | None = None
    #: MMS and WhatsApp: media URL templates (each rendered from the record, sent as MediaUrl).
    media: list[str] = Field(default_factory=list, max_length=10)
    #: WhatsApp: an approved Content template (HX...) and its variables ("1": "{{ po_number }}").
    content_sid: str | None = Field(default=None, pattern=r"^HX[0-9a-fA-F]{32}$")
    content_variables: dict[str, str] = Field(default_factory=dict)
    timezone: str = "UTC"  # for date filters in the template
    currency: str = "USD"
    #: How money and dates are written (core.localized): "de_DE" -> "2.529,27 €".
    locale: str = DEFAULT_LOCALE
    retry: RetrySpec = RetrySpec()
    enabled: bool = True
    #: Date-driven: fire `before` the date in a field, at a local time (core.due); `trigger` filters.
    due: DueSpec | None = None
    #: Send only inside these hours of the recipient's zone; outside, notifications are deferred.
    business_hours: BusinessHoursSpec | None = None
    #: Critical flows bypass business hours (an outage page at 03:00 must go out at 03:00).
    critical: bool = False
    #: Thread replies to this flow's texts (kept for `window` after each is sent).
    replies: RepliesSpec | None = None
    #: Batch events into one message per recipient per window.
    digest: DigestFlowSpec | None = None

    @field_validator("routing", mode="before")
    @classmethod
    def _routing(cls, value: Any) -> Any:
        from ml_connector.core.routing import RoutingTable  # routing builds on this module's types

        if value is None or isinstance(value, RoutingTable):
            return value
        try:
            return RoutingTable.model_validate(value)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                       for e in exc.errors())) from None

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        parse_locale(value)  # ValueError names the locale
        return value.strip()

    @model_validator(mode="after")
    def _someone(self) -> FlowSpec:
        if self.channel == "webhook":
            if self.recipients or self.routing is not None:
                raise ValueError("recipients: a webhook flow posts to its endpoint (sender); it has no recipients")
        elif not self.recipients and self.routing is None:
            raise ValueError("recipients: name at least one recipient, or a routing table")
        if self.channel == "email" and not (self.subject or "").strip():
            raise ValueError("subject: an email flow needs a subject template")
        if self.channel != "email" and (self.subject is not None or self.html is not None):
            raise ValueError(f"subject/html: only email flows have them (channel is {self.channel!r})")
        if self.channel != "voice" and self.voice is not None:
            raise ValueError(f"voice: only voice flows have it (channel is {self.channel!r})")
        if self.channel not in ("mms", "whatsapp") and self.media:
            raise ValueError(f"media: only mms and whatsapp flows send media (channel is {self.channel!r})")
        if self.channel == "mms" and not self.media:
            raise ValueError("media: an mms flow needs at least one media URL template")
        if self.channel != "whatsapp" and (self.content_sid or self.content_variables):
            raise ValueError("content_sid/content_variables: only whatsapp flows use Content templates")
        if self.content_variables and not self.content_sid:
            raise ValueError("content_variables: they fill a Content template; set content_sid too")
        return self

    @property
    def routing_table(self) -> RoutingTable | None:
        return self.routing  # type: ignore[no-any-return]
