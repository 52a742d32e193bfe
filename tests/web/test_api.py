"""The REST API: JSON pages with cursors, journeys, replay with dry_run, flows, audit export,
RFC 9457 problems naming each bad field, and an OpenAPI 3.1 document that validates."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from ml_connector.core.models import Status
from tests.web.dashboard_support import Served, served


@pytest.fixture(params=[pytest.param(None, id="sqlite"),
                        pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """The API's queries on both stores (insights, replay, flow pause)."""
    return None if request.param is None else str(request.getfixturevalue("pg_schema_url"))


def client(s: Served, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=s.url, headers={"Authorization": f"Bearer {token or s.op_token}"})


async def test_the_openapi_document_is_valid_openapi_3_1_and_lists_every_route(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s, s.view_token) as c:
        doc = (await c.get("/api/openapi.json")).json()
        validate(doc)  # raises on an invalid document
        assert doc["openapi"] == "3.1.0"
        assert {"/api/v1/notifications", "/api/v1/notifications/{id}/journey", "/api/v1/replay",
                "/api/v1/flows/{name}/pause", "/api/v1/audit"} <= set(doc["paths"])


async def test_notifications_come_in_pages_with_a_cursor_and_masked_phones(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s) as c:
        first = (await c.get("/api/v1/notifications", params={"limit": 3})).json()
        assert len(first["items"]) == 3 and first["next_cursor"] == first["items"][-1]["id"]
        rest = (await c.get("/api/v1/notifications", params={"limit": 3, "cursor": first["next_cursor"]})).json()
        assert len(rest["items"]) == 1 and rest["next_cursor"] is None
        ids = [n["id"] for n in first["items"] + rest["items"]]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
        assert all("•" in n["recipient"] or n["recipient"] == "" for n in first["items"] + rest["items"])
        failed = (await c.get("/api/v1/notifications", params=[("status", "failed")])).json()
        assert {n["record_key"] for n in failed["items"]} == {"1003", "1006"}


async def test_a_phone_filters_through_its_keyed_hash_only(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s) as c:
        hashed = (await c.post("/api/v1/recipient-hash", json={"phone": "(312) 555-0187"})).json()["recipient_hash"]
        assert len(hashed) == 64 and "0187" not in hashed
        found = (await c.get("/api/v1/notifications", params={"recipient_hash": hashed})).json()["items"]
        assert [n["record_key"] for n in found] == ["1002"]


async def test_bad_parameters_get_a_422_problem_naming_each_field(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s) as c:
        answer = await c.get("/api/v1/notifications", params={"limit": "0", "since": "yesterday-ish",
                                                              "status": "lost", "recipient_hash": "xyz"})
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["status"] == 422 and body["title"]
        assert {e["name"] for e in body["errors"]} == {"limit", "since", "status", "recipient_hash"}
        bad_body = await c.post("/api/v1/replay", json={"dry_run": "maybe", "status": ["delivered"], "extra": 1})
        assert bad_body.status_code == 422
        assert {e["name"] for e in bad_body.json()["errors"]} == {"dry_run", "status.0", "extra"}
        not_replayable = await c.post("/api/v1/replay", json={"status": ["delivered"]})
        assert [e["name"] for e in not_replayable.json()["errors"]] == ["status.0"]
        missing = await c.get("/api/v1/notifications/999999")
        assert missing.status_code == 404 and missing.json()["status"] == 404


async def test_journey_shows_attempts_callbacks_and_the_console_link(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s) as c:
        delivered = s.by_record()["1002"]
        journey = (await c.get(f"/api/v1/notifications/{delivered.id}/journey")).json()
        kinds = [e["kind"] for e in journey["events"]]
        # A callback may beat its send's commit: then it is an orphan first, adopted by the send.
        assert kinds[:2] == ["created", "claimed"] and kinds.count("attempt") == 1
        assert set(kinds[2:]) <= {"attempt", "status", "orphan"}
        assert "delivered" in {e["status"] for e in journey["events"]}
        # sent and delivered, in whichever order they arrived
        assert {cb["provider_status"] for cb in journey["callbacks"]} == {"sent", "delivered"}
        assert "applied" in {cb["result"] for cb in journey["callbacks"]}
        [attempt] = journey["notification"]["attempts"]
        assert attempt["provider_id"] == delivered.provider_id
        assert attempt["console_url"].endswith(delivered.provider_id)
        assert "becomes: APPROVED" in journey["trigger"]


async def test_replay_by_filter_counts_first_then_replays_and_audits_the_token(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s) as c:
        dry = (await c.post("/api/v1/replay", json={"flow": "po_approved"})).json()
        assert dry == {"dry_run": True, "matched": 2, "capped": False, "replayed": []}
        assert s.by_record()["1003"].status is Status.FAILED
        done = (await c.post("/api/v1/replay", json={"flow": "po_approved", "dry_run": False})).json()
        failed = sorted(n.id for n in s.by_record().values() if n.record_key in ("1003", "1006"))
        assert sorted(done["replayed"]) == failed
        assert {e.detail["actor"] for e in s.p.audit() if e.kind == "replay"} == {"token:op_token"}
        again = await c.post(f"/api/v1/notifications/{done['replayed'][0]}/replay")
        assert again.status_code == 409  # pending now: not replayable


async def test_flows_list_and_get(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s, s.view_token) as c:
        flows = (await c.get("/api/v1/flows")).json()["items"]
        assert {f["name"] for f in flows} == set(s.p.connector.config.flows)
        one = (await c.get("/api/v1/flows/po_approved")).json()
        assert one["events_day"] == 4 and one["failed_day"] == 2 and one["watermark"]
        assert (await c.get("/api/v1/flows/nope")).status_code == 404


async def test_audit_exports_as_json_pages_jsonl_and_csv(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s, s.view_token) as c:
        stored = s.p.audit()
        page = (await c.get("/api/v1/audit", params={"limit": 5})).json()
        assert [r["id"] for r in page["items"]] == [e.id for e in stored[:5]] and page["next_cursor"] == stored[4].id
        jsonl = (await c.get("/api/v1/audit", params={"format": "jsonl"})).text.splitlines()
        assert [json.loads(line)["id"] for line in jsonl] == [e.id for e in stored]
        rows = list(csv.DictReader(io.StringIO((await c.get("/api/v1/audit", params={"format": "csv"})).text)))
        assert [int(r["id"]) for r in rows] == [e.id for e in stored]
        text = "\n".join(jsonl)
        assert "3125550187" not in text and "312-555-0187" not in text  # no phone in the audit


async def test_pause_and_resume_through_the_api_are_persisted_and_audited(
    tmp_path: Path, store_url: str | None,
) -> None:
    async with served(tmp_path, store_url=store_url) as s, client(s) as c:
        paused = (await c.post("/api/v1/flows/po_approved/pause")).json()
        assert paused["paused"] is True and paused["paused_by"] == "token:op_token"
        assert s.p.connector.store.paused_flows() == {"po_approved"}
        watermark = paused["watermark"]
        resumed = (await c.post("/api/v1/flows/po_approved/resume")).json()
        assert resumed["paused"] is False and resumed["watermark"] == watermark  # a pause keeps the watermark
        assert (await c.post("/api/v1/flows/nope/pause")).status_code == 404
