"""Who may call the simulated EBS, and how the shop named its custom services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Responsibility:
    """A responsibility and the operating units its MOAC security profile reaches."""

    key: str
    application: str
    orgs: frozenset[int]


@dataclass(frozen=True)
class EbsUser:
    """An FND user: credentials, responsibilities, ISG method grants, ORDS privilege."""

    name: str
    password: str
    responsibilities: frozenset[str]
    grants: frozenset[str]
    ords: bool


RESPONSIBILITIES: Mapping[str, Responsibility] = MappingProxyType({
    r.key: r
    for r in (
        Responsibility("PAYABLES_MANAGER", "SQLAP", frozenset({204})),
        Responsibility("PURCHASING_SUPER_USER", "PO", frozenset({204, 458})),
        Responsibility("US_HRMS_MANAGER", "PER", frozenset()),
        Responsibility("SYSTEM_ADMINISTRATOR", "SYSADMIN", frozenset()),
    )
})

ALL_METHODS = frozenset({"changed_invoices", "changed_pos", "changed_people", "changed_supplier_sites", "person",
                         "record_delivery"})

DEFAULT_USERS: tuple[EbsUser, ...] = (
    EbsUser("SYSADMIN", "sysadmin", frozenset(RESPONSIBILITIES), ALL_METHODS, True),
    EbsUser("ISGUSER", "welcome1",
            frozenset({"PAYABLES_MANAGER", "PURCHASING_SUPER_USER", "US_HRMS_MANAGER"}), ALL_METHODS, True),
    EbsUser("NOGRANT", "welcome1", frozenset({"PAYABLES_MANAGER"}), frozenset(), False),
)


def _default_methods() -> Mapping[str, str]:
    return MappingProxyType({
        "changed_invoices": "get_changed_invoices",
        "changed_pos": "get_changed_pos",
        "changed_people": "get_changed_people",
        "changed_supplier_sites": "get_changed_supplier_sites",
        "person": "get_person",
        "record_delivery": "record_delivery",
    })


def _default_params() -> Mapping[str, str]:
    names = ("since", "org_id", "max_rows", "offset", "person_id", "source_table", "source_id",
             "message_sid", "status", "error_code", "sent_at", "final_at")
    return MappingProxyType({n: f"P_{n.upper()}" for n in names})


@dataclass(frozen=True)
class ServiceNames:
    """How the shop deployed its custom services: aliases, method and parameter names.

    ``methods`` and ``params`` map logical names to wire names; give only the ones that differ.
    """

    events_alias: str = "xx_mlc_events"
    audit_alias: str = "xx_mlc_audit"
    methods: Mapping[str, str] = field(default_factory=_default_methods)
    params: Mapping[str, str] = field(default_factory=_default_params)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", MappingProxyType({**_default_methods(), **self.methods}))
        object.__setattr__(self, "params", MappingProxyType({**_default_params(), **self.params}))

    def alias_of(self, logical: str) -> str:
        return self.audit_alias if logical == "record_delivery" else self.events_alias


@dataclass(frozen=True)
class AppContext:
    """The context a service runs under: the MOAC operating units it may see."""

    user: EbsUser
    responsibility: str | None
    orgs: frozenset[int]
