"""The registry of adapter/simulator pairs the contract suite runs over.

A new adapter adds one line: a name and a zero-argument factory returning a SourceHarness.
"""

from __future__ import annotations

from collections.abc import Callable

from .ebs import ebs_harnesses
from .harness import SourceHarness
from .peoplesoft import PeopleSoftHarness
from .sap import SapHarness
from .sap_rfc import SapRfcHarness
from .syspro import SysproHarness

HARNESSES: dict[str, Callable[[], SourceHarness]] = {
    **ebs_harnesses(),  # ISG session, ISG Basic, ORDS; each native and XML-bridged
    "peoplesoft-basic": lambda: PeopleSoftHarness("basic"),
    "peoplesoft-oauth2": lambda: PeopleSoftHarness("oauth2", auth="oauth2", column_style="plain"),
    "syspro-enet": lambda: SysproHarness("enet", mode="enet"),
    "syspro-odata": lambda: SysproHarness("odata", mode="odata"),
    "sap-odata-skip": lambda: SapHarness("skip"), "sap-odata-server": lambda: SapHarness("server", paging="server"),
    "sap-rfc-change-documents": lambda: SapRfcHarness("cd"),
    "sap-rfc-table": lambda: SapRfcHarness("table", entity="invoices"),
}
