"""Webhooks end to end: a gateway configured for Telegram's webhook mode or Slack's Events API,
its real web server, the real SDKs, and the loopback fakes posting to it as the platforms do —
including forged, stale and replayed requests, which are refused and run nothing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from gateway.config import Config, ConfigError, load_config
from gateway.daemon import Daemon
from gateway.notifier import NotifierSettings
from tests.fakes.common import free_port
from tests.fakes.slack_server import SIGNING_SECRET, SlackServer, sign
from tests.fakes.telegram_server import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_server import TelegramServer
from tests.gateway.test_daemon import FAST_BACKOFF
from tests.kanban.workers.harness import wait_until

WEBHOOK_SECRET = "s3cret_Token-1"
DASHBOARD_TOKEN = "dash-token-123"


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@asynccontextmanager
async def gateway(home: Path, config_text: str,
                  environ: dict[str, str]) -> AsyncIterator[tuple[Daemon, str]]:
    """A daemon built from ``config_text`` alone (its platforms, its dashboard), running; and
    the base URL of its web server."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(config_text, encoding="utf-8")
    config = load_config(None, environ, home=home)
    daemon = Daemon(config, environ=environ, backoff=FAST_BACKOFF,
                    notifier_settings=NotifierSettings(backoff_base=0.01, tick_seconds=0.2),
                    user_home=home / "user")
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(daemon.run, stop)
        with anyio.fail_after(15):
            await daemon.ready.wait()
            assert daemon.dashboard is not None
            await daemon.dashboard.listening.wait()
        try:
            yield daemon, (daemon.dashboard.url or "").rstrip("/")
        finally:
            stop.set()
    await daemon.dispatcher.aclose(terminate=True)


async def handled(daemon: Daemon, count: int) -> bool:
    return daemon.router.handled == count


# ---- Telegram --------------------------------------------------------------------------------

