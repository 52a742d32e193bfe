"""Many rows of one kind of write in one call, without SQLAlchemy's per-row parameter handling.

Under load the store writes batches (claims, attempt results, status reports, polls), and for
each row SQLAlchemy builds a parameter dict and runs every column's bind processor again, which
cost more than the database's own work. Here the values are converted once by the columns' own
types (so the stored text is the same), then:

- SQLite: an INSERT is one multi-row statement (up to `MOST_ROWS` rows each), an UPDATE the
  driver's `executemany` of plain tuples. The driver releases the GIL around every statement
  step and must take it back after: with the poller's main thread busy, each take-back waits for
  a switch interval (5 ms), so hundreds of one-row steps crawl where one step does not.
- PostgreSQL: one statement over `unnest` of one binary array per column, a single execution
  whatever the batch size instead of one per row.

Any other database takes SQLAlchemy's own `executemany`, the general path, to which tests hold
both fast paths (tests/store/test_bulk_writes.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Table, and_, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import Dialect

__all__ = ["Bulk", "Writer", "fast_dialect"]

#: Databases written through their own fast path; any other takes SQLAlchemy's executemany.
FAST_DIALECTS = frozenset({"sqlite", "postgresql"})
#: Most rows in one multi-row INSERT on SQLite (which allows 32,766 parameters per statement).
MOST_ROWS = 1000
_SQLITE_PARAMETERS = 32_766
DIALECT_INSERTS: dict[str, Callable[[Table], Any]] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
#: A column's bind processor: the conversion SQLAlchemy would apply to its values (None: none).
_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Bulk:
    """One kind of write over many rows: INSERT `columns` into `table` (skipping rows whose
    `unique` columns are already taken, when given) or, given `keys`, UPDATE `table` setting
    `columns` where the `keys` columns equal the row's first values. Rows are tuples in the
    order of `names`."""

    table: Table
    columns: tuple[str, ...]
    keys: tuple[str, ...] = ()
    unique: tuple[str, ...] = ()  # INSERT ... ON CONFLICT (unique) DO NOTHING

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.keys, *self.columns)


def fast_dialect(conn: Connection) -> str | None:
    """The database's name when it has a fast path here, else None (the general path)."""
    name = conn.dialect.name
    return name if name in FAST_DIALECTS else None


@functools.cache
def _statement(bulk: Bulk, dialect_name: str) -> Any:
    """The general path's statement; its bind parameter p<i> is the row's value i."""
    if not bulk.keys:
        if not bulk.unique:
            return bulk.table.insert().values({c: bindparam(f"p{i}") for i, c in enumerate(bulk.columns)})
        insert = DIALECT_INSERTS[dialect_name](bulk.table)
        return insert.values({c: bindparam(f"p{i}") for i, c in enumerate(bulk.columns)}).on_conflict_do_nothing(
            index_elements=[bulk.table.c[c] for c in bulk.unique]
        )
    where = and_(*(bulk.table.c[k] == bindparam(f"p{i}") for i, k in enumerate(bulk.keys)))
    return update(bulk.table).where(where).values(
        {c: bindparam(f"p{i}") for i, c in enumerate(bulk.columns, len(bulk.keys))}
    )


#: Per dialect, one processor per column type (its repr): equal types share it, so a batch
#: converts each instant once whichever table it lands in (see Writer).
_PROCESSORS: WeakKeyDictionary[Dialect, dict[str, _Processor]] = WeakKeyDictionary()


def _processors(dialect: Dialect, bulk: Bulk) -> tuple[_Processor, ...]:
    known = _PROCESSORS.setdefault(dialect, {})
    types = [bulk.table.c[c].type for c in bulk.names]
    return tuple(known.setdefault(repr(t), t.dialect_impl(dialect).bind_processor(dialect)) for t in types)


