"""The Schedules view and waiting cards in a real headless Chromium: a schedule added in the
view shows its next runs in the configured zone, pauses and resumes; a task with a start time
shows it on its card and starts from the drawer's Run now. Screenshots light/dark, desktop/phone."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.gateway.browser.conftest import DESKTOP, PHONE, Site, artifacts_dir, eventually

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def config_text() -> str:
    return "kanban:\n  timezone: Europe/Berlin\n"


def expected(stamp: float) -> str:
    """``Tue 8 Dec 09:00``, the way the page writes a time in Europe/Berlin."""
    value = datetime.fromtimestamp(stamp, BERLIN)
    return f"{value:%a} {value.day} {value:%b} {value:%H:%M}"


async def test_a_schedule_added_in_its_view_shows_its_next_runs(site: Site) -> None:
    site.profiles().create("charts")
    page: Any = await site.page("/#schedules")
    dialog = page.locator("#schedules-dialog")
    await dialog.wait_for(state="visible")
    await page.wait_for_selector("#schedule-zone:text('Europe/Berlin')")
    assert await dialog.locator(".empty-schedules").is_visible()

    form = page.locator("#schedule-form")
    await form.locator("input[name=title]").fill("Sales chart")
    await form.locator("input[name=every]").fill("weekdays 09:00")
    await form.locator("select[name=assignee]").select_option("charts")
    await form.locator("button[type=submit]").click()
    row = page.locator("tr[data-schedule=S1]")
    await row.wait_for()
    [schedule] = await site.board.list_schedules()
    assert (schedule.title, schedule.assignee, schedule.timezone) == (
        "Sales chart", "charts", "Europe/Berlin")
    upcoming = await row.locator(".upcoming li").all_inner_texts()
    assert len(upcoming) == 3 and upcoming[0] == expected(schedule.next_run_at or 0)
    assert all(text.endswith("09:00") for text in upcoming)
    assert "weekdays 09:00" in await row.inner_text()
    status = page.locator("#schedule-status")
    assert "first run " + upcoming[0] in await status.inner_text()

    await row.get_by_role("button", name="Pause S1").click()
    await row.locator(".badge.paused").wait_for()
    assert (await site.board.get_schedule(schedule.id)).state == "paused"
    await row.get_by_role("button", name="Resume S1").click()
    await row.locator(".upcoming").wait_for()
    await row.get_by_role("button", name="Run now S1").click()

    async def occurrence() -> bool:
        return len(await site.board.list_tasks()) == 1

    await eventually(occurrence, "the occurrence made by Run now")
    await page.screenshot(path=str(artifacts_dir() / "schedules-light-desktop.png"))
    assert page.errors == []


async def test_a_waiting_card_shows_its_start_and_the_drawer_runs_it_now(site: Site) -> None:
    start = datetime(2030, 1, 2, 9, 0, tzinfo=BERLIN).timestamp()
    task = (await site.board.create_task("Monthly report", not_before=start)).task
    page: Any = await site.page()
    card = page.locator(f".card[data-id='{task.id}']")
    await card.wait_for()
    assert "starts Wed 2 Jan 09:00" in await card.locator(".badge.starts").inner_text()
    await card.click()
    drawer = page.locator("#drawer")
    await drawer.get_by_text("Wed 2 Jan 09:00 (Europe/Berlin)").wait_for()
    await drawer.get_by_role("button", name="Run now").click()

    async def started() -> bool:
        return (await site.board.get_task(task.id)).not_before is None

    await eventually(started, "the task's wait lifted")
    await card.locator(".badge.starts").wait_for(state="detached")
    assert page.errors == []


async def test_schedules_screenshots_light_and_dark_desktop_and_phone(site: Site) -> None:
    await site.board.create_schedule("Sales chart", every="weekdays 09:00",
                                     timezone="Europe/Berlin", assignee="charts")
    await site.board.create_schedule("Weekly summary of the pipeline", every="mondays 08:30",
                                     timezone="Europe/Berlin", catch_up="all", overlap=True)
    paused = await site.board.create_schedule("Ping", every="every 15 minutes", timezone="UTC")
    await site.board.pause_schedule(paused.id)
    out = artifacts_dir()
    for scheme in ("light", "dark"):
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page: Any = await site.page("/#schedules", viewport=viewport, scheme=scheme)
            await page.locator("tr[data-schedule=S3] .badge.paused").wait_for()
            await page.screenshot(path=str(out / f"schedules-{scheme}-{label}.png"))
            assert page.errors == []