async def test_telegram_webhook_mode_sets_the_webhook_and_refuses_forged_and_replayed_updates(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with TelegramServer() as tg:
        config = f"""
dashboard: {{port: {port}, token_env: DASH_TOKEN}}
platforms:
  web: {{enabled: false}}
  telegram:
    enabled: true
    base_url: {tg.api_base}
    allowed_users: ["42"]
    mode: webhook
    webhook_url: http://127.0.0.1:{port}/webhooks/telegram
    webhook_secret_env: TG_HOOK_SECRET
"""
        environ = {"TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TG_HOOK_SECRET": WEBHOOK_SECRET,
                   "DASH_TOKEN": DASHBOARD_TOKEN, "PTB_TIMEDELTA": "1"}
        async with gateway(tmp_path / "home", config, environ) as (daemon, base):
            await tg.wait_until(lambda: tg.calls("setWebhook"), limit=15)
            (set_call,) = tg.calls("setWebhook")
            assert set_call.params["url"] == f"http://127.0.0.1:{port}/webhooks/telegram"
            assert set_call.params["secret_token"] == WEBHOOK_SECRET
            assert json.loads(set_call.params["allowed_updates"]) == ["message"]
            assert not tg.calls("getUpdates")  # no polling beside the webhook

            async def connected() -> bool:
                return bool(daemon.runners["telegram"].state.state == "connected")
            await wait_until(connected, what="telegram connected")

            tg.push_message(chat_id=77, text="/kanban create Hooked on webhooks")
            (first,) = await tg.deliver()
            assert first.status == 200  # no dashboard token needed: the secret is the auth
            sent = await tg.wait_until(lambda: tg.calls("sendMessage"), limit=30)
            assert "Created #1 Hooked on webhooks" in sent[0].params["text"]
            assert "post the result here" in sent[0].params["text"]
            reply_to = json.loads(sent[0].params["reply_parameters"])["message_id"]
            assert reply_to == first.update["message"]["message_id"]

            # Forged: a wrong secret, or none; then the real update sent again.
            tg.push_message(chat_id=77, text="/kanban create Forged")
            forged = tg.updates.get_nowait()
            assert await tg.post_update(forged, secret="guess") == 401
            assert await tg.post_update(forged, secret="") == 401
            assert await tg.post_update(first.update) == 200  # a redelivery: taken once
            tg.push_message(chat_id=77, text="/kanban list")
            assert [d.status for d in await tg.deliver()] == [200]
            listed = await tg.wait_until(
                lambda: [c for c in tg.calls("sendMessage") if "#1" in c.params["text"]
                         and "Created" not in c.params["text"]], limit=30)
            assert "Forged" not in listed[0].params["text"]
            board = await daemon.boards.open("default")
            assert [t.title for t in await board.list_tasks()] == ["Hooked on webhooks"]
            await wait_until(lambda: handled(daemon, 2), what="two messages handled")

            async with httpx.AsyncClient(base_url=base) as client:
                bad = await client.post("/webhooks/telegram", content=b"not json",
                                        headers={"X-Telegram-Bot-Api-Secret-Token":
                                                 WEBHOOK_SECRET})
                assert bad.status_code == 400
                assert (await client.post("/webhooks/slack", content=b"{}")).status_code == 404
                # The dashboard's own pages still want its token.
                assert (await client.get("/api/session")).status_code == 401
                assert (await client.post("/webhooks/telegram/../../api/session",
                                          content=b"{}")).status_code in (401, 404)


# ---- Slack -----------------------------------------------------------------------------------

def message_event(text: str, user: str = "U1", ts: str | None = None) -> dict[str, object]:
    return {"type": "message", "channel": "C1", "user": user, "text": text,
            "ts": ts or f"{time.time():.6f}", "channel_type": "channel"}


async def test_slack_events_api_verifies_signatures_and_refuses_forged_stale_replayed(
    tmp_path: Path,
) -> None:
    async with SlackServer() as slack:
        config = f"""
platforms:
  web: {{enabled: false}}
  slack:
    enabled: true
    base_url: {slack.api_base}
    allowed_users: ["U1"]
    mode: events
    signing_secret_env: SLACK_SIGNING
"""
        # No app-level token: the Events API does not use Socket Mode.
        environ = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING": SIGNING_SECRET}
        async with gateway(tmp_path / "home", config, environ) as (daemon, base):
            url = f"{base}/webhooks/slack"

            async def connected() -> bool:
                return bool(daemon.runners["slack"].state.state == "connected")
            await wait_until(connected, what="slack connected")
            assert not slack.calls("apps.connections.open")

            code = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
            challenge = json.dumps({"type": "url_verification", "token": "t",
                                    "challenge": code}).encode()
            verified = await slack.post_event(url, challenge)
            assert verified.status == 200
            assert json.loads(verified.answer) == {"challenge": code}

            body = slack.event_body(message_event("/kanban create From events"), "Ev1")
            real = await slack.post_event(url, body)
            assert real.status == 200
            posted = await slack.wait_until(lambda: slack.calls("chat.postMessage"), limit=30)
            assert "Created #1 From events" in posted[0].params["text"]

            forged_body = slack.event_body(message_event("/kanban create Forged"), "Ev2")
            now = int(time.time())
            refused = [
                await slack.post_event(url, forged_body, secret="not-the-secret"),
                await slack.post_event(url, forged_body, signature="v0=" + "0" * 64),
                await slack.post_event(url, forged_body, timestamp=now - 400),  # stale
                await slack.post_event(url, forged_body, timestamp=now + 400),
                await slack.resend(url, forged_body, {"Content-Type": "application/json"}),
                await slack.resend(url, real.body, real.headers),  # replayed as captured
            ]
            assert [r.status for r in refused] == [401] * 6
            assert [r.answer for r in refused] == [
                "wrong signature", "wrong signature", "timestamp outside the five-minute window",
                "timestamp outside the five-minute window", "not signed", "replayed"]
            # Slack's own retry of the first event: newly signed, same event id — taken once.
            # (Slack retries seconds later, so under a newer timestamp.)
            again = await slack.post_event(url, body, retry=1, timestamp=now + 3)
            assert again.status == 200
            # A body changed after signing fails the signature.
            tampered = real.body.replace(b"From events", b"From evil!")
            stamp = int(real.headers["X-Slack-Request-Timestamp"])
            assert (await slack.resend(url, tampered, {
                **real.headers, "X-Slack-Signature": sign(real.body, stamp)})).status == 401

            last = slack.event_body(message_event("/kanban list"), "Ev3")
            assert (await slack.post_event(url, last)).status == 200
            listed = await slack.wait_until(
                lambda: [c for c in slack.calls("chat.postMessage")
                         if "Created" not in c.params["text"]], limit=30)
            assert "From events" in listed[0].params["text"]
            assert "Forged" not in listed[0].params["text"]
            board = await daemon.boards.open("default")
            assert [t.title for t in await board.list_tasks()] == ["From events"]
            await wait_until(lambda: handled(daemon, 2), what="two messages handled")


# ---- config ----------------------------------------------------------------------------------

def test_webhook_modes_need_their_settings_and_read_secrets_only_then(tmp_path: Path) -> None:
    def load(text: str, env: dict[str, str]) -> Config:
        (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
        return load_config(None, env, home=tmp_path)

    token = {"TELEGRAM_BOT_TOKEN": "1:x"}
    with pytest.raises(ConfigError, match=re.escape(
            "set platforms.telegram.webhook_url or dashboard.public_url")):
        load("platforms: {telegram: {enabled: true, mode: webhook}}\n", token)
    with pytest.raises(ConfigError, match=re.escape("dashboard.enabled is false")):
        load("dashboard: {enabled: false}\n"
             "platforms: {slack: {enabled: true, mode: events}}\n", {})
    with pytest.raises(ConfigError, match="mode"):
        load("platforms: {telegram: {enabled: true, mode: hook}}\n", token)
    polling = load("platforms: {telegram: {enabled: true}}\n", token)
    assert polling.platforms["telegram"].missing_secrets() == []
    hooked = load("dashboard: {public_url: 'https://relay.example.com/'}\n"
                  "platforms: {telegram: {enabled: true, mode: webhook}}\n", token)
    assert hooked.platforms["telegram"].missing_secrets() == [
        "TELEGRAM_WEBHOOK_SECRET"]
    events = load("platforms: {slack: {enabled: true, mode: events}}\n",
                  {"SLACK_BOT_TOKEN": "xoxb"})
    assert events.platforms["slack"].missing_secrets() == [
        "SLACK_SIGNING_SECRET"]
    socket = load("platforms: {slack: {enabled: true}}\n", {"SLACK_BOT_TOKEN": "xoxb"})
    assert socket.platforms["slack"].missing_secrets() == [
        "SLACK_APP_TOKEN"]


def test_the_webhook_url_defaults_to_the_public_url() -> None:
    from gateway.config import PlatformConfig
    from gateway.daemon.adapters import adapter_options

    platform = PlatformConfig("telegram", enabled=True, options={"mode": "webhook"},
                              secrets={"token": "1:x", "webhook_secret": "abc"})
    options = adapter_options(platform, "https://relay.example.com/")
    assert options["webhook_url"] == "https://relay.example.com/webhooks/telegram"
    assert options["webhook_secret"] == "abc" and options["mode"] == "webhook"