@dataclass(frozen=True, slots=True)
class _SqlitePlan:
    """The general path's SQL as SQLite gets it, and where each of its `?` takes its value; for
    an INSERT also its text around the row's placeholders, to repeat them for many rows."""

    sql: str
    order: tuple[int, ...]
    processors: tuple[_Processor, ...]
    head: str = ""   # an INSERT of n rows: head + ", ".join([row] * n) + tail
    row: str = ""
    tail: str = ""

    @property
    def rows_per_statement(self) -> int:
        return min(MOST_ROWS, _SQLITE_PARAMETERS // len(self.order)) if self.row else 1


@functools.lru_cache(maxsize=64)
def _sqlite_plan(dialect: Dialect, bulk: Bulk) -> _SqlitePlan:
    compiled = _statement(bulk, "sqlite").compile(dialect=dialect)
    order = tuple(int(name[1:]) for name in compiled.positiontup or ())
    processors = _processors(dialect, bulk)
    plan = _SqlitePlan(str(compiled), order, tuple(processors[i] for i in order))
    row = "(" + ", ".join(["?"] * len(order)) + ")"
    if bulk.keys or plan.sql.count(row) != 1 or " VALUES " + row not in plan.sql:
        return plan  # an UPDATE, or not the INSERT shape expected: the driver's executemany
    head, _, tail = plan.sql.partition(row)
    return _SqlitePlan(plan.sql, plan.order, plan.processors, head, row, tail)


@functools.lru_cache(maxsize=64)
def _postgres_plan(dialect: Dialect, bulk: Bulk) -> tuple[str, tuple[_Processor, ...]]:
    """One statement over `unnest` of one array per column: the same rows, a single execution."""
    quote = dialect.identifier_preparer.quote
    cols = bulk.table.c
    arrays = ", ".join(f"%(p{i})b::{cols[c].type.compile(dialect=dialect)}[]" for i, c in enumerate(bulk.names))
    table = quote(bulk.table.name)
    if not bulk.keys:
        columns = ", ".join(quote(c) for c in bulk.columns)
        sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays})"  # noqa: S608 - schema names
        if bulk.unique:
            sql += f" ON CONFLICT ({', '.join(quote(c) for c in bulk.unique)}) DO NOTHING"
    else:
        sets = ", ".join(f"{quote(c)} = v.p{i}" for i, c in enumerate(bulk.columns, len(bulk.keys)))
        names = ", ".join(f"p{i}" for i in range(len(bulk.names)))
        where = " AND ".join(f"{table}.{quote(k)} = v.p{i}" for i, k in enumerate(bulk.keys))
        sql = f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({names}) WHERE {where}"  # noqa: S608
    return sql, _processors(dialect, bulk)


class Writer:
    """Writes bulk rows on one connection; one per transaction, whose converted values it
    remembers (one instant is often an event's, its audit row's and its notification's)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._fast = fast_dialect(conn)
        self._converted: dict[tuple[_Processor, Any], Any] = {}

    def write(self, bulk: Bulk, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        dialect = self._conn.dialect
        if not self._fast:
            params = [{f"p{i}": v for i, v in enumerate(row)} for row in rows]
            self._conn.execute(_statement(bulk, dialect.name), params)
        elif self._fast == "sqlite":
            plan = _sqlite_plan(dialect, bulk)
            columns = [self._convert(plan.processors[j], [row[i] for row in rows]) for j, i in enumerate(plan.order)]
            values = list(zip(*columns, strict=True))
            step = plan.rows_per_statement
            if step == 1:
                self._conn.exec_driver_sql(plan.sql, values)
                return
            for at in range(0, len(values), step):
                part = values[at : at + step]
                sql = plan.head + ", ".join([plan.row] * len(part)) + plan.tail
                self._conn.exec_driver_sql(sql, tuple(v for row in part for v in row))
        else:
            sql, processors = _postgres_plan(dialect, bulk)
            self._conn.exec_driver_sql(sql, {
                f"p{i}": self._convert(processors[i], [row[i] for row in rows]) for i in range(len(processors))
            })

    def _convert(self, processor: _Processor, values: list[Any]) -> list[Any]:
        if processor is None:
            return values
        seen = self._converted
        out = []
        for value in values:
            key = (processor, value)
            converted = seen.get(key, seen)
            if converted is seen:
                converted = seen[key] = processor(value)
            out.append(converted)
        return out
