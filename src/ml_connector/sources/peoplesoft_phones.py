"""PS_PERSONAL_PHONE rows as phone fields: country code joined, preferred first, extensions kept apart.

PeopleSoft stores the country code (COUNTRY_CODE, e.g. `1`, `44`), the number as typed
(`312/555-0142`) and an extension in separate columns, and marks one phone per person preferred
(PREF_PHONE_FLAG = Y). Fields made, per PHONE_TYPE: `PHONE_<TYPE>` (dialable: `+<cc> <number>`),
`PHONE_<TYPE>_EXT` when there is an extension; and `PHONE_PREFERRED` plus `PHONES` (text, `; `-separated), every
dialable number in order: the preferred one, then lines without an extension (a number with an
extension is a switchboard line that cannot take a text message), then the rest, by type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def dialable(country_code: Any, number: Any) -> str:
    """`+<country code> <number>` when a country code is given and the number has none."""
    text = str(number or "").strip()
    code = str(country_code or "").strip().lstrip("+").lstrip("0")
    if not text or text.startswith("+") or not code.isdigit():
        return text
    return f"+{code} {text}"


def pivot_phones(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    ranked: list[tuple[int, str, str]] = []
    for row in rows:
        number = dialable(row.get("COUNTRY_CODE"), row.get("PHONE"))
        if not number:
            continue
        kind = str(row.get("PHONE_TYPE") or "PREFERRED").strip() or "PREFERRED"
        preferred = str(row.get("PREF_PHONE_FLAG") or ("Y" if kind == "PREFERRED" else "N")).strip() == "Y"
        extension = str(row.get("EXTENSION") or "").strip()
        fields.setdefault(f"PHONE_{kind}", number)
        if extension:
            fields.setdefault(f"PHONE_{kind}_EXT", extension)
        ranked.append((0 if preferred else 1 if not extension else 2, kind, number))
    ranked.sort()
    fields["PHONES"] = "; ".join(number for _, _, number in ranked)  # text: compared as last-seen
    fields["PHONE_PREFERRED"] = next((n for rank, _, n in ranked if rank == 0), ranked[0][2] if ranked else "")
    return fields
