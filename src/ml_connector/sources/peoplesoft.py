"""Oracle PeopleSoft source: Integration Broker REST, polled through Query Access Services (QAS).

PeopleSoft has no delivered "what changed" feed for jobs, pay runs or phones, so shops define PS
Queries and run them over REST (erp-apis.md §2):

    GET /PSIGW/RESTListeningConnector/<NODE>/ExecuteQuery.v1/<OWNER>/<QUERY>/JSON/NONFILE
        ?isconnectedquery=N&maxrows=500&json_resp=true
        &prompt_uniquepromptname=FROM_DTTM,TO_DTTM&prompt_fieldvalue=2024-03-05-09.00.00.000000,...

Node, owner, query, prompt and column names are configuration. An entity is one of:

* a **changes** query with two datetime prompts (`prompts.since`/`prompts.until`, BETWEEN on
  LASTUPDDTTM): read by window, split at `maxrows` (peoplesoft_window). With `effective`, rows are
  effective-dated (PS_JOB: EFFDT, EFFSEQ): two more date prompts select rows whose EFFDT begins in
  the window, and a row's change time is the later of LASTUPDDTTM and the local midnight starting
  its EFFDT, so a future-dated row is read once, on its date, without any update;
* a **snapshot** query (`snapshot:`) over a table with no timestamp (PS_PERSONAL_PHONE): read in
  full by key order each poll, rows grouped per key into one record stamped with the poll's time;
  the flow's `changed` trigger (last-seen values) is the diff;
* a **members** query (`members:`) listing the people of a group (a pay group's employees with
  their preferred phone) page by page after the last key, for fan-out recipients;
* a **due** query (`due:`) with two date prompts: records whose date falls in a range;
* a **lookup**: the delivered Employee Directory API (`directory: true`), or a query with one
  prompt (a person's phones from PS_PERSONAL_PHONE).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from ml_connector.core.exposure import minimise
from ml_connector.core.models import CheckResult, Record
from ml_connector.errors import SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources.ebs_clock import local_to_utc, since_for_request, utc_to_local
from ml_connector.sources.fields import PhoneRegion, TimeZoneName
from ml_connector.sources.peoplesoft_auth import PsBasicAuth, PsOAuth2Auth
from ml_connector.sources.peoplesoft_phones import pivot_phones
from ml_connector.sources.peoplesoft_window import SECOND, SplitStats, ceil_second, floor_second, read_window
from ml_connector.sources.peoplesoft_wire import (
    ColumnKeys,
    parse_date,
    parse_datetime,
    parse_qas,
    plain_row,
    prompt_query,
    query_path,
    raise_for_ib,
    strftime_pattern,
)
from ml_connector.sources.retrying import RetryPolicy, TryAgain

log = logging.getLogger(__name__)

#: Default for `exposed_fields`: what the product promises may leave PeopleSoft.
DEFAULT_EXPOSED = ("EMPLID", "NAME_DISPLAY", "FIRST_NAME", "DEPTNAME", "JOBTITLE", "PHONE", "PHONES", "PHONE_*",
                   "COUNTRY_CODE", "EXTENSION", "emplid", "emplnamedisplay", "emplcellphone", "empljobtitle",
                   "empldepartment")

_RETRIED = frozenset({500, 502, 503, 504})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class BasicAuthConfig(_Model):
    type: Literal["basic"]
    user: str
    password: SecretStr


class OAuth2Config(_Model):
    """Client credentials at the customer's IdP (IDCS, Azure AD, Okta, Ping)."""

    type: Literal["oauth2"]
    token_url: AnyHttpUrl
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    audience: str | None = None
    client_auth: Literal["basic", "post"] = "basic"
    refresh_before: float = Field(default=60, ge=0)
    #: The OPRID the IdP's tokens map to (shown by check; PeopleSoft does not echo it).
    user: str | None = None


class WindowPrompts(_Model):
    since: str = "FROM_DTTM"
    until: str = "TO_DTTM"


class EffectiveSpec(_Model):
    """Effective dating: the date field, its sequence, and the date prompts selecting rows by EFFDT."""

    date: str = "EFFDT"
    sequence: str | None = "EFFSEQ"
    since: str = "FROM_EFFDT"
    until: str = "TO_EFFDT"


class SnapshotSpec(_Model):
    """A table with no timestamp, read in full by key order: `after` is the keyset prompt."""

    after: str = "AFTER_EMPLID"
    start: str = " "
    #: Phone rows pivoted into fields (PS_PERSONAL_PHONE); otherwise the group's rows as ROWS.
    phones: bool = True


