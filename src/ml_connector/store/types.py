"""Column types that behave the same on SQLite and PostgreSQL.

SQLite has no timestamp type: instants are stored as fixed-width ISO-8601 UTC text
(`YYYY-MM-DDTHH:MM:SS.ffffffZ`), so comparing and sorting the text is comparing the instants.
PostgreSQL uses timestamptz. Both give back aware UTC datetimes; naive ones are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.types import DateTime, LargeBinary, String, TypeDecorator, TypeEngine

_SQLITE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware instant, stored in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(27))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        # Runs for every timestamp of every row written: no conversion when already at UTC.
        if value is None:
            return None
        offset = value.utcoffset() if isinstance(value, datetime) else None
        if offset is None:
            raise ValueError(f"timestamps must be timezone-aware datetimes, got {value!r}")
        utc = value.astimezone(UTC) if offset else value
        if dialect.name == "sqlite":
            return utc.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"
        return utc

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """The usual processor, remembering the last instant: a batch binds one `now` many times."""
        convert = super().bind_processor(dialect)
        if convert is None:
            return None
        last: list[tuple[Any, Any]] = [(None, None)]  # one tuple, read and replaced whole

        def process(value: Any) -> Any:
            seen, bound = last[0]
            if value is seen and value is not None:
                return bound
            bound = convert(value)
            last[0] = (value, bound)
            return bound

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.strptime(value, _SQLITE_FORMAT).replace(tzinfo=UTC)
        assert isinstance(value, datetime)
        if value.tzinfo is None:  # a driver that drops the zone: the column is UTC by construction
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Sealed(TypeDecorator[bytes]):
    """An AES-GCM blob from store.crypto: personal data or a secret, never stored in clear.

    Every column of this type is re-encrypted by `ml-connector keys rotate` (store.rotation
    finds them through the metadata), so a new encrypted column only has to use it.
    """

    impl = LargeBinary
    cache_ok = True
