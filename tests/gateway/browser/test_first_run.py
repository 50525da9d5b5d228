"""The README's first run, for real: `relayboard gateway run` on a fresh home, the chart demo
profile made with the CLI, and in headless Chromium the web chat's
`/kanban create Chart the sales --assignee charts` → the reply, then the completion with the
chart inline in the chat. Screenshots go to the artifacts folder."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.common import free_port
from tests.gateway.browser.conftest import DESKTOP, artifacts_dir, eventually
from tests.gateway.conftest import clean_environ

WITHIN = 60.0


@pytest.fixture
def gateway(tmp_path: Path, browser: Any) -> Iterator[tuple[str, Path, Path]]:
    # Depends on `browser` so that without Chromium the test skips before a gateway starts.
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    (home / "config.yaml").write_text(f"dashboard: {{port: {port}}}\n", encoding="utf-8")
    log = tmp_path / "gateway.log"
    env = clean_environ({"HOME": str(tmp_path / "user")})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--home", str(home), "gateway", "run"],
            env=env, stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}", home, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the gateway did not stop on SIGTERM") from None
        assert code == 0, log.read_text(errors="replace")


async def test_first_run_chart_in_the_web_chat(gateway: tuple[str, Path, Path],
                                              browser: Any) -> None:
    url, home, log = gateway

    async def serving() -> bool:
        text = log.read_text(encoding="utf-8", errors="replace")
        return f"dashboard and web chat on {url}/" in text and "gateway running" in text

    await eventually(serving, "the gateway to serve the dashboard", within=WITHIN)
    made = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway", "--home", str(home), "profile", "create", "charts",
         "--example", "chart"], env=clean_environ(), capture_output=True, text=True,
        timeout=WITHIN, check=False)
    assert made.returncode == 0, made.stderr

    context = await browser.new_context(viewport=DESKTOP, bypass_csp=True)
    try:
        page = await context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url + "/?chat=1")
        box = page.locator("#chat-input")
        await box.wait_for()
        await box.fill("/kanban create Chart the sales --assignee charts")
        await box.press("Enter")
        reply = page.locator(".bubble.bot", has_text="Created #1 Chart the sales")
        await reply.wait_for()
        out = artifacts_dir()
        await page.screenshot(path=str(out / "first-run-reply.png"))
        image = page.locator(".bubble.bot img")
        await image.wait_for(timeout=WITHIN * 1000)
        await eventually(lambda: image.evaluate("img => img.complete && img.naturalWidth"),
                         "the chart to load")
        await page.locator(".bubble.bot", has_text="done").first.wait_for()
        chat = await page.locator("#chat-log").inner_text()
        assert re.search(r"done · #1 Chart the sales", chat), chat
        assert "data.csv" in chat
        await page.screenshot(path=str(out / "first-run-chart.png"))
        assert errors == []
    finally:
        await context.close()
    # The completion reached the chat because the create subscribed the chat's thread.
    assert "Traceback" not in log.read_text(errors="replace")
    assert os.path.isdir(home / "web-chat")
