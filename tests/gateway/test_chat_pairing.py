"""Pairing codes (``dm_policy: pairing``) through the real Telegram SDK against the fake Bot API:
codes for strangers in one-to-one chats, at most three waiting, the CLI's approve / deny / list
(config.yaml rewritten with its comments), the approved user served at once, expiry on a
controllable clock, and ``allowlist`` unchanged."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from gateway.chat import REFUSAL
from gateway.chat.pairing import ALPHABET, CODE_LENGTH, Full, PairingStore, Pending
from gateway.cli.root import cli
from gateway.config import load_config
from platforms.base import PlatformAdapter
from platforms.registry import create_adapter
from tests.fakes.telegram_server import TOKEN, TelegramServer, visible_text
from tests.gateway.test_daemon import running
from tests.gateway.test_dashboard_api import ORIGIN, make_app
from tests.kanban.workers.harness import wait_until

WITHIN = 60.0
SECRET_TEXT = "my bank pin is 4711"
CODE = re.compile(rf"pairing code is ([{ALPHABET}]{{{CODE_LENGTH}}})")
CONFIG = """\
# my gateway
kanban: {dispatch_in_gateway: false, auto_decompose: false}
platforms:
  telegram:
    dm_policy: pairing   # strangers get a code
    # the team
    allowed_users: ['42']
