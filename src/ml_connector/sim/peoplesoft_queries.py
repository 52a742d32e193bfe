"""The PS Queries the simulated shop has defined, as Query Access Services runs them.

Each query is what a PeopleSoft admin would build in Query Manager: records joined, criteria on
bind prompts, selected fields. Values are rendered by the caller (``peoplesoft.py``); here they
are Python values: naive server-local datetimes, dates, strings (blank = one space), numbers.

Criteria use BETWEEN, as Query Manager does, so both ends of a time range are inclusive. Only
``XX_MLC_PAYGROUP_EES`` and ``XX_MLC_PHONES`` have an ORDER BY; every other query returns rows in
the order the database finds them (here: insertion order), so a truncated answer is an arbitrary
part of the matching rows, not the oldest ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ml_connector.sim.peoplesoft_data import BLANK, DEPARTMENTS, JOBS, JobRow, Tables

Prompts = Mapping[str, Any]
Row = dict[str, Any]

_DEPT = dict(DEPARTMENTS)
_JOB = dict(JOBS)


@dataclass(frozen=True)
class QueryDef:
    """A public query: its unique prompt names with their kinds, and how it reads the tables."""

    name: str
    prompts: Mapping[str, str]  # prompt name -> "datetime" | "date" | "text"
    run: Callable[[Tables, Prompts, date], list[Row]]


def _between(value: datetime | date, low: datetime | date, high: datetime | date) -> bool:
    return low <= value <= high


def _person_cols(t: Tables, emplid: str) -> Row:
    p = t.people.get(emplid)
    return {"NAME_DISPLAY": p.name_display if p else BLANK, "FIRST_NAME": p.first if p else BLANK}


def _jobs(t: Tables, p: Prompts, today: date) -> list[Row]:
    rows: list[Row] = []
    for j in t.jobs:
        if not j.committed:
            continue
        if not (_between(j.lastupddttm, p["FROM_DTTM"], p["TO_DTTM"])
                or _between(j.effdt, p["FROM_EFFDT"], p["TO_EFFDT"])):
            continue
        rows.append({"EMPLID": j.emplid, "EMPL_RCD": j.empl_rcd, "EFFDT": j.effdt, "EFFSEQ": j.effseq,
                     "ACTION": j.action, "ACTION_REASON": j.action_reason, "HR_STATUS": j.hr_status,
                     "DEPTID": j.deptid, "DEPTNAME": _DEPT.get(j.deptid, BLANK), "JOBCODE": j.jobcode,
                     "JOBTITLE": _JOB.get(j.jobcode, BLANK), **_person_cols(t, j.emplid),
                     "ANNUAL_RT": j.salary, "LASTUPDDTTM": j.lastupddttm})
    return rows


def _payruns(t: Tables, p: Prompts, today: date) -> list[Row]:
    return [{"COMPANY": r.company, "PAYGROUP": r.paygroup, "PAY_END_DT": r.pay_end_dt, "CHECK_DT": r.check_dt,
             "RUN_ID": r.run_id, "PAY_CONFIRM_RUN": r.pay_confirm_run, "LASTUPDDTTM": r.lastupddttm}
            for r in t.payruns if r.committed and _between(r.lastupddttm, p["FROM_DTTM"], p["TO_DTTM"])]


def _paygroup_employees(t: Tables, p: Prompts, today: date) -> list[Row]:
    """Active employees of a pay group with their preferred phone, after an EMPLID, by EMPLID."""
    preferred = {ph.emplid: ph for ph in t.phones if ph.pref_phone_flag == "Y"}
    current: dict[str, JobRow] = {}  # the effective-dated current row per person, in one pass
    for j in t.jobs:
        best = current.get(j.emplid)
        if j.committed and j.effdt <= today and (best is None or (j.effdt, j.effseq) > (best.effdt, best.effseq)):
            current[j.emplid] = j
    rows: list[Row] = []
    for emplid in sorted(t.people):
        if emplid <= str(p["AFTER_EMPLID"]):
            continue
        job = current.get(emplid)
        if job is None or job.hr_status != "A" or job.company != p["COMPANY"] or job.paygroup != p["PAYGROUP"]:
            continue
        phone = preferred.get(emplid)
        rows.append({"EMPLID": emplid, **_person_cols(t, emplid), "DEPTNAME": _DEPT.get(job.deptid, BLANK),
                     "JOBTITLE": _JOB.get(job.jobcode, BLANK),
                     "COUNTRY_CODE": phone.country_code if phone else BLANK,
                     "PHONE": phone.phone if phone else BLANK, "EXTENSION": phone.extension if phone else BLANK})
    return rows


def _shifts(t: Tables, p: Prompts, today: date) -> list[Row]:
    rows: list[Row] = []
    for s in t.shifts:
        if not s.committed or not _between(s.lastupddttm, p["FROM_DTTM"], p["TO_DTTM"]):
            continue
        person = t.people.get(s.emplid)
        rows.append({"EMPLID": s.emplid, "SHIFT_ID": s.shift_id, **_person_cols(t, s.emplid),
                     "START_DTTM": s.start_dttm, "OLD_START_DTTM": s.old_start_dttm,
                     "TIMEZONE": person.tz if person else BLANK, "LASTUPDDTTM": s.lastupddttm})
    return rows


def _phones(t: Tables, p: Prompts, today: date) -> list[Row]:
    after = str(p["AFTER_EMPLID"])
    chosen = sorted((ph for ph in t.phones if ph.emplid > after), key=lambda ph: (ph.emplid, ph.phone_type))
    return [{"EMPLID": ph.emplid, "PHONE_TYPE": ph.phone_type, "COUNTRY_CODE": ph.country_code,
             "PHONE": ph.phone, "EXTENSION": ph.extension, "PREF_PHONE_FLAG": ph.pref_phone_flag}
            for ph in chosen]


def _person_phones(t: Tables, p: Prompts, today: date) -> list[Row]:
    return [{"EMPLID": ph.emplid, "PHONE_TYPE": ph.phone_type, "COUNTRY_CODE": ph.country_code,
             "PHONE": ph.phone, "EXTENSION": ph.extension, "PREF_PHONE_FLAG": ph.pref_phone_flag,
             **_person_cols(t, ph.emplid)}
            for ph in t.phones if ph.emplid == p["EMPLID"]]


def _steps(t: Tables, p: Prompts, today: date) -> list[Row]:
    return [{"EMPLID": s.emplid, "STEP_ID": s.step_id, "DESCR": s.descr, "DUE_DT": s.due_dt,
             "STATUS": s.status, **_person_cols(t, s.emplid), "LASTUPDDTTM": s.lastupddttm}
            for s in t.steps if s.status == "O" and _between(s.due_dt, p["FROM_DT"], p["TO_DT"])]


def _tools(t: Tables, p: Prompts, today: date) -> list[Row]:
    return [{"OWNERID": "PPT", "TOOLSREL": t.tools_release}]


_WINDOW = {"FROM_DTTM": "datetime", "TO_DTTM": "datetime"}

QUERIES: Mapping[str, QueryDef] = {q.name: q for q in (
    QueryDef("XX_MLC_TOOLS", {}, _tools),
    QueryDef("XX_MLC_JOB_CHANGES", {**_WINDOW, "FROM_EFFDT": "date", "TO_EFFDT": "date"}, _jobs),
    QueryDef("XX_MLC_PAYRUNS", _WINDOW, _payruns),
    QueryDef("XX_MLC_PAYGROUP_EES", {"COMPANY": "text", "PAYGROUP": "text", "AFTER_EMPLID": "text"},
             _paygroup_employees),
    QueryDef("XX_MLC_SHIFT_CHANGES", _WINDOW, _shifts),
    QueryDef("XX_MLC_PHONES", {"AFTER_EMPLID": "text"}, _phones),
    QueryDef("XX_MLC_PERSON_PHONES", {"EMPLID": "text"}, _person_phones),
    QueryDef("XX_MLC_ONBOARDING_DUE", {"FROM_DT": "date", "TO_DT": "date"}, _steps),
)}
