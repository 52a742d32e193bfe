"""The registry of adapter/simulator pairs the contract suite runs over.

A new adapter adds one line: a name and a zero-argument factory returning a SourceHarness.
"""

from __future__ import annotations

from collections.abc import Callable

from .ebs import EbsHarness
from .harness import SourceHarness
from .peoplesoft import PeopleSoftHarness
from .syspro import SysproHarness

HARNESSES: dict[str, Callable[[], SourceHarness]] = {
    "ebs-isg-session": lambda: EbsHarness("isg-session"),
    "ebs-isg-basic": lambda: EbsHarness("isg-basic", auth="basic"),
    "ebs-ords": lambda: EbsHarness("ords", mode="ords", auth="basic"),
    "peoplesoft-basic": lambda: PeopleSoftHarness("basic"),
    "peoplesoft-oauth2": lambda: PeopleSoftHarness("oauth2", auth="oauth2", column_style="plain"),
    "syspro-enet": lambda: SysproHarness("enet", mode="enet"),
    "syspro-odata": lambda: SysproHarness("odata", mode="odata"),
}
