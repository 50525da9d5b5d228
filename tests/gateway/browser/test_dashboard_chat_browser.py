"""The web chat panel in headless Chromium: attaching files and the typing indicator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from platforms.base import Destination
from tests.gateway.browser.conftest import PHONE, Site, artifacts_dir, eventually

CHAT = Destination("web", "dashboard", "main")
SALES = b"month,sales\nJan,120\nFeb,135\nMar,128\n"


async def open_chat(site: Site, **page_options: Any) -> Any:
    page = await site.page("/?chat=1", **page_options)
    await page.locator("#chat-input").wait_for()
    return page


async def stream_connected(site: Site, page: Any) -> None:
    """Typing events are not replayed, so repeat them (as the router does every few seconds)
    until the page's stream has shown one."""
    indicator = page.locator("#chat-typing.on")

    async def shown() -> bool:
        await site.web.typing(CHAT)
        return await indicator.count() == 1

    await eventually(shown, "the typing indicator to appear")


async def test_csv_attached_with_the_keyboard_reaches_the_inbox(site: Site,
                                                               tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_bytes(SALES)
    page = await open_chat(site)
    # Listening for file choosers turns on their interception, which takes a round trip to the
    # browser; doing it here keeps that from racing the key press below.
    page.on("filechooser", lambda _chooser: None)
    # The attach button sits just before the message box in the tab order.
    await page.locator("#chat-input").focus()
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate("document.activeElement.id") == "chat-attach"
    assert await page.locator("#chat-attach").get_attribute("aria-label") == "Attach files"
    async with page.expect_file_chooser() as chooser:
        await page.keyboard.press("Enter")
    await (await chooser.value).set_files(str(csv))

    chip = page.locator("#chat-attachments .attachment", has_text="sales.csv")
    await page.locator("#chat-attachments .attachment:not(.uploading)").wait_for()
    assert "B" in await chip.inner_text()  # its size, once uploaded
    assert await page.evaluate("document.activeElement.id") == "chat-input"
    assert await chip.locator("button").get_attribute("aria-label") == "Remove sales.csv"
    await page.screenshot(path=str(artifacts_dir() / "chat-attach-pending.png"))

    await page.keyboard.type("/kanban create Chart the sales --assignee charts")
    await page.keyboard.press("Enter")
    async with asyncio.timeout(10):
        inbound = await site.inbox.get()
    assert inbound.text == "/kanban create Chart the sales --assignee charts"
    assert [(f.name, f.size) for f in inbound.files] == [("sales.csv", len(SALES))]
    # What the router does with it: the adapter fetches the upload into the thread's inbox.
    saved = await site.web.download(inbound.files[0], tmp_path / "inbox", 1_000_000)
    assert saved.parent == tmp_path / "inbox" and saved.read_bytes() == SALES

    sent = page.locator(".bubble.user", has_text="Chart the sales")
    await sent.wait_for()
    assert "sales.csv" in await sent.locator(".doc-chip").inner_text()
    assert await page.locator("#chat-attachments").is_hidden()  # the tray empties once sent
    await page.screenshot(path=str(artifacts_dir() / "chat-attach-sent.png"))
    assert page.errors == []


async def test_a_file_alone_is_a_message_and_a_refused_one_is_said(site: Site,
                                                                  tmp_path: Path) -> None:
    site.web.max_bytes = 64
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_bytes(SALES[:30])
    big.write_bytes(SALES * 4)
    page = await open_chat(site)
    await page.locator("#chat-file").set_input_files([str(big), str(small)])
    error = page.locator("#chat-error")
    await error.wait_for()
    assert "Not attached: big.csv" in await error.inner_text()
    await page.locator("#chat-attachments .attachment:not(.uploading)").wait_for()
    names = await page.locator("#chat-attachments .attachment .name").all_inner_texts()
    assert names == ["small.csv"]
    await page.locator("#chat-form button[type=submit]").click()
    async with asyncio.timeout(10):
        inbound = await site.inbox.get()
    assert (inbound.text, [f.name for f in inbound.files]) == ("", ["small.csv"])
    assert site.inbox.empty()
    assert page.errors == []


async def test_typing_shows_while_the_gateway_works_and_goes_with_the_reply(site: Site) -> None:
    page = await open_chat(site, viewport=PHONE)
    indicator = page.locator("#chat-typing")
    assert await indicator.get_attribute("role") == "status"
    assert (await indicator.inner_text()).strip() == ""
    await stream_connected(site, page)
    assert "Relayboard is typing…" in await indicator.inner_text()
    await page.screenshot(path=str(artifacts_dir() / "chat-typing-phone.png"))

    # A message from the user does not end it; the gateway's reply does, at once (well before
    # the indicator would fade on its own).
    await site.web.receive("/status")
    await page.locator(".bubble.user", has_text="/status").wait_for()
    assert await page.locator("#chat-typing.on").count() == 1
    assert (await site.web.send(CHAT, "Up 3m · web running")).ok
    await page.locator(".bubble.bot", has_text="Up 3m").wait_for()
    await page.locator("#chat-typing:not(.on)").wait_for(timeout=3000)
    assert (await indicator.inner_text()).strip() == ""
    assert page.errors == []


async def test_typing_fades_when_the_gateway_stops_repeating_it(site: Site) -> None:
    # A page of its own: the fake clock must be installed before the page's scripts run.
    context = await site.browser.new_context(bypass_csp=True)
    page = await context.new_page()
    site.pages.append(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.clock.install()
    await page.goto(site.url + "/?chat=1")
    await page.locator("#chat-input").wait_for()
    await stream_connected(site, page)
    await page.clock.run_for(3000)  # a repeat is due every 4 s; still shown before then
    assert await page.locator("#chat-typing.on").count() == 1
    await page.clock.run_for(4000)
    await page.locator("#chat-typing:not(.on)").wait_for(timeout=3000)
    assert errors == []
