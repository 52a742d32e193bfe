"""RFC_READ_TABLE as SAP implements it: WHERE in 72-character OPTIONS lines, the 512-character work
area, fixed offsets. The pure parts (clauses, field groups, row parsing) and the reader.

* OPTIONS rows hold 72 characters and ABAP reads them as consecutive tokens, so the clause is cut
  between tokens, never inside a quoted literal (`where_lines`).
* DATA-WA holds 512 characters: a wider selection raises DATA_BUFFER_EXCEEDED. The reader then
  asks for the field list (NO_DATA), reads the fields in groups that fit, each with the key
  fields, and joins the groups by key (`field_groups`).
* Paging with ROWSKIPS/ROWCOUNT; SAP promises no order, so the reader returns the whole selection
  keyed (rows that paging drift showed twice count once) and the caller orders it.
* Values are cut at each field's OFFSET and LENGTH (a delimiter inside a value cannot shift
  fields): DATS -> date, TIMS -> time, packed -> Decimal (SAP's trailing minus), CHAR right-trimmed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Any

from ml_connector.errors import SourceError, SourcePayloadError
from ml_connector.sources.sap_odata import SapWhere
from ml_connector.sources.sap_odata_values import alpha_pad
from ml_connector.sources.sap_rfc_client import AgentClient, RfcError

LINE_WIDTH = 72
WORK_AREA = 512
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def quote(value: Any) -> str:
    """An Open SQL literal: single quotes, inner quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def _atoms(clause: str) -> list[str]:
    """Tokens of a clause; a quoted literal (with its doubled quotes) is one token."""
    atoms: list[str] = []
    current = ""
    i = 0
    while i < len(clause):
        ch = clause[i]
        if ch == "'":
            end = i + 1
            while end < len(clause):
                if clause[end] == "'" and clause[end + 1:end + 2] == "'":
                    end += 2
                    continue
                if clause[end] == "'":
                    break
                end += 1
            if end >= len(clause):
                raise ValueError(f"a literal is not closed in {clause[:60]!r}")
            current += clause[i:end + 1]
            i = end + 1
            continue
        if ch.isspace():
            if current:
                atoms.append(current)
            current = ""
        else:
            current += ch
        i += 1
    if current:
        atoms.append(current)
    return atoms


def where_lines(clause: str, width: int = LINE_WIDTH) -> list[str]:
    """The clause in OPTIONS lines of at most `width` characters, cut only between tokens."""
    lines: list[str] = []
    line = ""
    for atom in _atoms(clause):
        if len(atom) > width:
            raise ValueError(f"the literal or name {atom[:30]!r}... is longer than an OPTIONS line ({width})")
        candidate = f"{line} {atom}" if line else atom
        if len(candidate) > width:
            lines.append(line)
            line = atom
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


def condition(where: SapWhere, alpha: Mapping[str, int]) -> str:
    value = where.value
    width = alpha.get(where.field)
    if width and isinstance(value, str | int):
        value = alpha_pad(str(value), width)
    return f"{where.field} {_SQL_OPS[where.operator]} {quote(value)}"


def conjunction(parts: Sequence[str]) -> str:
    return " AND ".join(f"( {p} )" if " OR " in p else p for p in parts if p)


def in_list(field_name: str, values: Sequence[str]) -> str:
    return f"{field_name} IN ( {' , '.join(quote(v) for v in values)} )"


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    offset: int
    length: int
    type: str
    text: str = ""


def parse_fields(rows: Sequence[Mapping[str, Any]], table: str) -> list[FieldInfo]:
    try:
        return [FieldInfo(str(r["FIELDNAME"]).strip(), int(str(r.get("OFFSET") or 0)),
                          int(str(r.get("LENGTH") or 0)), str(r.get("TYPE", "C")).strip() or "C",
                          str(r.get("FIELDTEXT", "")).strip()) for r in rows]
    except (KeyError, ValueError):
        raise ValueError(f"RFC_READ_TABLE {table}: FIELDS without FIELDNAME/OFFSET/LENGTH") from None


