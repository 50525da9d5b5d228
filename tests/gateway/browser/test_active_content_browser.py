"""Active content in headless Chromium: a worker's SVG whose script loads a second artifact as
``<script src>`` and posts a task as the operator. Opened, clicked or loaded as a script from the
dashboard's own page, nothing runs and no task is created; a PNG still shows inline."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from platforms.base import Destination
from tests.gateway.browser.conftest import DESKTOP, Site, artifacts_dir, eventually

CHAT = Destination("web", "dashboard", "main")
# The second stage: creates a task through the API and marks the page it ran in.
PAYLOAD = (b'window.__pwned = true; document.title = "pwned";'
           b'fetch("/api/tasks", {method: "POST", headers: {"Content-Type": "application/json"},'
           b'body: JSON.stringify({title: "pwned"})});')


def evil_svg(payload_url: str) -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
            f'<rect width="200" height="100" fill="red"/>'
            f'<script href="{payload_url}"/>'
            f'<script>{PAYLOAD.decode()}</script></svg>').encode()


def png() -> bytes:
    """A decodable 1×1 PNG (a header alone would not load in <img>)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


async def no_pwned_task(site: Site) -> None:
    titles = [c.title for c in await site.board.list_cards(include_archived=True)]
    assert "pwned" not in titles, titles


async def strict_page(site: Site) -> Any:
    """A tab with the page's real policy in force (no ``bypass_csp``), as a person has it."""
    context = await site.browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    site.pages.append(page)
    await page.goto(site.url + "/")
    await page.wait_for_selector(".column", state="attached")
    return page


async def test_an_svg_artifact_and_its_payload_never_run_in_the_dashboard(
    site: Site, tmp_path: Path,
) -> None:
    board = site.board
    task = (await board.create_task("Chart with a surprise")).task
    claim = await board.claim(task.id)
    workspace = board.workspaces_dir / str(task.id)
    workspace.mkdir(parents=True, exist_ok=True)
    payload_url = f"/api/tasks/{task.id}/artifacts/1/payload.js"
    (workspace / "chart.svg").write_bytes(evil_svg(payload_url))
    (workspace / "payload.js").write_bytes(PAYLOAD)
    (workspace / "real.png").write_bytes(png())
    await board.complete(task.id, lease=claim.lease, artifacts=[
        str(workspace / "chart.svg"), str(workspace / "payload.js"), str(workspace / "real.png")])
    svg_url = f"/api/tasks/{task.id}/artifacts/0/chart.svg"

    page = await strict_page(site)
    await page.locator(".card", has_text="Chart with a surprise").first.click()
    await page.locator("#drawer h1", has_text="Chart with a surprise").wait_for()
    # The SVG is offered as a link, never put in an <img>; the PNG is previewed.
    files = page.locator(".drawer .files")
    assert await files.locator("img[src*='chart.svg']").count() == 0
    image = files.locator("img[src*='real.png']")
    await eventually(lambda: image.evaluate("img => img.complete && img.naturalWidth"),
                     "the PNG preview to load")
    # Clicking the chart as a person would: a download, not a page on the dashboard's origin.
    async with page.expect_download() as clicked:
        await files.locator("a", has_text="chart.svg").click()
    assert (await clicked.value).suggested_filename == "chart.svg"

    # Opening the SVG's own address (what the old inline response rendered): still a download.
    from playwright.async_api import Error as PlaywrightError

    tab = await page.context.new_page()
    site.pages.append(tab)
    async with tab.expect_download() as opened:
        try:
            await tab.goto(site.url + svg_url)
        except PlaywrightError as exc:  # Chromium reports a navigation that became a download
            assert "download" in str(exc).lower(), exc
    assert (await opened.value).suggested_filename == "chart.svg"

    # The PNG opened on its own (the preview is a link) still shows, sandbox and all.
    await tab.goto(site.url + f"/api/tasks/{task.id}/artifacts/2/real.png")
    shown = tab.locator("img")
    await eventually(lambda: shown.evaluate("img => img.complete && img.naturalWidth"),
                     "the PNG opened in its own tab to show")

    # The second stage loaded as a script by a page of the dashboard's origin is refused
    # (served as a download of plain bytes with nosniff), so it never runs.
    verdict = await page.evaluate("""url => new Promise(done => {
        const s = document.createElement('script');
        s.src = url; s.onload = () => done('ran'); s.onerror = () => done('refused');
        document.head.append(s);
    })""", payload_url)
    assert verdict == "refused"
    assert await page.evaluate("() => window.__pwned === undefined")

    headers = (await page.request.get(site.url + svg_url)).headers
    assert headers["content-disposition"].startswith("attachment")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("sandbox")
    await no_pwned_task(site)


async def test_an_svg_in_the_web_chat_is_a_download_chip_and_a_png_shows_inline(
    site: Site, tmp_path: Path,
) -> None:
    svg = tmp_path / "evil.svg"
    svg.write_bytes(evil_svg("/nowhere.js"))
    picture = tmp_path / "chart.png"
    picture.write_bytes(png())
    receipts = await site.web.send_multiple_images(CHAT, [svg, picture], caption="two pictures")
    assert all(r.ok for r in receipts)
    page = await strict_page(site)
    await page.goto(site.url + "/?chat=1")
    bubble = page.locator(".bubble.bot", has_text="two pictures")
    await bubble.wait_for()
    image = bubble.locator("img[src*='chart.png']")
    await eventually(lambda: image.evaluate("img => img.complete && img.naturalWidth"),
                     "the chat PNG to load")
    assert await bubble.locator("img").count() == 1  # the SVG is not shown as a picture
    await page.screenshot(path=str(artifacts_dir() / "chat-svg-download-chip.png"))
    chip = bubble.locator(".doc-chip", has_text="evil.svg")
    async with page.expect_download() as clicked:
        await chip.click()
    assert (await clicked.value).suggested_filename == "evil.svg"
    assert await page.evaluate("() => window.__pwned === undefined")
    await no_pwned_task(site)


async def test_bidi_overrides_and_controls_in_a_title_are_dropped_on_the_page(site: Site) -> None:
    await site.board.create_task("invoice\u202efdp.exe\u2066\x07 done")
    page = await strict_page(site)
    card = page.locator(".card", has_text="invoice").first
    await card.wait_for()
    text = await card.evaluate("el => el.textContent")
    assert "invoicefdp.exe done" in text
    assert not any(ch in text for ch in "\u202e\u2066\x07"), ascii(text)
