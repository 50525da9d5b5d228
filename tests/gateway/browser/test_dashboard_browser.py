"""The dashboard in headless Chromium: what a person does, and what they see."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.commands import Services
from gateway.examples import create_example_profile
from gateway.examples.chart import write_chart
from gateway.worker_api import serving, socket_path
from kanban.runtime.dispatcher import Dispatcher, DispatchSettings
from platforms.base import Destination
from tests.fakes.llm_server import LLMServer
from tests.gateway.browser.conftest import DESKTOP, PHONE, Site, artifacts_dir, eventually

CHAT = Destination("web", "dashboard", "main")


async def card(page: Any, title: str, column: str | None = None) -> Any:
    scope = f'.column[data-status="{column}"] ' if column else ""
    locator = page.locator(f"{scope}.card", has_text=title)
    await locator.first.wait_for(state="attached", timeout=15_000)
    return locator.first


async def test_board_loads_with_columns_and_counts(site: Site) -> None:
    await site.board.create_task("Plan the launch", assignee="writer")
    await site.board.create_task("Rough idea", triage=True)
    page = await site.page()
    await card(page, "Plan the launch", "ready")
    await card(page, "Rough idea", "triage")
    statuses = await page.locator(".column").evaluate_all("els => els.map(e => e.dataset.status)")
    assert statuses == ["triage", "todo", "ready", "running", "blocked", "done"]
    counts = await page.locator("#counts").inner_text()
    assert "Ready 1" in counts.replace("\n", " ") and "Triage 1" in counts.replace("\n", " ")
    await page.wait_for_selector("#conn.live")
    assert await page.locator("#orch-pill").inner_text() == "Orchestration: Auto"
    triage = await card(page, "Rough idea", "triage")
    assert await triage.locator("button.decompose").count() == 1
    assert page.errors == []


async def test_created_task_appears_live_without_reload(site: Site) -> None:
    page = await site.page()
    await page.wait_for_selector("#conn.live")
    await page.evaluate("window.__sameDocument = 'yes'")
    await page.keyboard.press("c")
    dialog = page.locator("#create-dialog")
    await dialog.locator("input[name=title]").fill("Write the launch post")
    await dialog.locator("textarea[name=body]").fill("Use **bold** claims <script>x</script>")
    await dialog.locator("button[type=submit]").click()
    await card(page, "Write the launch post", "ready")
    assert await page.evaluate("window.__sameDocument") == "yes"  # no reload happened
    tasks = await site.board.list_tasks()
    assert [(t.title, t.created_by) for t in tasks] == [("Write the launch post", "dashboard")]
    # A change made elsewhere moves the card live too.
    await site.board.block(tasks[0].id, "waiting for legal", as_operator=True)
    await card(page, "Write the launch post", "blocked")
    assert "waiting for legal" in await page.locator('.column[data-status="blocked"]').inner_text()
    # The drawer renders the body's markdown, and its HTML only as text.
    await (await card(page, "Write the launch post")).click()
    body = page.locator(".drawer .md").first
    await body.wait_for()
    assert await body.locator("strong").inner_text() == "bold"
    assert await page.locator(".drawer script").count() == 0
    assert "<script>x</script>" in await body.inner_text()
    assert page.url.endswith(f"#task-{tasks[0].id}")
    await page.keyboard.press("Escape")
    await page.locator("#drawer").wait_for(state="hidden")


async def test_unreachable_board_is_said_in_place(site: Site) -> None:
    await site.board.create_task("still here")
    page = await site.page()
    await card(page, "still here")
    await page.route("**/api/board?*", lambda route: route.abort())
    await page.locator("#search").fill("x")
    banner = page.locator("#banner")
    await banner.wait_for(state="visible")
    assert "Could not reach the board — retrying" in await banner.inner_text()
    await page.unroute("**/api/board?*")
    await page.locator("#search").fill("")
    await banner.wait_for(state="hidden", timeout=15_000)
    await card(page, "still here")


async def test_keyboard_moves_between_cards_and_focuses_search(site: Site) -> None:
    for title in ("first", "second"):
        await site.board.create_task(title)
    await site.board.create_task("idea", triage=True)
    page = await site.page()
    await card(page, "second")
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "search"
    await page.locator("#search").press("Escape")
    await (await card(page, "idea")).focus()
    await page.keyboard.press("ArrowRight")  # triage → (empty todo) → ready
    assert "first" in await page.evaluate("document.activeElement.textContent")
    await page.keyboard.press("ArrowDown")
    assert "second" in await page.evaluate("document.activeElement.textContent")
    await page.keyboard.press("Enter")
    await page.locator("#drawer h1", has_text="second").wait_for()


@pytest.fixture
async def chart_site(site: Site) -> AsyncIterator[Site]:
    create_example_profile(site.profiles(), "charts", "chart")
    yield site


async def run_worker(site: Site, task_id: int) -> None:
    """One real dispatcher: spawns ``relayboard example chart`` found on PATH, then reaps it."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    boards = site.app.state.dashboard.boards
    api = socket_path(site.home)
    dispatcher = Dispatcher(boards, site.profiles(),
                            DispatchSettings(tmux_cleanup=False, worker_api=api), base_env=env)
    try:
        async with serving(Services(boards=boards, profiles=site.profiles()), api):
            await dispatcher.run_cycle(site.board)

            async def finished() -> bool:
                await dispatcher.wait_workers(0.2)
                await dispatcher.run_cycle(site.board)
                return (await site.board.get_task(task_id)).status == "done"

            await eventually(finished, "the chart worker to finish", within=30)
    finally:
        await dispatcher.aclose(terminate=True)


