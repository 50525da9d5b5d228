"""Pairing requests in the Orchestration panel, in headless Chromium: approve one, deny one."""

from __future__ import annotations

import pytest

from gateway.chat.pairing import PairingStore, Pending
from gateway.config import load_config
from tests.gateway.browser.conftest import Site


@pytest.fixture
def config_text() -> str:
    return "platforms:\n  telegram:\n    dm_policy: pairing  # codes for strangers\n"


async def test_approve_and_deny_from_the_orchestration_panel(site: Site) -> None:
    store = PairingStore(site.home)
    eve, bob = store.request("telegram", "7", "eve"), store.request("telegram", "8", "bob")
    assert isinstance(eve, Pending) and isinstance(bob, Pending)
    page = await site.page()
    await page.locator("#orch-open").click()
    rows = page.locator("#pairing-list .pairing")
    await rows.nth(1).wait_for(state="visible", timeout=15_000)
    assert await rows.count() == 2
    eve_row = page.locator(f'#pairing-list .pairing[data-code="{eve.code}"]')
    assert "eve" in await eve_row.inner_text()
    await eve_row.get_by_role("button", name="Approve", exact=True).click()
    await eve_row.wait_for(state="detached", timeout=15_000)
    bob_row = page.locator(f'#pairing-list .pairing[data-code="{bob.code}"]')
    await bob_row.get_by_role("button", name="Deny").click()
    await page.get_by_text("No requests waiting.").wait_for(timeout=15_000)
    assert store.pending() == []
    assert "# codes for strangers" in (site.home / "config.yaml").read_text(encoding="utf-8")
    assert load_config(None, {}, home=site.home).platforms["telegram"].allowed_users == ("7",)
