"""The `audit` section of the config: how long the audit trail is kept, and how it is pruned."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_connector.core.flowspec import Duration


class AuditConfig(BaseModel):
    """`retention: 400d` deletes audit rows older than that, a bounded batch at a time, in the
    background of `run`; each batch deleted leaves an audit row of its own. No retention (the
    default): the trail is kept for ever."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retention: Duration | None = None
    #: How often the pruning runs, and how much one run may delete (batches of `prune_batch`).
    prune_every: Duration = timedelta(hours=1)
    prune_batch: int = Field(default=5000, ge=1, le=100_000)
    prune_max_batches: int = Field(default=20, ge=1, le=10_000)

    @field_validator("retention", "prune_every")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value
