"""`validate`, `check` and `discover` for an SAP ECC source in RFC mode against the agent simulator on loopback."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ml_connector.demo_sap_rfc import SAP_AGENT_TOKEN
from ml_connector.sim.sap_agent import SapAgentSim
from ml_connector.web.server import serving
from tests.cli.conftest import Invoke, ServedSim, write_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sap-ecc-rfc.yaml"


@pytest.fixture
def served_agent() -> Iterator[tuple[str, SapAgentSim]]:
    sim = SapAgentSim(token=SAP_AGENT_TOKEN)
    sim.add_supplier("100000", "Müller Präzision GmbH", email="sales@mueller.example")
    sim.add_group("001", "Einkauf Team 1", "+13125550181")
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
        yield url[0], sim
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def rfc_config(tmp_path: Path, twilio_url: str, agent_url: str) -> Path:
    """examples/sap-ecc-rfc.yaml with this run's ports and files."""
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["sources"]["sap"]["agent"]["url"] = agent_url
    config["twilio"]["accounts"]["demo"]["base_urls"]["api"] = twilio_url
    config["store"]["url"] = f"sqlite:///{tmp_path / 'sap.db'}"
    config["store"]["key_file"] = str(tmp_path / "sap.key")
    path = tmp_path / "sap.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.copy(write_config(tmp_path).parent / "ml-connector.key", tmp_path / "sap.key")
    return path


def test_the_rfc_example_validates(invoke: Invoke) -> None:
    result = invoke(["-c", str(EXAMPLE), "validate"])
    assert result.exit_code == 0, result.output
    assert "3 flow(s)" in result.stdout


def test_the_rfc_example_names_only_its_own_entities(tmp_path: Path, invoke: Invoke) -> None:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config["flows"]["po_created"]["entity"] = "PurchaseOrderSet"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = invoke(["-c", str(path), "validate"])
    assert result.exit_code == 2 and "no entity 'PurchaseOrderSet'" in result.output
    assert "purchase_orders" in result.output


def test_check_reports_the_sap_system_through_the_agent(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim,
                                                        served_agent: tuple[str, SapAgentSim]) -> None:
    path = rfc_config(tmp_path, served_twilio.url, served_agent[0])
    result = invoke(["-c", str(path), "check", "--json"])
    assert result.exit_code == 0, result.output
    sap = next(line for line in json.loads(result.stdout) if line["name"] == "sap")
    details = "\n".join(sap["details"])
    for expected in ("release: 731", "client: 100", "user: MLC_RFC", "system_id: ECD", "mode: rfc",
                     "max_concurrent_calls: 5", "BAPI_PO_GETDETAIL1"):
        assert expected in details, details
    assert SAP_AGENT_TOKEN not in result.output


def test_check_with_a_wrong_token_says_so(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim,
                                          served_agent: tuple[str, SapAgentSim]) -> None:
    path = rfc_config(tmp_path, served_twilio.url, served_agent[0])
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["sources"]["sap"]["agent"]["token"] = "a-wrong-token-for-the-agent"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = invoke(["-c", str(path), "check"])
    assert result.exit_code == 1
    flat = " ".join(result.stdout.replace("│", " ").split())
    assert "AGENT_UNAUTHORIZED" in flat and "a-wrong-token-for-the-agent" not in result.output


def test_discover_lists_tables_and_fields(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim,
                                          served_agent: tuple[str, SapAgentSim]) -> None:
    path = rfc_config(tmp_path, served_twilio.url, served_agent[0])
    result = invoke(["-c", str(path), "discover", "sap", "--json"])
    assert result.exit_code == 0, result.output
    tables = json.loads(result.stdout)["RFC tables"]
    assert tables["RBKP"]["properties"]["XBLNR"] == {"type": "CHAR(16)", "label": "Reference Document Number"}
    assert {"CDHDR", "CDPOS", "T024", "LFA1", "ADR6"} <= set(tables)
    table = invoke(["-c", str(path), "discover", "sap"])
    assert table.exit_code == 0 and "UDATE" in table.stdout and "DATS(8)" in table.stdout
