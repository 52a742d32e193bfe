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

from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null", "matches", "becomes", "changed")


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


TriggerNode = Annotated[Union[AllOf, AnyOf, Condition], Field(union_mode="left_to_right")]
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
    Union[StaticRecipients, LookupRecipient, FieldRecipient], Field(union_mode="left_to_right")
]


class LookbackSpec(_Frozen):
    every: timedelta
    window: timedelta


class ScheduleSpec(_Frozen):
    """How often to poll, how far back each poll re-reads, and the slow lookback poll."""

    every: timedelta = timedelta(seconds=30)
    overlap: timedelta = timedelta(minutes=5)
    lookback: LookbackSpec | None = None
    max_window: timedelta = timedelta(days=1)


class RetrySpec(_Frozen):
    max_attempts: int = Field(default=6, ge=1, le=50)
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(minutes=30)


class FlowSpec(_Frozen):
    """One flow: source + entity + schedule + trigger + recipients + channel + template."""

    source: str
    entity: str
    schedule: ScheduleSpec = ScheduleSpec()
    trigger: TriggerNode
    first_sighting: Literal["skip", "fire"] = "skip"
    recipients: list[RecipientSpec] = Field(min_length=1)
    channel: Literal["sms"] = "sms"
    sender: str  # "<account>.<sender name>" from the twilio section
    template: str  # inline Jinja2 source
    timezone: str = "UTC"  # for date filters in the template
    currency: str = "USD"
    retry: RetrySpec = RetrySpec()
    enabled: bool = True
