"""PeopleSoft in `ml-connector demo` and `simulate`: its source and flows, its simulator, its events.

Kept apart from demo.py so the demo gains PeopleSoft with a few lines: the same flows as
examples/peoplesoft.yaml (pay run fan-out, shift changes, hires), polling every second.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

PS_TZ = "America/Chicago"
PS_FAST = {"every": "1s", "overlap": "2m", "clock_skew": "0.5s"}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "peoplesoft.yaml"
_FLOWS = ("payroll_posted", "shift_changed", "employee_hired")


def peoplesoft_sections(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PeopleSoft source and the demo's flows (pay run fan-out, shift change, hire)."""
    source: dict[str, Any] = {
        "type": "peoplesoft", "base_url": url, "node": "PSFT_HR", "timezone": PS_TZ, "retry_delay": 0.2,
        "auth": {"type": "basic", "user": "MLC_REST", "password": "mlc-pass"},
        "exposed_fields": ["EMPLID", "NAME_DISPLAY", "FIRST_NAME", "DEPTNAME", "JOBTITLE", "PHONE*",
                           "emplid", "emplnamedisplay", "emplcellphone", "empljobtitle", "empldepartment",
                           "PAY_END_DT", "CHECK_DT", "START_DTTM", "OLD_START_DTTM", "TIMEZONE"],
        "entities": {
            "jobs": {"query": "XX_MLC_JOB_CHANGES", "key": ["EMPLID", "EMPL_RCD", "EFFDT", "EFFSEQ"],
                     "effective": {}, "control_fields": ["ACTION"]},
            "payruns": {"query": "XX_MLC_PAYRUNS", "key": ["COMPANY", "PAYGROUP", "PAY_END_DT"],
                        "dates": ["PAY_END_DT", "CHECK_DT"],
                        "control_fields": ["COMPANY", "PAYGROUP", "PAY_CONFIRM_RUN"]},
            "paygroup_employees": {"query": "XX_MLC_PAYGROUP_EES", "key": ["EMPLID"], "members": {},
                                   "maxrows": 500},
            "shifts": {"query": "XX_MLC_SHIFT_CHANGES", "key": ["SHIFT_ID"],
                       "datetimes": ["START_DTTM", "OLD_START_DTTM"]},
            "employees": {"key": ["EMPLID"], "lookup": {"directory": True}},
        },
    }
    common = {"source": "ps", "schedule": PS_FAST, "sender": "main.alerts", "timezone": PS_TZ,
              "retry": {"max_attempts": 4, "base_delay": "PT1S", "max_delay": "PT5S"}}
    flows = {}
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["flows"] if EXAMPLE.exists() else {}
    for name in _FLOWS:
        flow = {k: v for k, v in example.get(name, {}).items() if k in ("entity", "trigger", "recipients", "template")}
        if flow:
            flows[f"ps_{name}"] = {**flow, **common}
    if not flows:  # an installed package has no examples/: the same flows, written out
        flows = _built_in(common)
    return source, flows


def _built_in(common: dict[str, Any]) -> dict[str, Any]:
    directory = [{"lookup": {"entity": "employees", "key_field": "EMPLID", "fields": ["emplcellphone"]}}]
    return {
        "ps_payroll_posted": {**common, "entity": "payruns", "trigger": {"field": "PAY_CONFIRM_RUN", "becomes": "Y"},
                              "recipients": [{"members": {"entity": "paygroup_employees",
                                                          "match": {"COMPANY": "COMPANY", "PAYGROUP": "PAYGROUP"},
                                                          "fields": ["PHONE_PREFERRED"]}}],
                              "template": "Hi {{ member.FIRST_NAME }}, payroll for the period ending "
                                          "{{ PAY_END_DT | date('%b %d') }} has posted."},
        "ps_shift_changed": {**common, "entity": "shifts",
                             "trigger": {"all": [{"field": "START_DTTM", "changed": True},
                                                 {"field": "OLD_START_DTTM", "is_null": False}]},
                             "recipients": directory,
                             "template": "{{ NAME_DISPLAY }}, your shift moved to "
                                         "{{ START_DTTM | datetime('%a %b %d %H:%M %Z', tz=TIMEZONE) }}."},
        "ps_employee_hired": {**common, "entity": "jobs", "trigger": {"field": "ACTION", "becomes": "HIR"},
                              "recipients": directory, "template": "Welcome, {{ NAME_DISPLAY }}!"},
    }


def peoplesoft_simulator(source: Any | None = None) -> Any:
    """A PeopleSoft simulator accepting the config's user or OAuth2 client (and the defaults)."""
    from ml_connector.sim.peoplesoft import DEFAULT_CLIENTS, PsSim, PsUser, default_users
    from ml_connector.sim.peoplesoft_idp import IdpClient

    if source is None:
        return PsSim(server_tz=PS_TZ)
    users, clients = list(default_users()), list(DEFAULT_CLIENTS)
    auth = source.auth
    if auth.type == "basic":
        users = [PsUser(auth.user, auth.password.get_secret_value()), *(u for u in users if u.oprid != auth.user)]
    else:
        subject = auth.user or "MLC_REST"
        scopes = frozenset((auth.scope or "").split()) | {"psft.hcm.read"}
        clients = [IdpClient(auth.client_id, auth.client_secret.get_secret_value(), scopes, subject),
                   *(c for c in clients if c.client_id != auth.client_id)]
        if subject not in {u.oprid for u in users}:
            users.append(PsUser(subject, "-"))
    return PsSim(server_tz=source.timezone, node=source.node, users=tuple(users), clients=tuple(clients))


class PeopleSoftEvents:
    """Business events in the PeopleSoft simulator: a pay run posts, shifts move, people are hired."""

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._turn = 0

    def tick(self, rng: random.Random) -> list[str]:
        self._turn += 1
        if self._turn % 4 == 1:
            result = self._sim.post_payrun("BW1")
            count = sum(1 for p in self._sim.tables.people.values() if p.paygroup == "BW1")
            return [f"PeopleSoft pay run {result.key} posted ({count} employees in pay group BW1)"]
        if self._turn % 4 == 3:
            result = self._sim.job_action(None, "HIR")
            return [f"PeopleSoft hire {result.key.split('/')[0]} effective today"]
        emplid = rng.choice(sorted(self._sim.tables.people))
        self._sim.change_shift(emplid, rng.choice((-2, 1, 3)))
        return [f"PeopleSoft shift of {emplid} moved"]
