"""The PeopleSoft HCM simulator's tables: people, effective-dated jobs, phones, pay runs, shifts.

Rows hold what the database holds: server-local naive datetimes to the second (LASTUPDDTTM has
no zone), dates, and character columns that are never NULL (an empty one is a single space).
Rows written with ``committed=False`` are invisible to queries until their transaction commits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

BLANK = " "  # PeopleSoft stores empty character columns as one space

_FIRST = ("Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gita", "Hugo", "Ines", "Jon", "Kemal", "Lena",
          "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor", "Wen", "Yara")
_LAST = ("Okafor", "Lindqvist", "Marsh", "Patel", "Kaya", "Adeyemi", "Rao", "Brandt", "Silva", "Moreau",
         "Demir", "Novak", "Reyes", "Kim", "Haddad", "Iyer", "Walsh", "Costa", "Berg", "Nakamura")
DEPARTMENTS = (("10100", "Emergency Nursing"), ("10200", "Radiology"), ("10300", "Patient Accounts"),
               ("10400", "Surgery"))
JOBS = (("RN001", "Registered Nurse"), ("RT002", "Radiology Technician"), ("AC003", "Accounts Clerk"),
        ("SN004", "Surgical Nurse"))
ZONES = ("America/Chicago", "America/New_York", "America/Denver")


@dataclass
class Person:
    emplid: str
    first: str
    last: str
    email: str
    tz: str
    paygroup: str = "BW1"
    company: str = "HCM"

    @property
    def name_display(self) -> str:
        return f"{self.first} {self.last}"


@dataclass
class JobRow:
    """PS_JOB: keys EMPLID, EMPL_RCD, EFFDT, EFFSEQ."""

    emplid: str
    empl_rcd: int
    effdt: date
    effseq: int
    action: str
    action_reason: str
    hr_status: str
    empl_status: str
    deptid: str
    jobcode: str
    paygroup: str
    company: str
    lastupddttm: datetime
    lastupdoprid: str = "PS"
    committed: bool = True
    salary: str = "0"  # compensation: present in the table, never meant to leave PeopleSoft


@dataclass
class PhoneRow:
    """PS_PERSONAL_PHONE: keys EMPLID, PHONE_TYPE; no LASTUPDDTTM at all."""

    emplid: str
    phone_type: str
    country_code: str
    phone: str
    extension: str
    pref_phone_flag: str


@dataclass
class PayRun:
    """A pay calendar entry (PS_PAY_CALENDAR), confirmed when the pay run posts."""

    company: str
    paygroup: str
    pay_end_dt: date
    check_dt: date
    run_id: str
    pay_confirm_run: str
    lastupddttm: datetime
    committed: bool = True


@dataclass
class ShiftRow:
    """A scheduled shift (a Time and Labor schedule override), times server-local."""

    emplid: str
    shift_id: str
    start_dttm: datetime
    old_start_dttm: datetime | None
    lastupddttm: datetime
    committed: bool = True


@dataclass
class OnboardingStep:
    """An onboarding checklist item or benefits enrolment deadline with its due date."""

    emplid: str
    step_id: str
    descr: str
    due_dt: date
    status: str  # O open, C complete
    lastupddttm: datetime


@dataclass
class Tables:
    people: dict[str, Person] = field(default_factory=dict)
    jobs: list[JobRow] = field(default_factory=list)
    phones: list[PhoneRow] = field(default_factory=list)
    payruns: list[PayRun] = field(default_factory=list)
    shifts: list[ShiftRow] = field(default_factory=list)
    steps: list[OnboardingStep] = field(default_factory=list)
    tools_release: str = "8.60.05"

    def current_job(self, emplid: str, today: date) -> JobRow | None:
        """The row in effect today: the greatest EFFDT <= today, then the greatest EFFSEQ."""
        rows = [j for j in self.jobs if j.emplid == emplid and j.committed and j.effdt <= today]
        return max(rows, key=lambda j: (j.effdt, j.effseq)) if rows else None


_AREAS = ("312", "773", "415", "212", "617", "303", "512", "206")


def _mobile(rng: random.Random) -> str:
    """PeopleSoft's delivered phone format (`312/555-0142`), numbers in the fictional 555-01xx range."""
    return f"{rng.choice(_AREAS)}/555-01{rng.randrange(0, 100):02d}"


def add_person(tables: Tables, rng: random.Random, emplid: str, now: datetime, *,
               paygroup: str = "BW1", hired: date | None = None) -> Person:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    person = Person(emplid, first, last, f"{first}.{last}@example.org".lower(), rng.choice(ZONES), paygroup)
    tables.people[emplid] = person
    dept, job = rng.choice(DEPARTMENTS), rng.choice(JOBS)
    tables.jobs.append(JobRow(emplid, 0, hired or (now.date() - timedelta(days=rng.randrange(200, 3000))), 0,
                              "HIR", "NEW", "A", "A", dept[0], job[0], paygroup, person.company,
                              now - timedelta(days=rng.randrange(30, 200)), salary=str(rng.randrange(40, 160) * 1000)))
    tables.phones.append(PhoneRow(emplid, "CELL", "1", _mobile(rng), BLANK, "Y"))
    if rng.random() < 0.5:
        tables.phones.append(PhoneRow(emplid, "HOME", "1", _mobile(rng), BLANK, "N"))
    return person


def seed_tables(rng: random.Random, now: datetime, *, employees: int = 12) -> Tables:
    """A small hospital: employees in pay group BW1, one pay run not yet confirmed, some shifts."""
    tables = Tables()
    for n in range(employees):
        add_person(tables, rng, f"KU{n + 1:04d}", now)
    tables.payruns.append(PayRun("HCM", "BW1", now.date() - timedelta(days=2), now.date() + timedelta(days=3),
                                 f"R{now:%y%m%d}", "N", now - timedelta(days=3)))
    for n, emplid in enumerate(list(tables.people)[:4]):
        start = datetime.combine(now.date() + timedelta(days=1 + n), datetime.min.time()) + timedelta(hours=7)
        tables.shifts.append(ShiftRow(emplid, f"S{n + 1:05d}", start, None, now - timedelta(days=5)))
    for n, emplid in enumerate(list(tables.people)[:3]):
        tables.steps.append(OnboardingStep(emplid, f"ONB{n + 1:03d}", "Benefits enrolment",
                                           now.date() + timedelta(days=3 + n), "O", now - timedelta(days=10)))
    return tables
