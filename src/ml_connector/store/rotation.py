"""Re-encrypting everything the store keeps sealed with the current master key, resumably.

`ml-connector keys rotate` after a new master key was put first in the ring (the old keys stay
as reading keys). Every column of type `Sealed` (store.types) in every table is visited in
primary-key order, a batch per transaction; each batch re-encrypts the rows not yet sealed by
the current key and moves the progress marker (`store_meta.key_rotation`) in the same
transaction. A crash loses at most the batch under way: the next run resumes at the marker.
Rows before the marker are sealed by the new key, rows after it still by an old one, and a ring
holding both reads all of them throughout. The look-up key (phone search, idempotency) is
carried over, sealed by the new key first (store.keymeta), so hashes never change.

Start, resumption and end are audit rows; values are never logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Engine, LargeBinary, Table, bindparam, func, or_, select

from ml_connector.core.models import require_aware
from ml_connector.store import keymeta
from ml_connector.store.auditrows import audit_row
from ml_connector.store.crypto import KeyRing
from ml_connector.store.engine import reading, writing
from ml_connector.store.tables import audit, metadata, store_meta
from ml_connector.store.types import Sealed

MARKER = "key_rotation"
DEFAULT_BATCH = 500
_PREFIX_BYTES = 9  # version byte + key id (store.crypto)


@dataclass(frozen=True, slots=True)
class SealedTable:
    """A table with sealed columns, walked in the order of its one-column primary key."""

    table: Table
    key: Column[Any]
    columns: tuple[Column[Any], ...]

    @property
    def name(self) -> str:
        return self.table.name


def sealed_tables() -> list[SealedTable]:
    """Every table with a Sealed column, by name (the order rotation walks them in)."""
    found: list[SealedTable] = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        columns = tuple(c for c in table.columns if isinstance(c.type, Sealed))
        if not columns:
            continue
        keys = list(table.primary_key.columns)
        if len(keys) != 1:
            raise AssertionError(f"table {table.name}: sealed columns need a one-column primary key to rotate")
        found.append(SealedTable(table, keys[0], columns))
    return found


@dataclass(slots=True)
class Progress:
    """The marker: which key rows are moving to, and how far each table got."""

    target: str
    started_at: str
    table: str | None = None
    after: Any = None
    counts: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        return json.dumps({"target": self.target, "started_at": self.started_at, "table": self.table,
                           "after": self.after, "counts": self.counts}, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Progress:
        data = json.loads(text)
        return cls(str(data["target"]), str(data["started_at"]), data.get("table"), data.get("after"),
                   {str(k): int(v) for k, v in (data.get("counts") or {}).items()})


@dataclass(frozen=True, slots=True)
class RotationResult:
    """What one run did: rows re-encrypted per table (this run and earlier interrupted ones)."""

    target: str
    resumed: bool
    batches: int
    rotated: Mapping[str, int]
    remaining: Mapping[str, int]


def _not_current(columns: tuple[Column[Any], ...], prefix: bytes) -> ColumnElement[bool]:
    head = bindparam("prefix", prefix, type_=LargeBinary())
    return or_(*[func.substr(c, 1, _PREFIX_BYTES) != head for c in columns])


def _read_marker(conn: Connection) -> Progress | None:
    text: str | None = conn.execute(
        select(store_meta.c.value).where(store_meta.c.name == MARKER).with_for_update()
    ).scalar_one_or_none()
    return Progress.parse(text) if text is not None else None


def _write_marker(conn: Connection, progress: Progress) -> None:
    conn.execute(store_meta.delete().where(store_meta.c.name == MARKER))
    conn.execute(store_meta.insert().values(name=MARKER, value=progress.text()))


class Rotation:
    """Key rotation over one store's engine, with the ring the store opened (its look-up key)."""

    def __init__(self, engine: Engine, keys: KeyRing) -> None:
        self._engine = engine
        self._keys = keys

    @property
    def keys(self) -> KeyRing:
        """The ring rotation seals with (its current key) and reads with (all of them)."""
        return self._keys

    def marker(self) -> Progress | None:
        """The rotation under way (interrupted, or running elsewhere), if any."""
        with reading(self._engine) as conn:
            text = conn.execute(select(store_meta.c.value).where(store_meta.c.name == MARKER)).scalar_one_or_none()
        return Progress.parse(text) if text is not None else None

    def remaining(self) -> dict[str, int]:
        """Rows per table with a value not sealed by the current key."""
        counts: dict[str, int] = {}
        with reading(self._engine) as conn:
            for spec in sealed_tables():
                counts[spec.name] = int(conn.execute(
                    select(func.count()).select_from(spec.table)
                    .where(_not_current(spec.columns, self._keys.current_prefix))
                ).scalar_one())
        return counts

    def run(self, *, now: Callable[[], datetime], actor: str, batch: int = DEFAULT_BATCH,
            on_batch: Callable[[Progress], None] | None = None) -> RotationResult:
        """Rotate every sealed value to the current key, resuming an interrupted run to the same key."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        target = self._keys.fingerprint
        tables = sealed_tables()
        resumed, progress = self._begin(target, now(), actor)
        batches = 0
        names = [t.name for t in tables]
        start = names.index(progress.table) if progress.table in names else 0
        for spec in tables[start:]:
            if progress.table != spec.name:
                progress.table, progress.after = spec.name, None
            while self._one_batch(spec, progress, batch):
                batches += 1
                if on_batch is not None:
                    on_batch(progress)
        remaining = self.remaining()
        with writing(self._engine) as conn:
            conn.execute(store_meta.delete().where(store_meta.c.name == MARKER))
            conn.execute(audit.insert().values(audit_row(
                require_aware(now(), "now()"), "key_rotation_finished", nid=None, flow=None, status=None,
                actor=actor, key=target, rotated=progress.counts, remaining=remaining,
            )))
        return RotationResult(target, resumed, batches, dict(progress.counts), remaining)

    def _begin(self, target: str, at: datetime, actor: str) -> tuple[bool, Progress]:
        require_aware(at, "now()")
        with writing(self._engine) as conn:
            progress = _read_marker(conn)
            resumed = progress is not None and progress.target == target
            if progress is None or not resumed:
                superseded = progress.target if progress is not None else None
                progress = Progress(target=target, started_at=at.isoformat())
                kind, detail = "key_rotation_started", {"superseded": superseded}
            else:
                kind, detail = "key_rotation_resumed", {"table": progress.table, "after": progress.after}
            if not keymeta.lookup_key_current(conn, self._keys):
                keymeta.seal_lookup_key(conn, self._keys)
            _write_marker(conn, progress)
            conn.execute(audit.insert().values(audit_row(
                at, kind, nid=None, flow=None, status=None, actor=actor, key=target,
                keys=list(self._keys.fingerprints), **detail,
            )))
        return resumed, progress

    def _one_batch(self, spec: SealedTable, progress: Progress, batch: int) -> bool:
        """Re-encrypt up to `batch` rows after the marker and move it, in one transaction; False
        when the table has nothing left after the marker."""
        keys = self._keys
        where = [_not_current(spec.columns, keys.current_prefix)]
        if progress.after is not None:
            where.append(spec.key > progress.after)
        query = (select(spec.key, *spec.columns).where(*where).order_by(spec.key).limit(batch)
                 .with_for_update())
        with writing(self._engine) as conn:
            rows = conn.execute(query).all()
            if not rows:
                return False
            for row in rows:
                values = {
                    column.name: keys.encrypt(keys.decrypt(blob))
                    for column, blob in zip(spec.columns, row[1:], strict=True)
                    if not keys.sealed_by_current(blob)
                }
                conn.execute(spec.table.update().where(spec.key == row[0]).values(values))
            progress.after = rows[-1][0]
            progress.counts[spec.name] = progress.counts.get(spec.name, 0) + len(rows)
            _write_marker(conn, progress)
        return True