class MembersSpec(_Model):
    """Members of a group, ordered by key, paged by `after` (the last key of the page before)."""

    after: str = "AFTER_EMPLID"
    start: str = " "


class DueSpec(_Model):
    since: str = "FROM_DT"
    until: str = "TO_DT"


class LookupSpec(_Model):
    """Employee Directory (`directory: true`, path segment = the key) or a query with one prompt."""

    directory: bool = False
    path: str = "employeedirectory/viewemployee"
    results: str = "employees"
    query: str | None = None
    prompt: str = "EMPLID"
    phones: bool = True


class PsEntity(_Model):
    query: str | None = None
    owner: str = "PUBLIC"
    key: list[str] = Field(min_length=1)
    changed_at: str = "LASTUPDDTTM"
    prompts: WindowPrompts = WindowPrompts()
    fixed_prompts: dict[str, str] = {}
    #: Extra datetime columns turned into aware instants (templates show them in any zone).
    datetimes: list[str] = []
    dates: list[str] = []
    maxrows: int = Field(default=500, ge=1)
    maxrows_ceiling: int = Field(default=20000, ge=1)
    effective: EffectiveSpec | None = None
    snapshot: SnapshotSpec | None = None
    members: MembersSpec | None = None
    due: DueSpec | None = None
    lookup: LookupSpec | None = None
    #: Fields triggers need that templates may not use (kept in records besides `exposed_fields`).
    control_fields: list[str] = []

    @model_validator(mode="after")
    def _shape(self) -> PsEntity:
        if self.query is None and not (self.lookup and self.lookup.directory):
            raise ValueError("needs `query` (or a `lookup` with `directory: true`)")
        if self.maxrows_ceiling < self.maxrows:
            raise ValueError("maxrows_ceiling must be at least maxrows")
        return self


class PeopleSoftConfig(_Model):
    type: Literal["peoplesoft"]
    base_url: AnyHttpUrl
    node: str
    auth: BasicAuthConfig | OAuth2Config = Field(discriminator="type")
    timezone: TimeZoneName
    datetime_format: str = "YYYY-MM-DD-HH.MI.SS.FFFFFF"
    column_keys: ColumnKeys = "auto"
    tools_query: str | None = "XX_MLC_TOOLS"
    operation: str = "QAS_EXECUTEQRY_REST_GET"
    directory_operation: str = "HR_EMPLDIR_VIEWEMP_GET"
    default_region: PhoneRegion = "US"
    verify_tls: bool = True
    ca_bundle: Path | None = None
    timeout: float = 60.0
    retries: int = Field(default=3, ge=0, le=10)
    retry_delay: float = Field(default=1.0, ge=0)
    #: Fields templates may use and events may keep; None: no restriction. Globs ("PHONE_*") allowed.
    exposed_fields: list[str] | None = None
    entities: dict[str, PsEntity] = Field(min_length=1)

    @model_validator(mode="after")
    def _format(self) -> PeopleSoftConfig:
        strftime_pattern(self.datetime_format)
        return self


@dataclass(slots=True)
class _Ctx:
    entity: str
    spec: PsEntity


