"""A Gateway service's ``$metadata`` (EDMX, OData v2) read into what the adapter needs.

Entity sets, their entity type's keys and properties with Edm types, and the SAP annotations a
service developer sets in SEGW: ``sap:filterable``, ``sap:sortable``, ``sap:pageable`` (on the
set), ``sap:display-format="Date"`` (a DATS field shown as Edm.DateTime). SAP's default for
every ``sap:*able`` flag is true, so only an explicit "false" turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree

from ml_connector import safexml

EDMX = "http://schemas.microsoft.com/ado/2007/06/edmx"
SAP = "http://www.sap.com/Protocols/SAPData"
_EDM_NAMESPACES = (
    "http://schemas.microsoft.com/ado/2008/09/edm",
    "http://schemas.microsoft.com/ado/2009/11/edm",
    "http://schemas.microsoft.com/ado/2006/04/edm",
    "http://schemas.microsoft.com/ado/2007/05/edm",
)


def _sap(element: ElementTree.Element, name: str) -> str | None:
    return element.get(f"{{{SAP}}}{name}")


def _flag(element: ElementTree.Element, name: str) -> bool:
    return (_sap(element, name) or "true").lower() != "false"


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    type: str
    nullable: bool = True
    max_length: int | None = None
    label: str | None = None
    filterable: bool = True
    sortable: bool = True
    date_only: bool = False       # sap:display-format="Date"


@dataclass(frozen=True, slots=True)
class EntitySet:
    name: str
    entity_type: str
    keys: tuple[str, ...]
    properties: dict[str, Property] = field(default_factory=dict)
    pageable: bool = True
    addressable: bool = True
    creatable: bool = True

    def types(self) -> dict[str, tuple[str, bool]]:
        """property -> (Edm type, date only), for sap_odata_values.row_values."""
        return {p.name: (p.type, p.date_only) for p in self.properties.values()}


@dataclass(frozen=True, slots=True)
class ServiceMetadata:
    namespace: str
    entity_sets: dict[str, EntitySet]


def parse_metadata(text: bytes | str) -> ServiceMetadata:
    """Parse an EDMX document; ValueError when it is not one."""
    try:
        root = safexml.parse(text)
    except safexml.XmlRefused as exc:
        raise ValueError(f"$metadata: {exc}") from None
    except safexml.XmlError as exc:
        raise ValueError(f"$metadata is not XML ({str(exc).removeprefix('not well-formed XML ')})") from None
    if root.tag != f"{{{EDMX}}}Edmx":
        raise ValueError(f"$metadata is not an EDMX document (root element {root.tag})")
    types: dict[str, tuple[tuple[str, ...], dict[str, Property]]] = {}
    sets: list[tuple[str, str, ElementTree.Element]] = []
    namespace = ""
    for edm in _EDM_NAMESPACES:
        for schema in root.iter(f"{{{edm}}}Schema"):
            ns = schema.get("Namespace", "")
            namespace = namespace or ns
            for entity_type in schema.findall(f"{{{edm}}}EntityType"):
                keys = tuple(ref.get("Name", "") for ref in entity_type.findall(f"{{{edm}}}Key/{{{edm}}}PropertyRef"))
                props: dict[str, Property] = {}
                for prop in entity_type.findall(f"{{{edm}}}Property"):
                    name = prop.get("Name", "")
                    length = prop.get("MaxLength")
                    props[name] = Property(
                        name=name, type=prop.get("Type", "Edm.String"),
                        nullable=prop.get("Nullable", "true").lower() != "false",
                        max_length=int(length) if length and length.isdigit() else None,
                        label=_sap(prop, "label"), filterable=_flag(prop, "filterable"),
                        sortable=_flag(prop, "sortable"), date_only=_sap(prop, "display-format") == "Date")
                types[f"{ns}.{entity_type.get('Name', '')}"] = (keys, props)
            for container in schema.findall(f"{{{edm}}}EntityContainer"):
                for entity_set in container.findall(f"{{{edm}}}EntitySet"):
                    sets.append((entity_set.get("Name", ""), entity_set.get("EntityType", ""), entity_set))
    if not namespace:
        raise ValueError("$metadata has no Schema")
    entity_sets: dict[str, EntitySet] = {}
    for name, type_name, element in sets:
        keys, props = types.get(type_name, ((), {}))
        entity_sets[name] = EntitySet(name=name, entity_type=type_name, keys=keys, properties=props,
                                      pageable=_flag(element, "pageable"), addressable=_flag(element, "addressable"),
                                      creatable=_flag(element, "creatable"))
    return ServiceMetadata(namespace=namespace, entity_sets=entity_sets)
