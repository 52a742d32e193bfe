"""Named secrets (ERP passwords, API tokens) sealed by the master key, in the store.

Kept in the database rather than a file so that every process of a PostgreSQL deployment sees
the same values; `${secret:NAME}` in the config reads them when the config is loaded. Values are
never logged, audited or returned by a listing: the audit says who set or deleted which name.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, inspect, select

from ml_connector.core.models import require_aware
from ml_connector.errors import ConfigError
from ml_connector.store.auditrows import audit_row
from ml_connector.store.crypto import KeyRing
from ml_connector.store.engine import make_engine, parse_url, reading, writing
from ml_connector.store.tables import audit, secrets

#: What `${secret:NAME}` accepts: letters, digits, `_`, `.` and `-`, starting with a letter or `_`.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,199}")


def check_name(name: str) -> str:
    """`name` when it is a usable secret name, else ConfigError saying what is allowed."""
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"secret name {name!r} is not usable: use letters, digits, '_', '.' and '-' "
            "(starting with a letter or '_', at most 200 characters)"
        )
    return name


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What a listing shows: never the value."""

    name: str
    created_at: datetime
    updated_at: datetime


class SecretBox:
    """The secrets of one store (build it with SqlStore.secrets())."""

    def __init__(self, engine: Engine, keys: KeyRing) -> None:
        self._engine = engine
        self._keys = keys

    def set(self, name: str, value: str, *, now: datetime, actor: str) -> bool:
        """Store `value` under `name` (replacing an older one); True when the name is new."""
        check_name(name)
        require_aware(now, "SecretBox.set(now)")
        if not value:
            raise ConfigError(f"secret {name}: the value is empty")
        sealed = self._keys.encrypt(value)
        with writing(self._engine) as conn:
            found = conn.execute(
                select(secrets.c.created_at).where(secrets.c.name == name).with_for_update()
            ).first()
            if found is None:
                conn.execute(secrets.insert().values(name=name, value_enc=sealed, created_at=now, updated_at=now))
            else:
                conn.execute(secrets.update().where(secrets.c.name == name).values(value_enc=sealed, updated_at=now))
            conn.execute(audit.insert().values(audit_row(
                now, "secret_set", nid=None, flow=None, status=None, secret=name, actor=actor,
                created=found is None,
            )))
        return found is None

    def delete(self, name: str, *, now: datetime, actor: str) -> bool:
        """Forget `name`; False when there was no such secret."""
        require_aware(now, "SecretBox.delete(now)")
        with writing(self._engine) as conn:
            gone = conn.execute(secrets.delete().where(secrets.c.name == name)).rowcount
            if gone:
                conn.execute(audit.insert().values(audit_row(
                    now, "secret_deleted", nid=None, flow=None, status=None, secret=name, actor=actor,
                )))
        return bool(gone)

    def list(self) -> list[SecretInfo]:
        """Every secret's name and dates, by name."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                select(secrets.c.name, secrets.c.created_at, secrets.c.updated_at).order_by(secrets.c.name)
            ).all()
        return [SecretInfo(r.name, r.created_at, r.updated_at) for r in rows]

    def values(self, names: Collection[str]) -> dict[str, str]:
        """The values of those of `names` that exist (KeyMismatchError when no key of the ring fits)."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        with reading(self._engine) as conn:
            rows = conn.execute(select(secrets.c.name, secrets.c.value_enc).where(secrets.c.name.in_(wanted))).all()
        return {r.name: self._keys.decrypt(r.value_enc) for r in rows}


def read_secrets(url: str, keys: KeyRing, names: Collection[str]) -> dict[str, str]:
    """The values of `names` kept in the store at `url`, without starting a whole store (config
    loading). A store that does not exist yet, or predates secrets, has none."""
    parsed = parse_url(url)
    if parsed.drivername == "sqlite" and not Path(str(parsed.database)).exists():
        return {}
    engine = make_engine(url)
    try:
        with reading(engine) as conn:
            if not inspect(conn).has_table(secrets.name):
                return {}
        return SecretBox(engine, keys).values(names)
    finally:
        engine.dispose()
