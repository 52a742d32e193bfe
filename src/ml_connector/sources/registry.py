"""Source types by name: `type:` in a source's config section -> its config model and factory.

A new ERP is one module plus one line here. Entries are import paths so that loading the config
does not import every adapter's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

#: type name -> "module:ConfigModel", "module:factory"
SOURCE_TYPES: dict[str, tuple[str, str]] = {
    "sql": ("ml_connector.sources.sql:SqlSourceConfig", "ml_connector.sources.sql:build"),
    "oracle_ebs": ("ml_connector.sources.oracle_ebs:OracleEbsConfig", "ml_connector.sources.oracle_ebs:build"),
    "peoplesoft": ("ml_connector.sources.peoplesoft:PeopleSoftConfig", "ml_connector.sources.peoplesoft:build"),
    "syspro": ("ml_connector.sources.syspro:SysproConfig", "ml_connector.sources.syspro:build"),
    "sap_ecc": ("ml_connector.sources.sap_ecc:SapEccConfig", "ml_connector.sources.sap_ecc:build"),
}


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def config_model(type_name: str) -> Any:
    """The pydantic model validating a source section of this type."""
    return _resolve(SOURCE_TYPES[type_name][0])


def factory(type_name: str) -> Any:
    """`factory(config_model_instance, context) -> Source`."""
    return _resolve(SOURCE_TYPES[type_name][1])