"""


@pytest.fixture
async def tg(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TelegramServer]:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    async with TelegramServer() as server:
        yield server


def adapter_of(tg: TelegramServer) -> PlatformAdapter:
    return create_adapter("telegram", token=TOKEN, allowed_users=["42"], base_url=tg.api_base)


def say(tg: TelegramServer, user_id: int, text: str, *, group: bool = False) -> None:
    tg.push_message(chat_id=-100 if group else user_id, text=text, user_id=user_id,
                    username=f"user{user_id}", chat_type="supergroup" if group else "private")


def texts(tg: TelegramServer, chat: int) -> list[str]:
    return [visible_text(str(r.params["text"])) for r in tg.calls("sendMessage")
            if r.params.get("chat_id") == str(chat)]


async def nth_text(tg: TelegramServer, chat: int, n: int) -> str:
    async def probe() -> str | None:
        got = texts(tg, chat)
        return got[n - 1] if len(got) >= n else None

    return await wait_until(probe, within=WITHIN, what=f"answer {n} in chat {chat}")


def code_in(text: str) -> str:
    match = CODE.search(text)
    assert match, text
    return match.group(1)


def rb(home: Path, *args: str) -> tuple[int, str]:
    """(exit code, stdout — or the one-line error the entry point prints, when it failed)."""
    result = CliRunner().invoke(cli, ["--home", str(home), "pairing", *args])
    if result.exit_code == 1 and result.exception is not None:
        assert result.stdout == ""
        return 1, f"{result.exception}\n"
    return result.exit_code, result.output


async def test_strangers_get_codes_and_an_approved_one_is_served_at_once(
        tg: TelegramServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    home = tmp_path / "home"
    async with running(home, CONFIG, {"telegram": lambda: adapter_of(tg)}) as daemon:
        async def connected() -> bool:
            status = await daemon.status()
            return bool(status["adapters"]["telegram"]["state"] == "connected")

        await wait_until(connected, within=WITHIN, what="adapter connected")
        say(tg, 7, SECRET_TEXT)
        first = code_in(await nth_text(tg, 7, 1))
        say(tg, 7, "hello again?")
        assert code_in(await nth_text(tg, 7, 2)) == first  # the same pending code
        say(tg, 8, "hi")
        eight = code_in(await nth_text(tg, 8, 1))
        say(tg, 9, "hi")  # after 8's code: strangers' requests are handled concurrently
        nine = code_in(await nth_text(tg, 9, 1))
        assert len({first, eight, nine}) == 3
        say(tg, 10, "me too")
        assert "try again later" in await nth_text(tg, 10, 1)
        say(tg, 10, "please?")  # told once an hour at most: this one gets no answer

        async def asked_twice() -> bool:
            return caplog.text.count("no pairing code for user 10") == 2

        await wait_until(asked_twice, within=WITHIN, what="the second request of user 10")
        # In a group a stranger gets no code: the allow-list's refusal, as before.
        say(tg, 11, "/status", group=True)
        refusal = await nth_text(tg, -100, 1)
        assert refusal == REFUSAL.format(user_id="11", platform="telegram")

        code, listed = rb(home, "list", "--json")
        assert code == 0
        pending = json.loads(listed)["pending"]
        assert [(p["code"], p["user_id"], p["user_name"]) for p in pending] == [
            (first, "7", "user7"), (eight, "8", "user8"), (nine, "9", "user9")]
        assert all(p["expires_in_seconds"] > 3500 for p in pending)

        code, out = rb(home, "list")
        assert code == 0 and out.splitlines()[0].split() == [
            "PLATFORM", "CODE", "USER", "ID", "NAME", "AGE", "EXPIRES"]
        assert out.splitlines()[1].split() == ["telegram", first, "7", "user7", "0m", "in", "59m"]
        code, out = rb(home, "approve", first.lower())
        assert code == 0, out
        assert "approved telegram user 7 (user7) as member" in out
        text = (home / "config.yaml").read_text(encoding="utf-8")
        assert "# my gateway" in text and "# strangers get a code" in text and "# the team" in text
        assert re.search(r"allowed_users: \['42', '7'\]", text), text

        code, out = rb(home, "deny", eight, "--json")
        assert code == 0 and json.loads(out)["denied"]["user_id"] == "8"
        code, out = rb(home, "approve", eight)
        assert code == 1 and out.count("\n") == 1 and "no pending pairing request" in out

        # The approved user is served from their next message, without a restart.
        say(tg, 7, "/status")
        assert "your role: member" in await nth_text(tg, 7, 3)
        say(tg, 7, "/status", group=True)  # and in groups
        assert "your role: member" in await nth_text(tg, -100, 2)
        # A slot is free again: the fourth stranger now gets a code.
        say(tg, 10, "now?")
        code_in(await nth_text(tg, 10, 2))
        assert len(texts(tg, 10)) == 2  # "please?" was not answered
        code, out = rb(home, "approve", nine, "--admin")
        assert code == 0 and "as admin" in out
        say(tg, 9, "/status")
        assert "your role: admin" in await nth_text(tg, 9, 2)

        # Taken off the list again (by hand): no longer served, a new code instead.
        path = home / "config.yaml"
        path.write_text(path.read_text().replace("['42', '7']", "['42']"))
        os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new mtime
        say(tg, 7, "/status")
        assert code_in(await nth_text(tg, 7, 4)) != first

    assert re.search(r"admins:\s*\n?\s*- '9'|admins: \['9'\]", (home / "config.yaml").read_text())
    audit = [json.loads(line) for line in
             (home / "run" / "pairing-audit.log").read_text().splitlines()]
    assert [(a["event"], a["user_id"]) for a in audit] == [
        ("issued", "7"), ("issued", "8"), ("issued", "9"), ("approved", "7"),
        ("denied", "8"), ("issued", "10"), ("approved", "9"), ("issued", "7")]
    for where in ((home / "run" / "pairing-audit.log").read_text(),
                  (home / "run" / "pairing.json").read_text(), caplog.text):
        assert SECRET_TEXT not in where and "hello again" not in where
    assert "pairing: issued telegram user 7" in caplog.text
    assert (home / "run" / "pairing.json").stat().st_mode & 0o777 == 0o600


async def test_allowlist_mode_refuses_strangers_as_before(
        tg: TelegramServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = CONFIG.replace("dm_policy: pairing", "dm_policy: allowlist")
    async with running(home, config, {"telegram": lambda: adapter_of(tg)}):
        say(tg, 7, "let me in")
        assert await nth_text(tg, 7, 1) == REFUSAL.format(user_id="7", platform="telegram")
    assert not (home / "run" / "pairing.json").exists()


def test_codes_expire_after_an_hour_on_the_stores_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = PairingStore(tmp_path, clock=lambda: now[0])
    issued = store.request("telegram", "7", "eve")
    assert isinstance(issued, Pending) and len(issued.code) == CODE_LENGTH
    assert set(issued.code) <= set(ALPHABET)
    for user in ("8", "9"):
        store.request("telegram", user, "")
    assert isinstance(store.request("telegram", "10", ""), Full)
    assert isinstance(store.request("slack", "10", ""), Pending)  # per platform
    now[0] += 3599
    assert store.request("telegram", "7", "eve") == issued
    now[0] += 2
    assert store.pending() == []  # all four were issued an hour and a second ago
    again = store.request("telegram", "7", "eve")
    assert isinstance(again, Pending) and again.code != issued.code
    events = [json.loads(line)["event"] for line in
              (tmp_path / "run" / "pairing-audit.log").read_text().splitlines()]
    assert events.count("expired") == 4 and events[-1] == "issued"


def test_an_expired_code_cannot_be_approved_through_the_cli(tmp_path: Path) -> None:
    past = PairingStore(tmp_path, clock=lambda: 1000.0)  # issued long ago
    issued = past.request("telegram", "7", "eve")
    assert isinstance(issued, Pending)
    (tmp_path / "config.yaml").write_text("platforms:\n  telegram: {dm_policy: pairing}\n")
    code, out = rb(tmp_path, "approve", issued.code)
    assert code == 1 and "no pending pairing request" in out
    assert "'7'" not in (tmp_path / "config.yaml").read_text()
    code, out = rb(tmp_path, "list")
    assert code == 0 and out == "no pairing requests waiting\n"


async def test_the_dashboard_lists_approves_and_denies(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = PairingStore(home)
    eve, mallory = store.request("telegram", "7", "eve"), store.request("telegram", "8", "")
    assert isinstance(eve, Pending) and isinstance(mallory, Pending)
    app, _ = make_app(home, "platforms:\n  telegram:\n    dm_policy: pairing  # codes\n")
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN,
            headers={"Origin": ORIGIN}) as client:
        listed = (await client.get("/api/pairing")).json()["pending"]
        assert [(p["code"], p["user_id"]) for p in listed] == [(eve.code, "7"),
                                                              (mallory.code, "8")]
        bad = await client.post(f"/api/pairing/{eve.code}/approve", json={"admin": "yes"})
        assert bad.status_code == 400 and "admin must be true or false" in bad.json()["error"]
        done = await client.post(f"/api/pairing/{eve.code}/approve", json={"admin": True})
        assert done.status_code == 200, done.text
        assert done.json()["config_key"] == "platforms.telegram.admins"
        again = await client.post(f"/api/pairing/{eve.code}/approve")
        assert again.status_code == 404 and "no pending pairing request" in again.json()["error"]
        denied = await client.post(f"/api/pairing/{mallory.code}/deny")
        assert denied.status_code == 200 and denied.json()["denied"]["user_id"] == "8"
        assert (await client.get("/api/pairing")).json()["pending"] == []
    text = (home / "config.yaml").read_text(encoding="utf-8")
    assert "# codes" in text
    assert load_config(None, {}, home=home).platforms["telegram"].admins == ("7",)
