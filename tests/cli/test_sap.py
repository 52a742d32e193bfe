"""`validate`, `check` and `discover` for an SAP ECC source against the Gateway simulator on loopback."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ml_connector.demo_sap import seed
from ml_connector.sim.sap_gateway import SapGatewaySim
from ml_connector.web.server import serving
from tests.cli.conftest import Invoke, ServedSim, write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served_gateway() -> Iterator[str]:
    sim = SapGatewaySim()
    seed(sim)
    sim.create_po(lifnr="100000")
    ready, url, loop, stop = threading.Event(), [], asyncio.new_event_loop(), asyncio.Event()

    async def serve() -> None:
        async with serving(sim.create_app()) as base_url:
            url.append(base_url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def sap_config(tmp_path: Path, twilio_url: str, gateway_url: str) -> Path:
    """examples/sap-ecc.yaml with this run's ports and files."""
    config = yaml.safe_load((REPO / "examples" / "sap-ecc.yaml").read_text(encoding="utf-8"))
    config["sources"]["sap"]["base_url"] = gateway_url
    config["twilio"]["accounts"]["demo"]["base_urls"]["api"] = twilio_url
    config["store"]["url"] = f"sqlite:///{tmp_path / 'sap.db'}"
    config["store"]["key_file"] = str(tmp_path / "sap.key")
    path = tmp_path / "sap.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.copy(write_config(tmp_path).parent / "ml-connector.key", tmp_path / "sap.key")
    return path


def test_the_example_validates(invoke: Invoke) -> None:
    result = invoke(["-c", str(REPO / "examples" / "sap-ecc.yaml"), "validate"])
    assert result.exit_code == 0, result.output
    assert "4 flow(s)" in result.stdout


def test_check_reports_the_sap_system(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim,
                                      served_gateway: str) -> None:
    path = sap_config(tmp_path, served_twilio.url, served_gateway)
    result = invoke(["-c", str(path), "check", "--json"])
    assert result.exit_code == 0, result.output
    sap = next(line for line in json.loads(result.stdout) if line["name"] == "sap")
    details = "\n".join(sap["details"])
    for expected in ("release: 731", "client: 100", "user: MLC_ODATA", "ZMM_PO_SRV", "ZMM_SUPPLIER_INVOICE_SRV"):
        assert expected in details, details


def test_check_names_a_property_the_service_lacks(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim,
                                                 served_gateway: str) -> None:
    path = sap_config(tmp_path, served_twilio.url, served_gateway)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["sources"]["sap"]["entities"]["purchase_orders"]["select"] = ["Netwr", "Zzbuyer"]
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = invoke(["-c", str(path), "check"])
    assert result.exit_code == 1
    flat = " ".join(result.stdout.replace("│", " ").split())
    assert "no property Zzbuyer; it has: Ebeln" in flat, flat


def test_discover_lists_entity_sets_and_properties(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim,
                                                   served_gateway: str) -> None:
    path = sap_config(tmp_path, served_twilio.url, served_gateway)
    result = invoke(["-c", str(path), "discover", "sap", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["ZMM_PO_SRV"]["PurchaseOrderSet"]["properties"]["Netwr"]["type"] == "Edm.Decimal"
    assert "SupplierInvoiceSet" in found["ZMM_SUPPLIER_INVOICE_SRV"]
    table = invoke(["-c", str(path), "discover", "sap"])
    assert table.exit_code == 0 and "PurchasingGroupSet" in table.stdout and "date only" in table.stdout


def test_discover_other_sources_and_unknown_names(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    result = invoke(["-c", str(path), "discover", "erp"])
    assert result.exit_code == 1 and "not supported yet for source type 'sql'" in result.stderr
    missing = invoke(["-c", str(path), "discover", "nope"])
    assert missing.exit_code == 3 and "no source 'nope'" in missing.stderr
