"""The dashboard in a real browser: sign in, filter, a journey, replay after a dry run, flows, roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from tests.browser.conftest import screenshot_dir
from tests.web.dashboard_support import PASSWORD, Served, served


async def sign_in(browser: Any, s: Served, user: str) -> Any:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(s.url + "/")
    assert "/login" in page.url  # no session: sent to sign in
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(s.url + "/")
    return page


async def test_operator_filters_opens_a_journey_and_replays_after_the_dry_run(tmp_path: Path, browser: Any) -> None:
    async with served(tmp_path) as s:
        page = await sign_in(browser, s, "olivia")
        assert await page.text_content("#last-day") == "4"
        shots = screenshot_dir()
        if shots:
            await page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)

        await page.click("text=Notifications")
        await page.select_option("select[name=status]", "failed")
        await page.click("form.filters button[type=submit]")
        rows = page.locator("#notifications tr:has(td a)")
        assert await rows.count() == 2
        assert "21211" in (await page.text_content("#notifications") or "")
        assert "+1500•••0001" in (await page.text_content("#notifications") or "")  # masked

        failed = s.by_record()["1003"]
        await page.click(f"#notifications a[href='/notifications/{failed.id}']")
        timeline = await page.text_content("#timeline") or ""
        assert "created" in timeline and "claimed" in timeline and "attempt" in timeline
        assert "21211" in (await page.text_content("main") or "")
        if shots:
            delivered = s.by_record()["1002"]
            await page.goto(f"{s.url}/notifications/{delivered.id}")
            assert failed.provider_id is None  # refused at create: no SID; the delivered one has one
            assert await page.locator("a:has-text('Twilio console')").count() >= 1
            await page.screenshot(path=str(shots / "dashboard-journey.png"), full_page=True)

        await page.click("text=Failed & dead")
        await page.click("#dry-run-replay")
        assert "2 notification(s) match" in " ".join((await page.text_content("#dry-run") or "").split())
        assert s.by_record()["1003"].status is Status.FAILED  # the dry run changed nothing
        await page.click("#confirm-replay")
        assert "Replayed 2" in (await page.text_content("#replay-done") or "")
        after = s.by_record()
        assert after["1003"].status is Status.PENDING and after["1006"].status is Status.PENDING
        replays = [e for e in s.p.audit() if e.kind == "replay"]
        assert {e.detail["actor"] for e in replays} == {"user:olivia"}


async def test_operator_replays_one_notification_from_its_journey(tmp_path: Path, browser: Any) -> None:
    async with served(tmp_path) as s:
        page = await sign_in(browser, s, "olivia")
        failed = s.by_record()["1003"]
        await page.goto(f"{s.url}/notifications/{failed.id}")
        await page.click("#replay-one")
        assert "replayed by olivia" in (await page.text_content("main") or "")
        assert s.by_record()["1003"].status is Status.PENDING
        assert s.by_record()["1006"].status is Status.FAILED


async def test_viewer_sees_no_replay_and_a_forged_replay_is_refused(tmp_path: Path, browser: Any) -> None:
    async with served(tmp_path) as s:
        page = await sign_in(browser, s, "victor")
        failed = s.by_record()["1003"]
        await page.goto(f"{s.url}/notifications/{failed.id}")
        assert await page.locator("#replay-one").count() == 0
        assert await page.locator("#viewer-note").count() == 1
        await page.goto(f"{s.url}/failed")
        assert await page.locator("#dry-run-replay").count() == 0
        # The viewer's own session and CSRF token, posted by hand: refused for the role.
        csrf = await page.get_attribute("header input[name=csrf]", "value")
        answer = await page.request.post(f"{s.url}/notifications/{failed.id}/replay", form={"csrf": csrf or ""})
        assert answer.status == 403
        assert s.by_record()["1003"].status is Status.FAILED


async def test_operator_pauses_and_resumes_a_flow(tmp_path: Path, browser: Any) -> None:
    async with served(tmp_path) as s:
        page = await sign_in(browser, s, "olivia")
        await page.click("text=Flows")
        row = page.locator("tr[data-flow=po_approved]")
        await row.locator("button:has-text('Pause')").click()
        assert "po_approved paused by olivia" in (await page.text_content("#flow-message") or "")
        assert "paused" in (await row.text_content() or "") and "user:olivia" in (await row.text_content() or "")
        assert s.p.connector.store.paused_flows() == {"po_approved"}
        await row.locator("button:has-text('Resume')").click()
        assert "po_approved resumed by olivia" in (await page.text_content("#flow-message") or "")
        assert s.p.connector.store.paused_flows() == set()
        changes = [(e.kind, e.detail["actor"]) for e in s.p.audit() if e.kind in ("flow_paused", "flow_resumed")]
        assert changes == [("flow_paused", "user:olivia"), ("flow_resumed", "user:olivia")]


async def test_a_viewer_has_no_pause_button(tmp_path: Path, browser: Any) -> None:
    async with served(tmp_path) as s:
        page = await sign_in(browser, s, "victor")
        await page.goto(f"{s.url}/flows")
        assert await page.locator("tr[data-flow=po_approved] button").count() == 0