def convert(kind: str, text: str) -> Any:
    """A work-area slice as Python, by its ABAP type."""
    raw = text.strip()
    if kind == "D":
        if raw in ("", "00000000"):
            return None
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
    if kind == "T":
        if raw == "":
            return None
        raw = raw.zfill(6)
        return time(int(raw[:2]), int(raw[2:4]), int(raw[4:6]))
    if kind in ("P", "F", "I", "b", "s", "8"):
        if raw == "":
            return Decimal("0") if kind == "P" else 0
        negative = raw.endswith("-")
        number = Decimal(raw.rstrip("-").strip())
        number = -number if negative else number
        return int(number) if kind in ("I", "b", "s", "8") else number
    return text.rstrip()


def parse_row(wa: str, fields: Sequence[FieldInfo]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in fields:
        try:
            row[f.name] = convert(f.type, wa[f.offset:f.offset + f.length])
        except (ValueError, InvalidOperation, IndexError):
            raise ValueError(f"field {f.name} ({f.type}) holds {wa[f.offset:f.offset + f.length]!r}") from None
    return row


def field_groups(fields: Sequence[FieldInfo], keys: Sequence[str], delimiter: int = 1,
                 limit: int = WORK_AREA) -> list[list[str]]:
    """Fields in groups that each fit the work area, every group starting with the key fields."""
    by_name = {f.name: f for f in fields}
    missing = [k for k in keys if k not in by_name]
    if missing:
        raise ValueError(f"key field(s) {', '.join(missing)} not among the fields read")
    base = sum(by_name[k].length for k in keys) + delimiter * (len(keys) - 1)
    groups: list[list[str]] = []
    current: list[str] = list(keys)
    width = base
    for f in fields:
        if f.name in keys:
            continue
        extra = f.length + delimiter
        if base + extra > limit:
            raise ValueError(f"field {f.name} ({f.length} characters) does not fit {limit} with the key")
        if width + extra > limit:
            groups.append(current)
            current, width = list(keys), base
        current.append(f.name)
        width += extra
    groups.append(current)
    return groups


class TableReader:
    """RFC_READ_TABLE over the agent: paging, and DATA_BUFFER_EXCEEDED split into field groups."""

    def __init__(self, agent: AgentClient, *, source: str, delimiter: str = "|", function: str = "RFC_READ_TABLE"):
        self.agent = agent
        self.source = source
        self.delimiter = delimiter
        self.function = function
        #: (table, fields asked) -> the field groups that fit, learnt from DATA_BUFFER_EXCEEDED
        self.groups: dict[tuple[str, tuple[str, ...]], list[list[str]]] = {}
        self.calls = 0

    async def fields(self, table: str, names: Sequence[str] = ()) -> list[FieldInfo]:
        """The field list (NO_DATA): names, offsets, lengths, types and texts. SAP checks the work
        area before NO_DATA, so for a selection wider than 512 the dictionary is asked instead
        (DDIF_FIELDINFO_GET)."""
        try:
            result = await self._call(table, names, [], no_data=True, skip=0, count=0)
        except RfcError as exc:
            if exc.key not in ("DATA_BUFFER_EXCEEDED", "TABLE_WITHOUT_DATA", "FIELD_NOT_VALID"):
                raise
            return await self.dictionary(table, names)  # names the fields the table has
        return parse_fields(result.tables.get("FIELDS", []), table)

    async def dictionary(self, table: str, names: Sequence[str] = ()) -> list[FieldInfo]:
        """The table's fields from DDIF_FIELDINFO_GET (output lengths, as RFC_READ_TABLE writes them)."""
        result = await self.agent.call("DDIF_FIELDINFO_GET", {"TABNAME": table}, what=table)
        found: list[FieldInfo] = []
        try:
            for row in result.tables.get("DFIES_TAB", []):
                length = int(str(row.get("OUTPUTLEN") or row.get("LENG") or 0))
                found.append(FieldInfo(str(row["FIELDNAME"]).strip(), int(str(row.get("OFFSET") or 0)), length,
                                       str(row.get("INTTYPE", "C")).strip() or "C",
                                       str(row.get("FIELDTEXT", "")).strip()))
        except (KeyError, ValueError):
            raise SourcePayloadError(f"DDIF_FIELDINFO_GET {table}: DFIES_TAB cannot be read",
                                     source=self.source) from None
        if names:
            wanted = {n.upper() for n in names}
            unknown = wanted - {f.name for f in found}
            if unknown:
                raise SourceError(f"{table} has no field {', '.join(sorted(unknown))}; it has: "
                                  f"{', '.join(f.name for f in found)}", source=self.source)
            found = [f for f in found if f.name in wanted]
        return found

    async def _call(self, table: str, names: Sequence[str], options: list[str], *, no_data: bool, skip: int,
                    count: int) -> Any:
        self.calls += 1
        imports: dict[str, Any] = {"QUERY_TABLE": table, "DELIMITER": self.delimiter, "ROWSKIPS": skip,
                                   "ROWCOUNT": count}
        if no_data:
            imports["NO_DATA"] = "X"
        tables = {"OPTIONS": [{"TEXT": line} for line in options], "FIELDS": [{"FIELDNAME": n} for n in names]}
        try:
            return await self.agent.call(self.function, imports, tables, what=table)
        except RfcError as exc:
            if exc.key in ("TABLE_WITHOUT_DATA", "FIELD_NOT_VALID") and names:
                raise RfcError(f"{table}: {exc.body.message or exc.key} (fields asked: {', '.join(names)})",
                               source=self.source, body=exc.body) from None
            raise

    async def _pages(self, table: str, names: Sequence[str], options: list[str],
                     page_size: int, limit: int | None) -> tuple[list[FieldInfo], list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        fields: list[FieldInfo] = []
        skip = 0
        while True:
            count = page_size if limit is None else min(page_size, limit - len(rows))
            result = await self._call(table, names, options, no_data=False, skip=skip, count=count)
            fields = parse_fields(result.tables.get("FIELDS", []), table)
            data = result.tables.get("DATA", [])
            if not isinstance(data, list):
                raise SourcePayloadError(f"{table}: DATA is not a table", source=self.source)
            try:
                rows.extend(parse_row(str(r.get("WA", "")), fields) for r in data)
            except (ValueError, AttributeError) as exc:
                raise SourcePayloadError(f"{table}: a DATA row cannot be read: {exc}", source=self.source) from None
            skip += len(data)
            if len(data) < count or (limit is not None and len(rows) >= limit):
                return fields, rows

    async def read(self, table: str, names: Sequence[str], keys: Sequence[str], clause: str, *,
                   page_size: int = 500, limit: int | None = None) -> tuple[list[FieldInfo], list[dict[str, Any]]]:
        """Every row matching `clause`, deduplicated by key (paging drift), in SAP's order."""
        try:
            options = where_lines(clause)
        except ValueError as exc:
            raise SourceError(f"{table}: {exc}", source=self.source) from None
        cache_key = (table, tuple(names))
        if cache_key not in self.groups:
            try:
                fields, rows = await self._pages(table, names, options, page_size, limit)
                return fields, self._unique(rows, keys)
            except RfcError as exc:
                if exc.key != "DATA_BUFFER_EXCEEDED":
                    raise
            every = await self.fields(table, names)
            try:
                self.groups[cache_key] = field_groups(every, keys, len(self.delimiter))
            except ValueError as exc:
                raise SourceError(f"{table}: {exc}", source=self.source) from None
        joined: dict[tuple[Any, ...], dict[str, Any]] = {}
        all_fields: list[FieldInfo] = []
        pending = [list(g) for g in self.groups[cache_key]]
        done: list[list[str]] = []
        n = 0
        while pending:
            group = pending.pop(0)
            try:
                fields, rows = await self._pages(table, group, options, page_size, limit)
            except RfcError as exc:
                # the dictionary's lengths and SAP's work area disagree: halve the group and go on
                rest = [f for f in group if f not in keys]
                if exc.key != "DATA_BUFFER_EXCEEDED" or len(rest) < 2:
                    raise
                half = len(rest) // 2
                pending[:0] = [[*keys, *rest[:half]], [*keys, *rest[half:]]]
                continue
            done.append(group)
            all_fields += [f for f in fields if n == 0 or f.name not in keys]
            for row in rows:
                key = tuple(row.get(k) for k in keys)
                if n == 0:
                    joined.setdefault(key, {}).update(row)
                elif key in joined:  # a row that appeared between the groups' reads waits for the next poll
                    joined[key].update(row)
            n += 1
        self.groups[cache_key] = done
        complete = [r for r in joined.values() if all(f.name in r for f in all_fields)]
        return all_fields, complete

    @staticmethod
    def _unique(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            seen[tuple(row.get(k) for k in keys)] = row
        return list(seen.values())
