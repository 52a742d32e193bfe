"""The SQL source's write-back: one UPDATE or INSERT per final status, on a writable engine.

What is written where is configuration (sources.sql_writeback); this module runs it. The engine
is created at the first write-back, separate from the read-only reading engine, and target
tables are reflected once (their column types decide how times are written).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from ml_connector.core.models import Delivery
from ml_connector.errors import SourceError, SourcePayloadError
from ml_connector.sources.sql import (
    _HANDLED,
    _KEY_PARSERS,
    DRIVER_REWRITES,
    SqlEntity,
    _create_engine,
    _python_type,
    _split_table,
    classify,
)
from ml_connector.sources.sql_writeback import SqlWriteBack, field_values, find_column, row_values


def writable_url(url: str) -> URL:
    """The configured URL on the supported driver; a SQLite file must exist (never created here)."""
    parsed = make_url(url)
    parsed = parsed.set(drivername=DRIVER_REWRITES.get(parsed.drivername, parsed.drivername))
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
            and not database.startswith("file:"):
        parsed = parsed.set(database=f"file:{database}?mode=rw", query={**parsed.query, "uri": "true"})
    return parsed


@dataclass(frozen=True, slots=True)
class _Target:
    """A reflected target table: what to run for one entity."""

    table: sa.Table
    key: sa.Column[Any] | None  # None: an INSERT
    parse_key: Callable[[str], Any]


class SqlStatusWriter:
    """Writes deliveries of a SQL source's entities into their configured tables and columns."""

    def __init__(self, wb: SqlWriteBack, entities: Mapping[str, SqlEntity], source_url: str, tz: ZoneInfo,
                 name: str | None) -> None:
        self._wb = wb
        self._entities = entities
        self._url = writable_url(wb.url or source_url)
        self._tz = tz
        self._name = name
        self._engine: Engine | None = None
        self._targets: dict[str, _Target] = {}

    async def write(self, delivery: Delivery) -> None:
        """One final status into its entity's target; a SourceError says what the database refused."""
        if self._engine is None:
            self._engine = _create_engine(self._url, {})
        engine = self._engine
        target = self._wb.entities[delivery.entity]
        table_name = target.insert or target.update or self._entities[delivery.entity].table or ""

        def in_thread() -> None:
            with engine.begin() as conn:
                self._write(conn, delivery, table_name)

        try:
            await asyncio.to_thread(in_thread)
        except SourceError:
            raise
        except _HANDLED as error:
            kind = classify(error)
            raise kind(f"write-back of {delivery.entity} {delivery.record_key} to {table_name}: "
                       f"{self._cause(error)}", source=self._name) from error

    def _write(self, conn: Connection, delivery: Delivery, table_name: str) -> None:
        entity = delivery.entity
        where = f"write_back.entities.{entity}"
        resolved = self._targets.get(entity)
        if resolved is None:
            resolved = self._targets[entity] = self._reflect(conn, entity, table_name, where)
        sqlite = conn.dialect.name == "sqlite"
        values = row_values(self._wb.entities[entity], field_values(self._wb, delivery), resolved.table,
                            self._tz, sqlite, where)
        if resolved.key is None:
            conn.execute(resolved.table.insert().values(values))
            return
        try:
            key = resolved.parse_key(delivery.record_key)
        except (ValueError, InvalidOperation):
            raise self._error(f"record key {delivery.record_key!r} is not a {resolved.key.name} value") from None
        done = conn.execute(resolved.table.update().where(resolved.key == key).values(values))
        if done.rowcount == 0:
            raise self._error(f"no row in {table_name} with {resolved.key.name} = {delivery.record_key!r} "
                              f"to record notification {delivery.notification_id}'s {delivery.status} status")

    def _reflect(self, conn: Connection, entity: str, table_name: str, where: str) -> _Target:
        schema, name = _split_table(table_name)
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
        target = self._wb.entities[entity]
        if target.insert is not None:
            return _Target(table, None, str)
        key = find_column(table, target.key or self._entities[entity].key, where)
        return _Target(table, key, _KEY_PARSERS.get(_python_type(key.type) or str, str))

    def _error(self, message: str) -> SourcePayloadError:
        return SourcePayloadError(f"write-back: {message}", source=self._name)

    def _cause(self, error: BaseException) -> str:
        text = str(getattr(error, "orig", None) or error).strip().splitlines()
        message = text[0] if text else type(error).__name__
        password = self._url.password
        return message.replace(str(password), "***") if password else message

    async def aclose(self) -> None:
        if self._engine is not None:
            await asyncio.to_thread(self._engine.dispose)
