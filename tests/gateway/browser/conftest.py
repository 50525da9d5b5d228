"""Headless Chromium (Debian's ``chromium``, driven by Playwright's Python package) against the
real dashboard served on 127.0.0.1, all on the test's event loop.

Screenshots go to ``$RELAYBOARD_ARTIFACTS`` or ``tests/artifacts/`` (git-ignored). Without
``/usr/bin/chromium`` these tests skip locally and fail in CI, where ``.ci/run`` installs it. Every
fixture that starts something (a gateway, a dashboard) depends on ``browser``, so the skip comes
before anything starts (``tests/gateway/test_browser_skip.py`` checks it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.config import load_config
from gateway.dashboard import create_app
from kanban import Board
from kanban.agents.profiles import Profiles
from platforms.base import InboundMessage
from platforms.web import WebAdapter
from tests.gateway.browser.harness import serve

# RELAYBOARD_TEST_CHROMIUM points elsewhere (a test runs this folder as if Chromium were missing).
CHROMIUM = Path(os.environ.get("RELAYBOARD_TEST_CHROMIUM") or "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("RELAYBOARD_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Site:
    """A running dashboard with its home, board, web chat and a browser to look at it."""

    home: Path
    url: str
    board: Board
    web: WebAdapter
    inbox: asyncio.Queue[InboundMessage]
    browser: Any
    app: Any
    pages: list[Any] = field(default_factory=list)

    async def page(self, path: str = "/", *, viewport: dict[str, int] | None = None,
                   scheme: str = "light") -> Any:
        # bypass_csp lets Playwright's wait_for_function evaluate its predicates; the page's
        # own policy (no eval, nothing from elsewhere) is checked by the API tests.
        context = await self.browser.new_context(viewport=viewport or DESKTOP,
                                                 color_scheme=scheme, bypass_csp=True)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        self.pages.append(page)
        await page.goto(self.url + path)
        await page.wait_for_selector(".column", state="attached")
        return page

    def profiles(self) -> Profiles:
        return Profiles(self.home)


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str,
                     within: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy (bounded)."""
    async with asyncio.timeout(within):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover - the timeout raises first


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing; .ci/run installs it")
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
def config_text() -> str:
    return ""


@pytest.fixture
async def site(tmp_path: Path, browser: Any, config_text: str) -> AsyncIterator[Site]:
    home = tmp_path / "home"
    home.mkdir()
    if config_text:
        (home / "config.yaml").write_text(config_text, encoding="utf-8")
    config = load_config(None, {}, home=home)
    web = WebAdapter(history_dir=home / "web-chat")
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize=50)
    await web.start(inbox)
    app = create_app(home, config, web_adapter=web, poll_seconds=0.1)
    async with serve(app) as served:
        board = await app.state.dashboard.boards.open("default")
        site = Site(home, served.url, board, web, inbox, browser, app)
        try:
            yield site
        finally:
            for page in site.pages:
                await page.context.close()