class PeopleSoftSource:
    """Implements sources.base.Source for PeopleSoft (plus members, snapshots and due dates)."""

    def __init__(self, name: str, config: PeopleSoftConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.config = config
        self._retry = RetryPolicy(config.retries, config.retry_delay)
        self.zone = ZoneInfo(config.timezone)
        self.pattern = strftime_pattern(config.datetime_format)
        self._clock = clock or (lambda: datetime.now(UTC))
        auth = config.auth
        self.auth: httpx.Auth
        if isinstance(auth, BasicAuthConfig):
            self.auth = PsBasicAuth(auth.user, auth.password.get_secret_value())
            self.user = auth.user
        else:
            self.auth = PsOAuth2Auth(str(auth.token_url), auth.client_id, auth.client_secret.get_secret_value(),
                                     scope=auth.scope, audience=auth.audience, client_auth=auth.client_auth,
                                     refresh_before=timedelta(seconds=auth.refresh_before), clock=self._clock,
                                     source=name)
            self.user = auth.user or f"(token of client {auth.client_id})"
        verify: Any = str(config.ca_bundle) if config.ca_bundle and config.verify_tls else config.verify_tls
        self._http = httpx.AsyncClient(base_url=str(config.base_url).rstrip("/"), auth=self.auth,
                                       timeout=config.timeout, transport=transport, verify=verify,
                                       headers={"Accept": "application/json"})
        self.split_stats = SplitStats()

    # -- one call ---------------------------------------------------------------------------------

    async def _get(self, path: str, params: Mapping[str, str], *, what: str, operation: str) -> httpx.Response:
        async def attempt(number: int) -> httpx.Response:
            try:
                response = await self._http.get(path, params=params)
            except SourceUnavailable as exc:  # the login in the auth flow met a 5xx
                raise TryAgain(exc) from None
            except httpx.HTTPError as exc:
                raise TryAgain(SourceUnavailable(f"{what}: cannot reach PeopleSoft: {type(exc).__name__}",
                                                 source=self.name)) from None
            if response.status_code in _RETRIED:
                raise TryAgain(SourceUnavailable(
                    f"{what}: the Integration Gateway answered HTTP {response.status_code} (is the IB domain "
                    f"running? the gateway fails before any handler when it is down), {number} time(s)",
                    source=self.name))
            raise_for_ib(response, what, operation, self.user, self.name)
            if response.status_code >= 400:
                raise SourceError(f"{what}: HTTP {response.status_code}", source=self.name)
            return response

        return await self._retry.run(attempt, source=self.name, what=what)

    async def run_query(self, spec: PsEntity, prompts: Mapping[str, str], maxrows: int,
                        what: str) -> tuple[int, list[dict[str, Any]]]:
        """One QAS run: (numrows, rows with plain FIELD keys)."""
        assert spec.query is not None  # noqa: S101 - config validator
        params = {"isconnectedquery": "N", "maxrows": str(maxrows), "json_resp": "true",
                  **prompt_query({**spec.fixed_prompts, **prompts}, self.name)}
        response = await self._get(query_path(self.config.node, spec.owner, spec.query), params, what=what,
                                   operation=self.config.operation)
        numrows, rows = parse_qas(response, what, self.user, self.name)
        return numrows, [plain_row(r, self.config.column_keys, what, self.name) for r in rows]

    # -- records ----------------------------------------------------------------------------------

    def _entity(self, entity: str) -> PsEntity:
        try:
            return self.config.entities[entity]
        except KeyError:
            raise SourceError(f"no entity {entity!r} configured", source=self.name) from None

    def _key(self, entity: str, spec: PsEntity, row: Mapping[str, Any]) -> str:
        missing = [k for k in spec.key if k not in row]
        if missing:
            raise SourcePayloadError(f"{entity}: rows have no column {', '.join(missing)} (columns: "
                                     f"{', '.join(sorted(row)) or 'none'}): check the query's fields", source=self.name)
        return "/".join(str(row[k]).strip() for k in spec.key)

    def _minimal(self, spec: PsEntity, data: dict[str, Any]) -> dict[str, Any]:
        """Only what may leave PeopleSoft (`exposed_fields`), plus keys and control fields."""
        patterns = self.config.exposed_fields
        if patterns is None:
            return data
        keep = {*spec.key, spec.changed_at, *spec.control_fields}
        if spec.effective is not None:
            keep |= {spec.effective.date, spec.effective.sequence or spec.effective.date}
        return minimise(data, patterns, keep)

    def _typed(self, entity: str, spec: PsEntity, row: dict[str, Any]) -> dict[str, Any]:
        try:
            for name in spec.datetimes:
                if name in row:
                    row[name] = parse_datetime(row[name], self.pattern, self.zone)
            for name in spec.dates:
                if name in row:
                    row[name] = parse_date(row[name])
        except ValueError as exc:
            raise SourcePayloadError(f"{entity}: {exc}", source=self.name) from None
        return row

    def _record(self, entity: str, spec: PsEntity, row: dict[str, Any]) -> Record:
        key = self._key(entity, spec, row)
        try:
            changed = parse_datetime(row.get(spec.changed_at), self.pattern, self.zone)
            effective = spec.effective
            if effective is not None:
                begins = parse_date(row.get(effective.date))
                if begins is not None:
                    midnight = local_to_utc(datetime.combine(begins, time()), self.zone)
                    changed = midnight if changed is None else max(changed, midnight)
                    row[effective.date] = begins
        except ValueError as exc:
            raise SourcePayloadError(f"{entity}.{spec.changed_at}: {exc}", source=self.name) from None
        if changed is None:
            raise SourcePayloadError(f"{entity}: row {key} has no {spec.changed_at}", source=self.name)
        row[spec.changed_at] = changed
        data = self._minimal(spec, self._typed(entity, spec, row))
        return Record(entity=entity, key=key, changed_at=changed, data=data)

    def _window_prompts(self, spec: PsEntity, since: datetime, until: datetime) -> dict[str, str]:
        low = since_for_request(floor_second(since), self.zone)
        high = utc_to_local(ceil_second(until) - SECOND, self.zone)
        prompts = {spec.prompts.since: low.strftime(self.pattern), spec.prompts.until: high.strftime(self.pattern)}
        if spec.effective is not None:
            first, last = self.midnights(since, until)
            prompts |= {spec.effective.since: first.isoformat(), spec.effective.until: last.isoformat()}
        return prompts

    def midnights(self, since: datetime, until: datetime) -> tuple[date, date]:
        """The dates whose local midnight lies in [since, until) (first > last: none)."""
        local = utc_to_local(since, self.zone)
        first = local.date() if local.time() == time() else local.date() + timedelta(days=1)
        last = utc_to_local(until - timedelta(microseconds=1), self.zone).date()
        while first <= last and local_to_utc(datetime.combine(first, time()), self.zone) < since:
            first += timedelta(days=1)
        return first, last

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        spec = self._entity(entity)
        if since >= until:
            return
        if spec.snapshot is not None:
            async for record in self._snapshot(entity, spec, since, until):
                yield record
            return

        async def read(low: datetime, high: datetime, maxrows: int) -> tuple[int, list[Record]]:
            numrows, rows = await self.run_query(spec, self._window_prompts(spec, low, high), maxrows,
                                                 f"query {spec.query}")
            return numrows, [self._record(entity, spec, row) for row in rows]

        async for record in read_window(read, since, until, maxrows=spec.maxrows, ceiling=spec.maxrows_ceiling,
                                        what=f"query {spec.query}", source=self.name, stats=self.split_stats):
            yield record

    # -- keyset reads (snapshots, members) ---------------------------------------------------------

    async def _keyset(self, spec: PsEntity, after_prompt: str, start: str, prompts: Mapping[str, str],
                      group: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of rows ordered by `group` (a key column), after the last complete group.

        A full page may end in the middle of a group's rows: that group is read again on the next page.
        """
        after = start
        while True:
            numrows, rows = await self.run_query(spec, {**prompts, after_prompt: after}, spec.maxrows,
                                                 f"query {spec.query}")
            if numrows < spec.maxrows:
                if rows:
                    yield rows
                return
            last = str(rows[-1].get(group, ""))
            complete = [r for r in rows if str(r.get(group, "")) != last]
            if not complete:
                raise SourceError(f"query {spec.query}: one {group} ({last}) has {numrows} rows or more; raise "
                                  "`maxrows` for this entity", source=self.name)
            new_after = str(complete[-1].get(group, ""))
            if new_after <= after:
                raise SourcePayloadError(f"query {spec.query}: rows are not ordered by {group}", source=self.name)
            yield complete
            after = new_after

    async def _snapshot(self, entity: str, spec: PsEntity, since: datetime,
                        until: datetime) -> AsyncIterator[Record]:
        """The whole table, one record per key, stamped with the poll's time clamped into the window."""
        assert spec.snapshot is not None  # noqa: S101
        stamp = max(since, min(self._clock(), until - timedelta(microseconds=1)))
        group = spec.key[0]
        async for rows in self._keyset(spec, spec.snapshot.after, spec.snapshot.start, {}, group):
            batch: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                batch.setdefault(self._key(entity, spec, row), []).append(row)
            for key in sorted(batch):
                data: dict[str, Any] = {k: batch[key][0][k] for k in spec.key}
                if spec.snapshot.phones:
                    data |= pivot_phones(batch[key])
                else:
                    data["ROWS"] = batch[key]
                yield Record(entity=entity, key=key, changed_at=stamp, data=self._minimal(spec, data))

    async def members(self, entity: str, match: Mapping[str, str]) -> AsyncIterator[list[Record]]:
        """Pages of the group's members (e.g. a pay group's employees), at most `maxrows` each."""
        spec = self._entity(entity)
        if spec.members is None:
            raise SourceError(f"entity {entity!r} has no `members` settings", source=self.name)
        now = self._clock()
        async for rows in self._keyset(spec, spec.members.after, spec.members.start, match, spec.key[0]):
            page = []
            for row in rows:
                data = self._minimal(spec, self._typed(entity, spec, row) | pivot_phones([row]))
                page.append(Record(entity=entity, key=self._key(entity, spec, row), changed_at=now, data=data))
            yield page

    async def fetch_due(self, entity: str, first: date, last: date) -> AsyncIterator[Record]:
        """Records whose due date lies in [first, last] (the entity's `due` prompts)."""
        spec = self._entity(entity)
        if spec.due is None:
            raise SourceError(f"entity {entity!r} has no `due` prompts", source=self.name)
        window = {spec.due.since: first.isoformat(), spec.due.until: last.isoformat()}
        numrows, rows = await self.run_query(spec, window, spec.maxrows_ceiling, f"query {spec.query}")
        if numrows >= spec.maxrows_ceiling:
            raise SourceError(f"query {spec.query}: {numrows} records due between {first} and {last} reach "
                              "maxrows_ceiling; raise it", source=self.name)
        for row in rows:
            yield self._record(entity, spec, row)

    # -- look-ups ---------------------------------------------------------------------------------

    async def lookup(self, entity: str, key: str) -> Record | None:
        spec = self._entity(entity)
        look = spec.lookup or LookupSpec(query=spec.query, prompt=spec.key[0])
        now = self._clock()
        if look.directory:
            path = f"/PSIGW/RESTListeningConnector/{quote(self.config.node, safe='')}/{look.path.strip('/')}/" \
                   f"{quote(key, safe='')}"
            response = await self._get(path, {}, what=look.path, operation=self.config.directory_operation)
            try:
                people = response.json().get(look.results)
            except (ValueError, AttributeError):
                raise SourcePayloadError(f"{look.path}: answer is not the JSON employee list",
                                         source=self.name) from None
            if not isinstance(people, list):
                raise SourcePayloadError(f"{look.path}: answer has no {look.results} list", source=self.name)
            match = [p for p in people if isinstance(p, dict) and str(p.get("emplid", "")).strip() == key] or \
                [p for p in people if isinstance(p, dict)]
            if not match:
                return None
            data = {k: (v.strip() if isinstance(v, str) else v) for k, v in match[0].items()}
            return Record(entity=entity, key=key, changed_at=now, data=self._minimal(spec, data))
        query_spec = spec.model_copy(update={"query": look.query or spec.query})
        _, rows = await self.run_query(query_spec, {look.prompt: key}, spec.maxrows, f"query {query_spec.query}")
        if not rows:
            return None
        data = dict(rows[0])
        if look.phones:
            data |= pivot_phones(rows)
        return Record(entity=entity, key=key, changed_at=now, data=self._minimal(spec, self._typed(entity, spec, data)))

    # -- check ------------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """PeopleTools release (PSSTATUS via `tools_query`), node, user, and each entity's query reached."""
        details: dict[str, str] = {"url": str(self.config.base_url).rstrip("/"), "node": self.config.node,
                                   "user": self.user, "auth": self.config.auth.type}
        if self.config.tools_query:
            tools = PsEntity(query=self.config.tools_query, key=["TOOLSREL"])
            _, rows = await self.run_query(tools, {}, 1, f"query {self.config.tools_query}")
            details["peopletools"] = str(rows[0].get("TOOLSREL", "?")).strip() if rows else "?"
        now = self._clock()
        reached: list[str] = []
        for entity, spec in self.config.entities.items():
            if spec.query is None:
                continue
            if spec.snapshot is not None:
                prompts = {spec.snapshot.after: spec.snapshot.start}
            elif spec.members is not None:
                prompts = {spec.members.after: spec.members.start}
            elif spec.due is not None:
                prompts = {spec.due.since: now.date().isoformat(), spec.due.until: now.date().isoformat()}
            elif spec.lookup is not None and not spec.lookup.directory and spec.lookup.query in (None, spec.query):
                continue  # needs a key; reached when a flow looks someone up
            else:
                prompts = self._window_prompts(spec, now - timedelta(days=1), now)
            if spec.members is not None:
                continue  # its group prompts come from the flow's record
            await self.run_query(spec, prompts, 1, f"query {spec.query} (entity {entity})")
            reached.append(spec.query)
        details["queries"] = ", ".join(dict.fromkeys(reached)) or "-"
        return CheckResult(system="Oracle PeopleSoft", details=details)

    async def aclose(self) -> None:
        await self._http.aclose()


def build(config: PeopleSoftConfig, context: Mapping[str, Any]) -> PeopleSoftSource:
    return PeopleSoftSource(context.get("name", "peoplesoft"), config,
                            transport=(context.get("transports") or {}).get(context.get("name")),
                            clock=context.get("clock"))
