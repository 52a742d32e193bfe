"""Final delivery statuses written back into the database a SQL source reads (queue tables).

A system that queues its texts in a table of its own usually tracks each message's status there
too. With `write_back` the SQL source records each notification's final status, Twilio message
SID, error code and times either in configured columns of the row it was read from (an UPDATE
keyed by the record's key) or as a new row of a status table (an INSERT). Every table and column
name is configuration; the values come from the write-back queue (runtime.writeback), with its
own retries, exactly as for Oracle EBS.

Config::

    sources:
      queue_db:
        type: sql
        url: postgresql://reader:${PW}@db/erp
        entities:
          sms_queue: {table: sms_queue, key: id, changed_at: created_at}
        write_back:
          url: postgresql://writer:${WRITER_PW}@db/erp   # optional: a login allowed to write
          entities:
            sms_queue:                  # UPDATE sms_queue SET ... WHERE id = <record key>
              columns: {delivery_status: status, twilio_sid: message_sid, error_code: error_code,
                        delivered_at: final_at}
            # or a status table:  {insert: sms_status, columns: {queue_id: record_key, status: status}}

Reading stays read-only (a SQLite source file is opened read-only); the writes go through their
own engine on `write_back.url`, or the source's URL opened for writing. Times are written as the
target column keeps them: aware UTC into timestamp-with-time-zone columns, wall-clock time in the
source's `timezone` into naive ones (and as `YYYY-MM-DD HH:MM:SS` text into text columns and
SQLite). An UPDATE that matches no row is an error the database will repeat: it is tried
`rejected_tries` times and then given up, visible in the audit with its message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml_connector.core.lifecycle import FINAL
from ml_connector.core.models import Delivery, Status
from ml_connector.errors import SourcePayloadError
from ml_connector.sources.writeback_statuses import FinalStatuses

#: Our fields a column can be filled with.
SqlWriteBackField = Literal[
    "record_key", "entity", "flow", "notification_id", "message_sid", "status", "error_code",
    "error_message", "sent_at", "final_at",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class SqlWriteTarget(_Model):
    """Where one entity's final statuses go: its own row (UPDATE) or a status table (INSERT)."""

    #: The table to UPDATE (default: the entity's own table; a `query` entity must name one).
    update: str | None = None
    #: The table to INSERT one row per final status into, instead of an UPDATE.
    insert: str | None = None
    #: The UPDATE's key column (default: the entity's key), matched against the record's key.
    key: str | None = None
    #: Column -> our field (`twilio_sid: message_sid`).
    columns: dict[str, SqlWriteBackField] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_way(self) -> SqlWriteTarget:
        if self.update is not None and self.insert is not None:
            raise ValueError("give `update` or `insert`, not both")
        if self.insert is not None and self.key is not None:
            raise ValueError("`key` is the UPDATE's key column; an insert has none (map record_key to a column)")
        return self


class SqlWriteBack(_Model):
    """Where and how a SQL source records final delivery statuses."""

    enabled: bool = True
    #: A database URL allowed to write (default: the source's `url`, opened for writing).
    url: str | None = None
    #: Entity -> target; deliveries of other entities are not written back (skipped).
    entities: dict[str, SqlWriteTarget] = Field(min_length=1)
    #: The final statuses written back; all of them by default.
    statuses: FinalStatuses = FINAL
    #: Our status -> the value the column expects; unlisted statuses go as our names (delivered).
    status_codes: dict[Status, str] = {}
    #: Tries before a write-back the database refuses (no such row, a constraint) is given up.
    rejected_tries: int = Field(default=3, ge=1, le=100)

    def wants(self, delivery: Delivery) -> bool:
        return self.enabled and delivery.status in self.statuses and delivery.entity in self.entities


def field_values(wb: SqlWriteBack, delivery: Delivery) -> dict[str, Any]:
    """Our fields for one delivery (times aware UTC; converted per column by `column_value`)."""
    return {
        "record_key": delivery.record_key,
        "entity": delivery.entity,
        "flow": delivery.flow,
        "notification_id": delivery.notification_id,
        "message_sid": delivery.provider_id or None,
        "status": wb.status_codes.get(delivery.status, str(delivery.status)),
        "error_code": delivery.error_code,
        "error_message": delivery.error_message,
        "sent_at": delivery.created_at.astimezone(UTC),
        "final_at": delivery.finished_at.astimezone(UTC),
    }


def column_value(value: Any, column: sa.Column[Any], tz: ZoneInfo, sqlite: bool) -> Any:
    """A value as the target column keeps it (times by the column's type, see the docstring)."""
    if not isinstance(value, datetime):
        return value
    type_ = column.type
    if isinstance(type_, sa.DateTime) and getattr(type_, "timezone", False) and not sqlite:
        return value
    wall = value.astimezone(tz).replace(tzinfo=None, microsecond=0)
    if isinstance(type_, sa.DateTime):
        return wall
    if isinstance(type_, sa.Date):
        return wall.date()
    return wall.isoformat(sep=" ")


def row_values(target: SqlWriteTarget, fields: Mapping[str, Any], table: sa.Table, tz: ZoneInfo,
               sqlite: bool, where: str) -> dict[str, Any]:
    """Column -> value for one write; an unknown column is named with the table's real ones."""
    values: dict[str, Any] = {}
    for configured, ours in target.columns.items():
        column = find_column(table, configured, where)
        values[column.name] = column_value(fields[ours], column, tz, sqlite)
    return values


def find_column(table: sa.Table, name: str, where: str) -> sa.Column[Any]:
    """The real column for a configured name: exact, else case-insensitive (Oracle folds)."""
    if name in table.c:
        return table.c[name]
    folded = [c for c in table.c if c.name.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise SourcePayloadError(f"{where}: column {name!r} not found in table {table.fullname}; "
                             f"it has {', '.join(c.name for c in table.c)}")

