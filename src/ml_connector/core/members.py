"""Fan-out recipients as data: one event notifies every member of a group (a pay group's employees).

    recipients:
      - members:
          entity: paygroup_employees        # the source's members entity
          match: {COMPANY: COMPANY, PAYGROUP: PAYGROUP}   # members prompt <- this record's field
          fields: [PHONE_PREFERRED, PHONE_CELL]            # a member's phone, in order of preference

Each member gets exactly one notification per event: its idempotency address is the member's
key, not the phone number, so two employees sharing a phone each get theirs and a phone changed
between two reads of the same event does not make a second one. Templates see the member's
fields as `member`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MembersSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    entity: str
    match: dict[str, str] = Field(min_length=1)
    fields: list[str] = Field(min_length=1)


class MembersRecipient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    members: MembersSpec


def member_address(member_key: str) -> str:
    """The idempotency address of one member's notification."""
    return f"member:{member_key}"