async def test_worker_completes_with_a_png_and_the_drawer_previews_it(chart_site: Site) -> None:
    site = chart_site
    task = (await site.board.create_task("Chart the sales", assignee="charts",
                                         body="Jan: 10\nFeb: 14\nMar: 9\nApr: 17")).task
    page = await site.page(f"/#task-{task.id}")
    await page.locator("#drawer h1", has_text="Chart the sales").wait_for()
    await run_worker(site, task.id)
    image = page.locator(".drawer .files img")
    await image.wait_for(timeout=15_000)
    await eventually(lambda: image.evaluate("img => img.complete && img.naturalWidth"),
                     "the chart to load")
    assert await image.evaluate("img => img.naturalWidth") == 800
    files = await page.locator(".drawer .files").inner_text()
    assert "chart.png" in files and "data.csv" in files and "KB" in files
    assert "completed" in await page.locator(".drawer .runs").inner_text()
    await page.wait_for_function(
        "document.querySelector('.drawer .log')?.textContent.includes("
        "'bar chart of 4 values from the task text')")
    await card(page, "Chart the sales", "done")
    await page.screenshot(path=str(artifacts_dir() / "drawer-worker-chart.png"))


CONFIG = ("# team settings: keep me\nkanban:\n  auto_decompose: true   # on for now\n"
          "  max_spawn: 3\n")
PILL_SAYS = "document.querySelector('#orch-pill').textContent.endsWith('{}')"


@pytest.mark.parametrize("config_text", [CONFIG])
async def test_pill_flip_writes_config(site: Site) -> None:
    page = await site.page()
    pill = page.locator("#orch-pill")
    await page.wait_for_function(PILL_SAYS.format("Auto"))
    await pill.hover()
    assert await page.locator("#orch-tip").is_visible()
    await pill.click()
    await page.wait_for_function(PILL_SAYS.format("Manual"))
    text = (site.home / "config.yaml").read_text(encoding="utf-8")
    assert "auto_decompose: false" in text
    assert "# team settings: keep me" in text and "max_spawn: 3" in text
    await pill.click()
    await page.wait_for_function(PILL_SAYS.format("Auto"))
    assert "auto_decompose: true" in (site.home / "config.yaml").read_text(encoding="utf-8")


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    server = LLMServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def config_text(request: pytest.FixtureRequest) -> str:
    """The home's config.yaml: the decomposer points at the fake LLM when a test uses it."""
    if "llm" in request.fixturenames:
        server: LLMServer = request.getfixturevalue("llm")
        return ("auxiliary:\n  kanban_decomposer:\n"
                f"    base_url: {server.base_url}\n    model: fake-planner\n    retries: 0\n")
    return ""


async def test_decompose_a_triage_card_with_the_llm(site: Site, llm: LLMServer) -> None:
    site.profiles().create("writer", description="writes copy")
    site.profiles().create("designer", description="draws pictures")
    llm.reply(json.dumps({"fanout": True, "rationale": "two crafts", "tasks": [
        {"title": "Write the announcement", "assignee": "writer"},
        {"title": "Design the banner", "assignee": "designer", "parents": [0]},
    ]}))
    root = (await site.board.create_task("Launch campaign", triage=True)).task
    page = await site.page()
    triage = await card(page, "Launch campaign", "triage")
    await triage.locator("button.decompose").click()
    await card(page, "Write the announcement", "ready")
    await card(page, "Design the banner", "todo")
    assert len(llm.completions()) == 1
    assert "Launch campaign" in llm.prompt()
    kids = [t for t in await site.board.list_tasks() if t.id != root.id]
    assert sorted((t.title, t.assignee) for t in kids) == [
        ("Design the banner", "designer"), ("Write the announcement", "writer")]


