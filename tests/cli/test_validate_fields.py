"""`validate`: template variables no field provides (with the closest name), all problems at once, --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml_connector.core.field_names import unknown_fields
from tests.cli.conftest import Invoke, write_config

PO_COLUMNS = ["po_number", "vendor_name", "amount", "currency", "status", "buyer_id"]


def _typo(config: dict[str, Any]) -> None:
    config["sources"]["erp"]["entities"]["purchase_order"]["columns"] = PO_COLUMNS
    config["flows"]["po_approved"]["template"] = (
        "PO {{ po_numbr }} for {{ vendor_name }}:\n{{ amount | money(curency) }} {% for x in [1] %}{{ x }}"
        "{{ loop.index }}{% endfor %} {{ record.key }} {{ flow }}")
    config["flows"]["invoice_validated"]["template"] = "Invoice {{ invoice_num }\n"  # a syntax error too


def test_typo_is_caught_with_the_closest_field_and_every_problem_at_once(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path, tweak=_typo)
    result = invoke(["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert "'po_numbr' is not a field of sources.erp.entities.purchase_order; did you mean 'po_number'?" \
        in result.stderr
    assert "line 2 of the template: 'curency' is not a field" in result.stderr and "'currency'?" in result.stderr
    assert "flows.invoice_validated.template" in result.stderr  # the other flow's error, in the same run
    assert "'x'" not in result.stderr and "'loop'" not in result.stderr and "'record'" not in result.stderr
    as_json = invoke(["-c", str(path), "validate", "--json"])
    assert as_json.exit_code == 2
    data = json.loads(as_json.stdout)
    assert data["valid"] is False and len(data["problems"]) == 3


def test_unknown_fields_of_entities_without_declared_columns_are_not_guessed(tmp_path: Path, invoke: Invoke) -> None:
    def typo_only(config: dict[str, Any]) -> None:
        config["flows"]["po_approved"]["template"] = "PO {{ po_numbr }}"

    result = invoke(["-c", str(write_config(tmp_path, tweak=typo_only)), "validate", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] is True


def test_valid_json(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(["-c", str(write_config(tmp_path)), "validate", "--json"])
    data = json.loads(result.stdout)
    assert data == {"valid": True, "path": data["path"], "problems": [], "warnings": [], "sources": 1, "flows": 2,
                    "enabled_flows": 2, "twilio_accounts": 1}


def test_invalid_config_json(tmp_path: Path, invoke: Invoke) -> None:
    def broken(config: dict[str, Any]) -> None:
        config["webhooks"]["port"] = 70000

    result = invoke(["-c", str(write_config(tmp_path, tweak=broken)), "validate", "--json"])
    assert result.exit_code == 2
    assert any("webhooks.port" in p for p in json.loads(result.stdout)["problems"])


def test_unknown_fields_pure() -> None:
    assert unknown_fields("{{ Amount }} {{ vendr }} {{ zzz }}", ["amount", "vendor"]) == [
        (1, "Amount", "amount"), (1, "vendr", "vendor"), (1, "zzz", None)]


def test_template_errors_are_reported_with_config_errors(tmp_path: Path, invoke: Invoke) -> None:
    def both(config: dict[str, Any]) -> None:
        config["webhooks"]["port"] = 70000
        config["flows"]["invoice_validated"]["template"] = "Invoice {{ invoice_num }\n"

    result = invoke(["-c", str(write_config(tmp_path, tweak=both)), "validate"])
    assert result.exit_code == 2
    assert "webhooks.port" in result.stderr and "flows.invoice_validated.template: line 1" in result.stderr
    assert "invalid configuration (2 problems)" in result.stderr
