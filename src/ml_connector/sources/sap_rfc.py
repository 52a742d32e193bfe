"""SAP ECC over RFC through the on-premises agent (`mode: rfc`): what an entity is (config). Pure.

Every table, field and function module name is configuration with SAP's standard as default::

    agent: {url: https://sap-agent.corp.example:8950, token: ${SAP_AGENT_TOKEN}}
    rfc:
      max_concurrent_calls: 5          # RFC calls to this SAP system at once, retries included
      entities:
        purchase_orders:               # POs changed = change documents (EKKO-AEDAT is the creation date)
          kind: change_documents       # CDHDR/CDPOS of object class EINKBELEG, UDATE/UTIME wall time
          watch: [EKKO-KEY, EKKO-FRGZU, EKKO-FRGKE]     # optional: only these changes count
          detail: {function: BAPI_PO_GETDETAIL1}         # header and items of each changed PO
        invoices:                      # RFC_READ_TABLE on RBKP by entry date and time
          kind: table
          table: RBKP
          key: [BELNR, GJAHR]
          fields: [BELNR, GJAHR, BUKRS, LIFNR, XBLNR, CPUDT, CPUTM, WAERS, RMWWR, RBSTAT]
          change: {date: CPUDT, time: CPUTM}
        suppliers:                     # LFA1 with the default e-mail of its address (ADR6)
          kind: table
          table: LFA1
          key: LIFNR
          alpha: {LIFNR: 10}
          join: [{table: ADR6, by: {ADRNR: ADDRNUMBER}, fields: [SMTP_ADDR], where: [{field: FLGDEFAULT, eq: X}]}]
        vendor_detail: {kind: bapi, function: BAPI_VENDOR_GETDETAIL, key_parameter: VENDORNO}
    write_back: {enabled: true, function: Z_MLC_DELIVERY_STATUS}   # at the source's level, as in OData

Field names are SAP's (EBELN, LIFNR); values keep SAP's form (ALPHA numbers padded), DATS and
TIMS become dates and times, packed numbers exact Decimals.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ml_connector.sources.sap_odata import SapChange, SapWhere


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _name(value: str, what: str) -> str:
    text = value.strip().upper()
    if not text or not all(ch.isalnum() or ch in "_/" for ch in text):
        raise ValueError(f"{what} {value!r} is not an ABAP name (letters, digits, _ and /)")
    return text


class SapAgent(_Model):
    """Where the agent runs and how we prove who we are: a bearer token, mutual TLS, or both."""

    url: str
    token: SecretStr | None = None
    client_cert: str | None = None     # PEM file: our certificate for mutual TLS
    client_key: str | None = None      # PEM file: its private key

    @model_validator(mode="after")
    def _auth(self) -> SapAgent:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url: the agent's http(s) URL, e.g. https://sap-agent.corp.example:8950")
        if self.token is None and self.client_cert is None:
            raise ValueError("name a token or a client_cert (mutual TLS): the agent authenticates us")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self


class RfcJoin(_Model):
    """Fields of a second table joined to each row, e.g. LFA1-ADRNR -> ADR6-ADDRNUMBER."""

    table: str
    #: this entity's field -> the joined table's field (named `by`: YAML reads a key `on` as true)
    by: dict[str, str] = Field(min_length=1)
    fields: list[str] = Field(min_length=1)
    where: list[SapWhere] = []


class RfcTableEntity(_Model):
    """Rows of one table through RFC_READ_TABLE."""

    kind: Literal["table"] = "table"
    table: str
    key: str | list[str]
    fields: list[str] = []                       # empty: every field (read in groups past 512 bytes)
    change: SapChange = SapChange(mode="snapshot")
    where: list[SapWhere] = []
    alpha: dict[str, int] = {}
    join: list[RfcJoin] = []
    page_size: int = Field(default=500, ge=1, le=50_000)

    @property
    def keys(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)

    def read_fields(self) -> list[str]:
        """FIELDS: the configured ones plus what the adapter needs; empty means all."""
        if not self.fields:
            return []
        needed = [*self.keys, *self.fields, *(w.field for w in self.where),
                  *(p for p in (self.change.date, self.change.time) if p), *(f for j in self.join for f in j.by)]
        return list(dict.fromkeys(needed))

    @model_validator(mode="after")
    def _names(self) -> RfcTableEntity:
        _name(self.table, "table")
        if not self.keys:
            raise ValueError("key: name at least one field")
        for name, width in self.alpha.items():
            if not 1 <= width <= 40:
                raise ValueError(f"alpha.{name}: a width between 1 and 40 (LIFNR is 10)")
        return self


class RfcDetail(_Model):
    """The BAPI that reads one changed object (default: a PO's header, items and schedule lines)."""

    function: str = "BAPI_PO_GETDETAIL1"
    key_parameter: str = "PURCHASEORDER"
    key_width: int = Field(default=10, ge=1, le=90)   # ALPHA width of the object key (EBELN: 10)
    header: str = "POHEADER"
    items: str | None = "POITEM"
    schedules: str | None = "POSCHEDULE"
    flags: dict[str, str] = {}                        # more import parameters, e.g. {ITEM_TEXT: X}
    dates: list[str] = ["CREAT_DATE", "DOC_DATE", "DELIVERY_DATE"]
    decimals: list[str] = ["QUANTITY", "NET_PRICE"]
    #: RETURN messages (ID/NUMBER) meaning "no such object": a look-up finds nothing; any other
    #: E or A row (authorisation, locks) is an error
    not_found: list[str] = ["06/019"]


class RfcChangeDocuments(_Model):
    """Objects changed in the window, found in change documents (CDHDR, CDPOS), read by a BAPI."""

    kind: Literal["change_documents"]
    object_class: str = "EINKBELEG"
    header_table: str = "CDHDR"
    item_table: str = "CDPOS"
    #: TABNAME-FNAME pairs (``EKKO-FRGZU``; ``EKKO-KEY`` is a creation): only these changes count
    watch: list[str] = []
    detail: RfcDetail = RfcDetail()
    page_size: int = Field(default=500, ge=1, le=50_000)

    @model_validator(mode="after")
    def _watch(self) -> RfcChangeDocuments:
        for item in self.watch:
            if item.count("-") != 1:
                raise ValueError(f"watch: {item!r} is TABNAME-FNAME, e.g. EKKO-FRGZU")
        return self


class RfcBapiEntity(_Model):
    """A look-up by one BAPI call (e.g. BAPI_VENDOR_GETDETAIL's GENERALDETAIL); flows cannot poll it."""

    kind: Literal["bapi"]
    function: str
    key_parameter: str
    key_width: int | None = Field(default=10, ge=1, le=90)
    exports: list[str] = Field(default=["GENERALDETAIL"], min_length=1)
    not_found: list[str] = ["F2/163"]     # RETURN ID/NUMBER meaning "no such object" (see RfcDetail)


RfcEntity = Annotated[RfcTableEntity | RfcChangeDocuments | RfcBapiEntity, Field(discriminator="kind")]


class RfcWriteBack(_Model):
    """Final statuses through a customer's Z function module and BAPI_TRANSACTION_COMMIT, in one
    agent session. `parameters` maps the module's import parameters to what is written."""

    enabled: bool = False
    function: str = "Z_MLC_DELIVERY_STATUS"
    commit: str = "BAPI_TRANSACTION_COMMIT"
    rollback: str = "BAPI_TRANSACTION_ROLLBACK"
    parameters: dict[str, Literal["flow", "entity", "record_key", "notification_id", "provider_id", "status",
                                  "error_code", "error_message", "finished_at"]] = Field(
        default={"NOTIFICATION_ID": "notification_id", "FLOW": "flow", "RECORD_KEY": "record_key",
                 "MESSAGE_SID": "provider_id", "STATUS": "status", "ERROR_CODE": "error_code",
                 "FINISHED_AT": "finished_at"}, min_length=1)


class SapRfc(_Model):
    max_concurrent_calls: int = Field(default=5, ge=1, le=50)
    delimiter: str = Field(default="|", min_length=1, max_length=1)
    entities: dict[str, RfcEntity] = Field(min_length=1)