async def test_chat_message_reaches_the_inbox_and_images_show_inline(site: Site,
                                                                     tmp_path: Path) -> None:
    page = await site.page("/?chat=1")
    box = page.locator("#chat-input")
    await box.wait_for()
    await box.fill("/kanban create Chart the sales --assignee charts")
    await box.press("Enter")
    async with asyncio.timeout(10):
        inbound = await site.inbox.get()
    assert (inbound.platform, inbound.text) == ("web", "/kanban create Chart the sales "
                                                       "--assignee charts")
    await page.locator(".bubble.user", has_text="Chart the sales").wait_for()
    # What the router will do with the reply and the completion, done by hand here.
    reply = inbound.reply_destination()
    assert (await site.web.send(reply, "Created #1 (ready) for charts")).ok
    task = (await site.board.create_task("Chart the sales")).task
    summary, files = write_chart(task, tmp_path, [])
    receipts = await site.web.send_multiple_images(reply, [files[0]], caption="#1 done: " + summary)
    assert all(r.ok for r in receipts)
    assert (await site.web.send_document(reply, files[1])).ok
    image = page.locator(".bubble.bot img")
    await image.wait_for()
    await eventually(lambda: image.evaluate("img => img.complete && img.naturalWidth"),
                     "the chat image to load")
    chip = page.locator(".bubble.bot .doc-chip")
    assert "data.csv" in await chip.inner_text()
    assert "Created #1" in await page.locator("#chat-log").inner_text()
    assert page.errors == []


async def make_showcase(site: Site, tmp_path: Path) -> None:
    """A board a person would recognise: every column used, a finished chart, a chat thread."""
    board = site.board
    create_example_profile(site.profiles(), "charts", "chart")
    site.profiles().create("writer", description="writes copy")
    launch = (await board.create_task("Launch the spring campaign", triage=True,
                                      body="- landing page\n- email\n- chart of last year")).task
    chart = (await board.create_task("Chart the sales", assignee="charts", priority=2,
                                     body="Jan: 120\nFeb: 135\nMar: 128\nApr: 160\nMay: 171\n"
                                          "Jun: 190")).task
    claim = await board.claim(chart.id)
    workspace = board.workspaces_dir / str(chart.id)
    summary, files = await asyncio.to_thread(write_chart, chart, workspace, [])
    done = await board.complete(chart.id, lease=claim.lease, result=summary, summary=summary,
                                artifacts=[str(f) for f in files])
    files = [Path(a) for a in done.artifacts]  # the durable copies (the workspace is removed)
    report = (await board.create_task("Write the quarterly report", assignee="writer",
                                      parents=[chart.id])).task
    await board.create_task("Send the report to the board", assignee="writer",
                            parents=[report.id])
    running = (await board.create_task("Draft the newsletter intro paragraph about the new "
                                       "pricing tiers and the spring promotion",
                                       assignee="writer")).task
    await board.claim(running.id)
    await board.create_task("Check the legal wording", initial_status="blocked")
    await board.comment(chart.id, "Looks great — **ship it**.", author="dana")
    del launch
    await site.web.receive("/kanban create Chart the sales --assignee charts")
    await site.web.send(CHAT, f"Created #{chart.id} (ready) for charts")
    await site.web.send_multiple_images(CHAT, [files[0]], caption=f"#{chart.id} done: {summary}")
    await site.web.send_document(CHAT, files[1])


async def test_screenshots_light_and_dark_desktop_and_phone(site: Site, tmp_path: Path) -> None:
    await make_showcase(site, tmp_path)
    out = artifacts_dir()
    chart_id = next(t.id for t in await site.board.list_tasks() if t.title == "Chart the sales")
    for scheme in ("light", "dark"):
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = await site.page(viewport=viewport, scheme=scheme)
            await card(page, "Chart the sales", "done")
            await page.wait_for_selector("#conn.live")
            await page.screenshot(path=str(out / f"board-{scheme}-{label}.png"))
            await page.evaluate(f"location.hash = 'task-{chart_id}'")
            image = page.locator(".drawer .files img")
            await image.wait_for()
            await eventually(lambda img=image: img.evaluate("i => i.complete && i.naturalWidth"),
                             "the drawer image")
            await page.screenshot(path=str(out / f"drawer-{scheme}-{label}.png"))
            await page.keyboard.press("Escape")
            await page.locator("#chat-toggle").click()
            bubble_img = page.locator(".bubble img")
            await bubble_img.wait_for()
            await eventually(lambda img=bubble_img: img.evaluate(
                "i => i.complete && i.naturalWidth"), "the chat image")
            await page.screenshot(path=str(out / f"chat-{scheme}-{label}.png"))
            assert page.errors == []
    assert len(list(out.glob("*-desktop.png"))) >= 6
