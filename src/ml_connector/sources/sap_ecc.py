"""SAP ECC source (`type: sap_ecc`): Gateway OData v2 (`mode: odata`) or RFC/BAPI (`mode: rfc`).

Config (OData)::

    sources:
      sap:
        type: sap_ecc
        mode: odata
        base_url: https://sapgw.example.com:44300   # Gateway host and port
        client: "100"                               # sap-client, sent on every request
        language: EN
        username: MLC_ODATA
        password: ${SAP_PASSWORD}
        timezone: Europe/Berlin                     # the SAP system's clock: DATS/TIMS are wall time
        services:
          po: /sap/opu/odata/sap/ZMM_PO_SRV;v=0001/
          invoices: /sap/opu/odata/sap/ZMM_SUPPLIER_INVOICE_SRV/
        entities:
          purchase_orders: {service: po, entity_set: PurchaseOrderSet, key: Ebeln, ...}

The entity options are in `sap_odata`; the shared connection fields in `sap_common`. The RFC
mode speaks to the on-premises agent and is provided by `sources/sap_rfc.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from ml_connector.sources.sap_common import SapConnection
from ml_connector.sources.sap_odata import SapODataEntity, SapWriteBack

DEFAULT_SERVICE_PREFIX = "/sap/opu/odata/sap/"


class SapEccConfig(SapConnection):
    type: Literal["sap_ecc"]
    mode: Literal["odata", "rfc"] = "odata"
    #: service name -> service root path (``/sap/opu/odata/<namespace>/<SERVICE>/``, ``;v=0001`` and
    #: ``;mo`` allowed); a bare name means ``/sap/opu/odata/sap/<name>/``.
    services: dict[str, str] = {}
    entities: dict[str, SapODataEntity] = Field(default_factory=dict)
    write_back: SapWriteBack | None = None

    @model_validator(mode="after")
    def _mode(self) -> SapEccConfig:
        if self.mode == "rfc":
            raise ValueError("mode rfc is provided by sources/sap_rfc.py (the on-premises agent), "
                             "which this installation does not include; use mode odata")
        if self.base_url is None:
            raise ValueError("mode odata needs base_url (the Gateway host and port, e.g. https://sapgw:44300)")
        if not self.services:
            raise ValueError("services: name at least one Gateway service (name: service root path)")
        if not self.entities:
            raise ValueError("entities: name at least one entity (service, entity_set, key)")
        for name, entity in self.entities.items():
            service = entity.service or (next(iter(self.services)) if len(self.services) == 1 else None)
            if service is None:
                raise ValueError(f"entities.{name}.service: required with several services "
                                 f"({', '.join(self.services)})")
            if service not in self.services:
                raise ValueError(f"entities.{name}.service: unknown service {service!r}; "
                                 f"services: {', '.join(self.services)}")
        if self.write_back is not None and self.write_back.service not in self.services:
            raise ValueError(f"write_back.service: unknown service {self.write_back.service!r}")
        return self

    def service_of(self, entity: SapODataEntity) -> str:
        return entity.service or next(iter(self.services))

    def service_root(self, service: str) -> str:
        """The absolute service root URL of a service, ending in '/'."""
        path = self.services[service].strip()
        if "/" not in path:
            path = DEFAULT_SERVICE_PREFIX + path
        if not path.startswith("/"):
            path = "/" + path
        return str(self.base_url).rstrip("/") + path.rstrip("/") + "/"


def build(config: SapEccConfig, context: Mapping[str, Any]) -> Any:
    from ml_connector.sources.sap_odata_source import SapODataSource

    return SapODataSource(context.get("name", "sap"), config,
                          transport=(context.get("transports") or {}).get(context.get("name")),
                          clock=context.get("clock"))


def service_name(root_path: str) -> str:
    """The SAP service's own name from its root path: ``/sap/opu/odata/sap/ZMM_PO_SRV;v=0001/``
    -> ``ZMM_PO_SRV``."""
    segments = [part for part in root_path.strip().split("/") if part]
    return (segments[-1] if segments else root_path).split(";", 1)[0]
