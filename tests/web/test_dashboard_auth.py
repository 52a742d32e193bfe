"""Who gets in: sessions, CSRF, the SSO header from trusted proxies only, API tokens, roles."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from ml_connector.core.models import Status
from tests.web.dashboard_support import PASSWORD, Served, served

PAGES = ["/", "/notifications", "/notifications/1", "/failed", "/flows"]
API = ["/api/v1/notifications", "/api/v1/notifications/1", "/api/v1/notifications/1/journey", "/api/v1/flows",
       "/api/v1/flows/po_approved", "/api/v1/audit", "/api/openapi.json"]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def signed_in(s: Served, user: str = "olivia") -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=s.url)
    token = csrf_of((await client.get("/login")).text)
    answer = await client.post("/login", data={"csrf": token, "username": user, "password": PASSWORD, "next": "/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    return client


async def test_without_a_session_pages_redirect_to_sign_in_and_the_api_answers_401(tmp_path: Path) -> None:
    async with served(tmp_path) as s, httpx.AsyncClient(base_url=s.url) as client:
        for path in PAGES:
            answer = await client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
        for path in API:
            answer = await client.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get("/api/v1/flows", headers={"Authorization": "Bearer mlc_wrong"})).status_code == 401
        posted = await client.post("/notifications/2/replay", data={"csrf": "x"})
        assert posted.status_code == 401


async def test_a_wrong_password_is_refused(tmp_path: Path) -> None:
    async with served(tmp_path) as s, httpx.AsyncClient(base_url=s.url) as client:
        token = csrf_of((await client.get("/login")).text)
        for user, password in (("olivia", "nope-nope"), ("nobody", PASSWORD)):
            wrong = await client.post("/login", data={"csrf": token, "username": user, "password": password})
            assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        assert (await client.get("/")).status_code == 303


async def test_the_session_cookie_is_signed_secure_strict_and_expires(tmp_path: Path) -> None:
    async with served(tmp_path, secure_cookies=True, session_max_age="2h") as s, \
            httpx.AsyncClient(base_url=s.url) as client:
        cookie = (await client.get("/login")).headers["set-cookie"]
        assert cookie.startswith("mlc_session=")
        assert "Max-Age=7200" in cookie and "secure" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert "httponly" in cookie.lower()


async def test_a_tampered_session_cookie_is_no_session(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        client = await signed_in(s)
        value = client.cookies["mlc_session"]
        client.cookies.set("mlc_session", value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
        assert (await client.get("/")).status_code == 303
        await client.aclose()


async def test_a_form_post_without_the_csrf_token_is_refused_with_403(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        client = await signed_in(s)
        failed = s.by_record()["1003"]
        for form in ({}, {"csrf": "not-the-token"}):
            answer = await client.post(f"/notifications/{failed.id}/replay", data=form)
            assert answer.status_code == 403
        assert (await client.post("/flows/po_approved/pause", data={})).status_code == 403
        assert (await client.post("/failed/replay", data={"confirm": "yes"})).status_code == 403
        assert s.by_record()["1003"].status is Status.FAILED
        token = csrf_of((await client.get("/")).text)
        done = await client.post(f"/notifications/{failed.id}/replay", data={"csrf": token})
        assert done.status_code == 303
        assert s.by_record()["1003"].status is Status.PENDING
        await client.aclose()


async def test_sign_in_form_needs_its_csrf_token_and_next_stays_on_this_site(tmp_path: Path) -> None:
    async with served(tmp_path) as s, httpx.AsyncClient(base_url=s.url) as client:
        await client.get("/login")
        refused = await client.post("/login", data={"username": "olivia", "password": PASSWORD})
        assert refused.status_code == 403
        token = csrf_of((await client.get("/login")).text)
        answer = await client.post("/login", data={"csrf": token, "username": "olivia", "password": PASSWORD,
                                                   "next": "//evil.example/"})
        assert answer.headers["location"] == "/"


async def test_the_sso_header_counts_only_from_a_configured_proxy(tmp_path: Path) -> None:
    async with served(tmp_path, sso={"header": "X-Remote-User", "proxies": ["10.9.9.0/24"]}) as s, \
            httpx.AsyncClient(base_url=s.url) as client:
        # The test client connects from 127.0.0.1, which is not a configured proxy: ignored.
        answer = await client.get("/", headers={"X-Remote-User": "olivia"})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        api = await client.get("/api/v1/flows", headers={"X-Remote-User": "olivia"})
        assert api.status_code == 401
    async with served(tmp_path / "trusted", sso={"header": "X-Remote-User", "proxies": ["127.0.0.1"]}) as s, \
            httpx.AsyncClient(base_url=s.url) as client:
        page = await client.get("/", headers={"X-Remote-User": "olivia"})
        assert page.status_code == 200 and "olivia · operator" in page.text
        stranger = await client.get("/", headers={"X-Remote-User": "sam"})
        assert stranger.status_code == 200 and "sam · viewer" in stranger.text  # default_role
        assert (await client.get("/")).status_code == 303  # no header: no one


async def test_a_viewer_token_reads_but_cannot_replay_or_pause(tmp_path: Path) -> None:
    async with served(tmp_path) as s, httpx.AsyncClient(base_url=s.url) as client:
        viewer = {"Authorization": f"Bearer {s.view_token}"}
        assert (await client.get("/api/v1/notifications", headers=viewer)).status_code == 200
        failed = s.by_record()["1003"]
        replay = await client.post(f"/api/v1/notifications/{failed.id}/replay", headers=viewer)
        assert replay.status_code == 403 and replay.json()["title"] == "Forbidden"
        assert (await client.post("/api/v1/replay", headers=viewer, json={"dry_run": False})).status_code == 403
        assert (await client.post("/api/v1/flows/po_approved/pause", headers=viewer)).status_code == 403
        assert s.by_record()["1003"].status is Status.FAILED


async def test_a_session_api_post_needs_the_csrf_header(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        client = await signed_in(s)
        failed = s.by_record()["1003"]
        assert (await client.post(f"/api/v1/notifications/{failed.id}/replay")).status_code == 403
        token = csrf_of((await client.get("/")).text)
        ok = await client.post(f"/api/v1/notifications/{failed.id}/replay", headers={"X-CSRF-Token": token})
        assert ok.status_code == 200 and ok.json()["replayed"] == [failed.id]
        await client.aclose()


async def test_a_signed_in_person_downloads_the_audit_from_the_overview_link(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        client = await signed_in(s, "victor")
        overview = (await client.get("/")).text
        link = re.search(r'href="([^"]+)" id="audit-csv"', overview)
        assert link is not None
        download = await client.get(link.group(1).replace("&amp;", "&"))
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert download.text.splitlines()[0] == "id,at,notification_id,flow,kind,status,detail"
        await client.aclose()
