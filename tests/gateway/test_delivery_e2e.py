"""``relayboard gateway run`` as a real process delivering a completion with its files through the
real slack-sdk and discord.py to the loopback fakes: a subscription made with ``kanban
subscribe``, a worker that writes a PNG, a PDF and a CSV and declares them (a key under a fake
``~/.ssh`` declared too is refused by the worker API first); the platform answers 429, then 500,
then accepts. (Telegram: test_daemon_process.)
And the built-in worker's CSV, made with ``run_shell``, reaching a subscribed thread."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.notifier import NotifierSettings
from kanban.agents.profiles import Profiles
from tests.fakes import discord_server, slack_server
from tests.fakes.discord_server import CHANNEL_ID, THREAD_ID, DiscordServer
from tests.fakes.llm_server import LLMServer
from tests.fakes.slack_server import SlackServer
from tests.gateway.conftest import clean_environ
from tests.gateway.test_daemon_process import WORKER, Gateway
from tests.gateway.test_delivery_attacks import ReadingAdapter
from tests.gateway.test_notifier import png_bytes
from tests.kanban.workers.harness import wait_until

WITHIN = 30.0
PDF = b"%PDF-1.4 quarterly numbers"
CSV = b"quarter,revenue\nQ1,10\n"
HEADLINE = ["✔ done · #1 Quarterly report · @reporter", "Revenue up 4 %"]
SLACK_THREAD = "1700000000.000100"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    home = tmp_path / "home"
    home.mkdir()
    user = tmp_path / "user"
    (user / ".ssh").mkdir(parents=True)
    (user / ".ssh" / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\n", encoding="utf-8")
    env = clean_environ({
        "HOME": str(user), "SLACK_BOT_TOKEN": slack_server.BOT_TOKEN,
        "SLACK_APP_TOKEN": slack_server.APP_TOKEN, "DISCORD_BOT_TOKEN": discord_server.TOKEN,
    })
    gw = Gateway(home, env, tmp_path / "gateway.log")
    try:
        yield gw
    finally:
        gw.kill()


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    async with SlackServer() as server:
        yield server


@pytest.fixture
async def discord() -> AsyncIterator[DiscordServer]:
    async with DiscordServer() as server:
        yield server


def setup(gw: Gateway, platform_yaml: str, subscribe: list[str], tmp_path: Path) -> None:
    (gw.home / "config.yaml").write_text(
        "kanban: {auto_decompose: false}\n"
        "dashboard: {enabled: false}\n"
        f"platforms:\n  {platform_yaml}\n", encoding="utf-8")
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    gw.cli("profile", "create", "reporter",
           "--command", f"{sys.executable} {script} {png_bytes().hex()}")
    Profiles(gw.home).update("reporter", read_paths=[str(script)])  # its sandbox runs the script
    gw.cli("kanban", "create", "Quarterly report", "--assignee", "reporter")
    gw.cli("kanban", "subscribe", "1", *subscribe)


def receipts_of(gw: Gateway) -> dict[str, str]:
    subs: list[dict[str, Any]] = json.loads(gw.cli("kanban", "subscriptions", "--json").stdout)
    [row] = subs[0]["deliveries"]
    assert row["state"] == "sent"
    return {r["step"]: r["status"] for r in row["receipts"]}


def assert_no_secret_in_log(gw: Gateway, *tokens: str) -> None:
    log = gw.text()
    assert "gateway running on" in log and "worker sandbox: " in log  # the level in force
    for token in tokens:
        assert token not in log


async def test_completion_with_files_reaches_a_slack_thread_through_429_and_500(
    gateway: Gateway, slack: SlackServer, tmp_path: Path
) -> None:
    setup(gateway, f"slack: {{enabled: true, base_url: '{slack.api_base}', allowed_users: []}}",
          ["--platform", "slack", "--chat", "C123", "--thread", SLACK_THREAD], tmp_path)
    slack.fail_next("chat.postMessage", 429, {"ok": False, "error": "ratelimited"},
                    headers={"Retry-After": "1"})
    slack.fail_next("chat.postMessage", 500, {"ok": False, "error": "internal_error"})
    await gateway.start()
    await slack.wait_until(lambda: len(slack.calls("files.completeUploadExternal")) >= 3, WITHIN)

    posts = slack.calls("chat.postMessage")
    assert len(posts) == 3  # 429, 500, then accepted: the same message each time
    texts = {str(p.params.get("text")) for p in posts}
    assert len(texts) == 1 and next(iter(texts)).splitlines() == HEADLINE
    assert all(p.params.get("thread_ts") == SLACK_THREAD for p in posts)
    assert all(p.params.get("channel") == "C123" for p in posts)
    names = {fid: name for fid, (name, _) in slack.uploads.items()}
    received = sorted((names[fid], data) for fid, data in slack.uploaded.items())
    assert received == [("chart.png", png_bytes()), ("data.csv", CSV), ("report.pdf", PDF)]
    completes = slack.calls("files.completeUploadExternal")
    assert all(c.params.get("channel_id") == "C123" and c.params.get("thread_ts") == SLACK_THREAD
               for c in completes)
    # The image went on its own (the album step), each document on its own.
    assert sorted(len(json.loads(c.params["files"])) for c in completes) == [1, 1, 1]
    assert not any(b"PRIVATE KEY" in data for data in slack.uploaded.values())
    assert receipts_of(gateway) == {
        "message": "delivered", "images": "delivered",
        "file:report.pdf": "delivered", "file:data.csv": "delivered"}
    assert await gateway.stop() == 0
    assert_no_secret_in_log(gateway, slack_server.BOT_TOKEN, slack_server.APP_TOKEN)


async def test_completion_with_files_reaches_a_discord_thread_through_429_and_500(
    gateway: Gateway, discord: DiscordServer, tmp_path: Path
) -> None:
    setup(gateway, (f"discord: {{enabled: true, base_url: '{discord.api_base}', "
                    f"gateway_url: '{discord.gateway_url}', allowed_users: []}}"),
          ["--platform", "discord", "--chat", CHANNEL_ID, "--thread", THREAD_ID], tmp_path)
    post = f"POST /channels/{THREAD_ID}/messages"
    discord.fail_next(post, 429, {"message": "You are being rate limited.", "retry_after": 0.2,
                                  "global": False}, headers={"Via": "1.1 google"})
    discord.fail_next(post, 500, {"message": "Internal Server Error", "code": 0})
    await gateway.start()

    def uploads() -> list[tuple[str, bytes]]:
        return [f for r in discord.calls(post) for f in r.files.values()]

    await discord.wait_until(lambda: len(uploads()) >= 3, WITHIN)
    texts = [str(r.params.get("content") or "") for r in discord.calls(post)]
    assert texts[0].splitlines() == HEADLINE  # the one refused by 429, then 500, then accepted
    assert [t for t in texts if t.startswith("✔ done")] == [texts[0]] * 3
    assert sorted(uploads()) == [("chart.png", png_bytes()), ("data.csv", CSV),
                                 ("report.pdf", PDF)]
    with_files = [r for r in discord.calls(post) if r.files]
    assert [sorted(n for n, _ in r.files.values()) for r in with_files] == [
        ["chart.png"], ["report.pdf"], ["data.csv"]]
    every_upload = [data for r in discord.requests for _, data in r.files.values()]
    assert not any(b"PRIVATE KEY" in data for data in every_upload)
    assert receipts_of(gateway) == {
        "message": "delivered", "images": "delivered",
        "file:report.pdf": "delivered", "file:data.csv": "delivered"}
    assert await gateway.stop() == 0
    assert_no_secret_in_log(gateway, discord_server.TOKEN)


async def test_the_builtin_workers_csv_reaches_a_subscribed_thread_through_the_gateway(
    tmp_path: Path
) -> None:
    """A profile without a command: the built-in worker, scripted by the fake LLM endpoint,
    writes a CSV with ``run_shell`` and completes with it; the in-process gateway dispatches it
    and delivers the CSV to the subscribed thread."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("kanban: {auto_decompose: false}\n"
                                      "dashboard: {enabled: false}\n", encoding="utf-8")
    adapter = ReadingAdapter()
    environ = {**clean_environ(), "RB_TEST_WORKER_KEY": "sk-worker-test"}
    async with LLMServer() as llm:
        Profiles(home).create("analyst", base_url=llm.base_url, model="fake-model",
                              api_key_env="RB_TEST_WORKER_KEY")
        llm.tool_call("run_shell", {"command": "printf 'city,n\\nOslo,3\\n' > report.csv"})
        llm.tool_call("kanban_complete", {"summary": "one table", "artifacts": ["report.csv"]})
        daemon = Daemon(load_config(None, environ, home=home), environ=environ,
                        adapters={"fake": lambda: adapter},
                        notifier_settings=NotifierSettings(backoff_base=0.01, tick_seconds=0.2),
                        user_home=tmp_path / "user")
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(daemon.run, stop)
            try:
                with anyio.fail_after(10):
                    await daemon.ready.wait()
                board = await daemon.boards.open("default")
                task = (await board.create_task("tabulate", body="write report.csv",
                                                assignee="analyst")).task
                await board.subscribe(task.id, platform="fake", chat="c1", thread="t9")
                await wait_until(lambda: _now(bool(adapter.received)), within=WITHIN,
                                 what="the CSV reached the thread")
            finally:
                stop.set()
        await daemon.dispatcher.aclose(terminate=True)
        assert adapter.texts == [
            "✔ done · #1 tabulate · @analyst\none table"]
        assert adapter.received == [("report.csv", b"city,n\nOslo,3\n")]
        assert all(c.dest.thread == "t9" for c in adapter.calls)
        assert len(llm.completions()) == 2


async def _now(value: bool) -> bool:
    return value
