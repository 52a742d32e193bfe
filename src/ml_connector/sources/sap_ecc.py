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

Config (RFC through the on-premises agent, docs/sap-agent-protocol.md)::

    sources:
      sap:
        type: sap_ecc
        mode: rfc
        client: "100"                               # the client the agent logs on to (checked)
        timezone: Europe/Berlin
        agent: {url: https://sap-agent.corp.example:8950, token: ${SAP_AGENT_TOKEN}}
        rfc:
          max_concurrent_calls: 5
          entities:
            purchase_orders: {kind: change_documents}

The OData entity options are in `sap_odata`, the RFC ones in `sap_rfc`; the shared connection
fields in `sap_common`. In RFC mode the connector holds no SAP credentials: the agent does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from ml_connector.sources.sap_common import SapConnection
from ml_connector.sources.sap_odata import SapODataEntity, SapWriteBack
from ml_connector.sources.sap_rfc import RfcWriteBack, SapAgent, SapRfc

DEFAULT_SERVICE_PREFIX = "/sap/opu/odata/sap/"


def _write_back_kind(value: Any) -> str:
    """OData write-back names an entity set; RFC write-back a function module."""
    if isinstance(value, RfcWriteBack):
        return "rfc"
    if isinstance(value, SapWriteBack):
        return "odata"
    return "odata" if isinstance(value, dict) and ("service" in value or "entity_set" in value) else "rfc"


WriteBackConfig = Annotated[Annotated[SapWriteBack, Tag("odata")] | Annotated[RfcWriteBack, Tag("rfc")],
                            Discriminator(_write_back_kind)]

class SapEccConfig(SapConnection):
    type: Literal["sap_ecc"]
    mode: Literal["odata", "rfc"] = "odata"
    #: service name -> service root path (``/sap/opu/odata/<namespace>/<SERVICE>/``, ``;v=0001`` and
    #: ``;mo`` allowed); a bare name means ``/sap/opu/odata/sap/<name>/``.
    services: dict[str, str] = {}
    entities: dict[str, SapODataEntity] = Field(default_factory=dict)
    #: OData: an entity set to POST to (CSRF); RFC: a Z function module + BAPI_TRANSACTION_COMMIT
    write_back: WriteBackConfig | None = None
    agent: SapAgent | None = None
    rfc: SapRfc | None = None

    @model_validator(mode="after")
    def _mode(self) -> SapEccConfig:
        if self.mode == "rfc":
            if self.agent is None:
                raise ValueError("mode rfc needs agent (url and token of the on-premises SAP agent)")
            if self.rfc is None:
                raise ValueError("mode rfc needs rfc.entities (the tables, change documents and BAPIs to read)")
            if self.entities or self.services:
                raise ValueError("mode rfc reads rfc.entities; services and entities are for mode odata")
            if self.write_back is not None and not isinstance(self.write_back, RfcWriteBack):
                raise ValueError("write_back: in mode rfc it names a function module (function, parameters), "
                                 "not a service and entity set")
            if self.username or self.password:
                raise ValueError("mode rfc: the agent holds the SAP logon; remove username and password here")
            return self
        if self.base_url is None:
            raise ValueError("mode odata needs base_url (the Gateway host and port, e.g. https://sapgw:44300)")
        if not self.username or self.password is None:
            raise ValueError("mode odata needs username and password (the Gateway logon)")
        if self.agent is not None or self.rfc is not None:
            raise ValueError("agent and rfc are for mode rfc")
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
        if self.write_back is not None and not isinstance(self.write_back, SapWriteBack):
            raise ValueError("write_back: in mode odata it names a service, entity_set and fields")
        if self.write_back is not None and self.write_back.service not in self.services:
            raise ValueError(f"write_back.service: unknown service {self.write_back.service!r}")
        return self

    @property
    def odata_write_back(self) -> SapWriteBack | None:
        return self.write_back if isinstance(self.write_back, SapWriteBack) else None

    @property
    def rfc_write_back(self) -> RfcWriteBack | None:
        return self.write_back if isinstance(self.write_back, RfcWriteBack) else None

    def entity_names(self) -> list[str]:
        """The entities flows can name: `entities` (OData) or `rfc.entities` (RFC)."""
        return list(self.rfc.entities) if self.mode == "rfc" and self.rfc is not None else list(self.entities)

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
    if config.mode == "rfc":
        from ml_connector.sources.sap_rfc_source import SapRfcSource

        return SapRfcSource(context.get("name", "sap"), config,
                            transport=(context.get("transports") or {}).get(context.get("name")),
                            clock=context.get("clock"))
    from ml_connector.sources.sap_odata_source import SapODataSource

    return SapODataSource(context.get("name", "sap"), config,
                          transport=(context.get("transports") or {}).get(context.get("name")),
                          clock=context.get("clock"))


def service_name(root_path: str) -> str:
    """The SAP service's own name from its root path: ``/sap/opu/odata/sap/ZMM_PO_SRV;v=0001/``
    -> ``ZMM_PO_SRV``."""
    segments = [part for part in root_path.strip().split("/") if part]
    return (segments[-1] if segments else root_path).split(";", 1)[0]
