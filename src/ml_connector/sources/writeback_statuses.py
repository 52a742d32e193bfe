"""The `statuses` setting of a source's write-back: which final statuses it records.

Written as names in any case (`[delivered, FAILED]`); only final statuses are allowed, since a
write-back records how a notification ended.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from ml_connector.core.lifecycle import FINAL
from ml_connector.core.models import Status


def _names(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(str(v).strip().lower() for v in value)
    return value


def _final_only(value: frozenset[Status]) -> frozenset[Status]:
    early = sorted(str(s) for s in value - FINAL)
    if early:
        raise ValueError(f"only final statuses are written back, not {', '.join(early)} "
                         f"(final: {', '.join(sorted(str(s) for s in FINAL))})")
    return value


#: A write-back's `statuses`: final statuses only, given by name.
FinalStatuses = Annotated[frozenset[Status], BeforeValidator(_names), AfterValidator(_final_only)]
