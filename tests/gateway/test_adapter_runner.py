"""``AdapterRunner``: adapters' ``run`` owned by a task group, retried with the one backoff.

The real adapters run their SDKs against the loopback fakes in ``tests/fakes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import pytest

import platforms.discord  # noqa: F401  (imports discord.py with its audioop warning silenced)
from gateway.daemon.adapters import AdapterFactory, AdapterRunner
from kanban.backoff import Backoff
from platforms.base import AdapterState, InboundMessage, PlatformAdapter
from platforms.discord import DiscordAdapter
from platforms.errors import TransientError
from platforms.fake import FakeAdapter
from platforms.slack import SlackAdapter
from platforms.telegram import TelegramAdapter
from platforms.web import WebAdapter
from tests.fakes.discord_server import TOKEN as DISCORD_TOKEN
from tests.fakes.discord_server import DiscordServer
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, SlackServer
from tests.fakes.telegram_server import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_server import TelegramServer
from tests.kanban.workers.harness import wait_until

WITHIN = 15.0  # every wait is bounded; generous for a loaded machine
ADAPTER_TASKS = ("telegram", "slack", "discord", "web", "fake", "adapter-")


@dataclass(frozen=True)
class CountingBackoff(Backoff):
    """The gateway's formula, recording which retry numbers it was asked for."""

    asked: list[int] = field(default_factory=list, compare=False)

    def delay(self, retry: int) -> float:
        self.asked.append(retry)
        return super().delay(retry)


def recording(runner: AdapterRunner) -> list[str]:
    """Every state the runner enters, in order (wrapping its one writer)."""
    states: list[str] = []
    set_state = runner._set

    def spy(state: str, detail: str | None = None) -> None:
        if not states or states[-1] != state:
            states.append(state)
        set_state(state, detail)

    runner._set = spy  # type: ignore[method-assign]
    return states


async def until(probe: Callable[[], object], what: str) -> None:
    async def check() -> bool:
        return bool(probe())

    await wait_until(check, within=WITHIN, what=what)


def runner_for(name: str, factory: AdapterFactory, inbox: asyncio.Queue[InboundMessage],
               backoff: Backoff) -> AdapterRunner:
    return AdapterRunner(name, factory, {}, inbox, backoff)


async def test_cancelling_the_task_group_stops_every_run_and_leaves_no_task() -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    backoff = Backoff(base=0.01, cap=0.05)
    async with TelegramServer() as tg, SlackServer() as sl, DiscordServer() as dc:
        made: dict[str, PlatformAdapter] = {
            "telegram": TelegramAdapter(TELEGRAM_TOKEN, base_url=tg.api_base, poll_timeout=1,
                                        request_timeout=5, allowed_users=["42"]),
            "slack": SlackAdapter(BOT_TOKEN, APP_TOKEN, base_url=sl.api_base, ping_interval=0.3,
                                  timeout=5, watch_seconds=0.05, allowed_users=["U1"]),
            "discord": DiscordAdapter(DISCORD_TOKEN, base_url=dc.api_base,
                                      gateway_url=dc.gateway_url, guild_ready_timeout=0.1,
                                      allowed_users=["42"]),
            "web": WebAdapter(allowed_users=["*"]),
            "fake": FakeAdapter(allowed_users=[]),
        }
        runners = [runner_for(n, lambda a=a: a, inbox, backoff) for n, a in made.items()]
        async with anyio.create_task_group() as group:
            for runner in runners:
                group.start_soon(runner.run, name=f"adapter-{runner.name}")
            await until(lambda: all(r.state.state == "connected" for r in runners),
                        "every adapter connected")
            assert {r.name: r.state.attempts for r in runners} == dict.fromkeys(made, 1)
            group.cancel_scope.cancel()
        left = [t.get_name() for t in asyncio.all_tasks()
                if t.get_name().startswith(ADAPTER_TASKS)]
        assert left == []
        assert {r.name: r.state.state for r in runners} == dict.fromkeys(made, "stopped")
        assert {n: a.status().state for n, a in made.items()} == dict.fromkeys(
            made, AdapterState.STOPPED)


async def test_a_run_that_raises_is_restarted_with_the_backoff() -> None:
    fake = FakeAdapter(allowed_users=["u1"])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    backoff = CountingBackoff(base=0.2, cap=1.0, jitter=0.0)
    runner = runner_for("fake", lambda: fake, inbox, backoff)
    states = recording(runner)
    async with anyio.create_task_group() as group:
        group.start_soon(runner.run, name="adapter-fake")
        await until(lambda: runner.state.state == "connected", "connected")
        lost = time.monotonic()
        fake.lose_connection(TransientError("socket closed by the server", platform="fake"))
        await until(lambda: runner.state.state == "retrying", "retrying")
        assert "socket closed by the server" in (runner.state.detail or "")
        await until(lambda: fake.runs == 2 and runner.state.state == "connected", "reconnected")
        assert time.monotonic() - lost >= 0.2  # waited the formula's first delay
        assert backoff.asked == [1]
        await fake.inject(chat="c", user_id="u1", text="still here")
        assert (await inbox.get()).text == "still here"  # the fresh run feeds the same inbox
        group.cancel_scope.cancel()
    assert states == ["connecting", "connected", "retrying", "connected", "stopped"]
    assert runner.state.attempts == 2


async def test_failures_in_a_row_grow_the_delay_and_a_bug_escapes_to_the_supervisor() -> None:
    fake = FakeAdapter(allowed_users=[])
    fake.fail_connects(3, TransientError("down", platform="fake"))
    backoff = CountingBackoff(base=0.01, cap=0.05, jitter=0.0)
    runner = runner_for("fake", lambda: fake, asyncio.Queue(), backoff)
    async with anyio.create_task_group() as group:
        group.start_soon(runner.run, name="adapter-fake")
        await until(lambda: runner.state.state == "connected", "connected after 3 failures")
        group.cancel_scope.cancel()
    assert backoff.asked == [1, 2, 3]

    class Buggy(FakeAdapter):
        async def run(self, inbox: asyncio.Queue[InboundMessage],
                      report: Callable[[AdapterState, str], None] | None = None) -> None:
            raise KeyError("not a platform error")

    buggy = runner_for("buggy", lambda: Buggy(), asyncio.Queue(), backoff)
    with pytest.raises(KeyError):  # not retried here: the supervisor logs and restarts it
        await buggy.run()
    assert buggy.state.state == "stopped"


async def test_telegram_409_shows_as_conflict_and_the_runner_retries_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    backoff = CountingBackoff(base=0.05, cap=0.2, jitter=0.0)
    async with TelegramServer() as server:
        server.other_poller = True
        made: list[TelegramAdapter] = []

        def factory() -> TelegramAdapter:
            made.append(TelegramAdapter(TELEGRAM_TOKEN, base_url=server.api_base, poll_timeout=0,
                                        request_timeout=5, allowed_users=["42"]))
            return made[-1]

        runner = runner_for("telegram", factory, inbox, backoff)
        states = recording(runner)
        async with anyio.create_task_group() as group:
            group.start_soon(runner.run, name="adapter-telegram")
            await until(lambda: len(server.calls("getUpdates")) >= 3, "three refused polls")
            status = runner.status()
            assert status["state"] == "conflict"
            assert "another process is polling with this bot token" in status["detail"]
            polls = server.calls("getUpdates")
            assert polls[2].at - polls[1].at >= 0.1  # the runner's backoff: 0.05, 0.1, …
            server.other_poller = False
            server.push_message(chat_id=1, text="free again")
            with anyio.fail_after(WITHIN):
                assert (await inbox.get()).text == "free again"
            assert runner.status()["state"] == "connected"
            group.cancel_scope.cancel()
    assert states[:2] == ["connecting", "conflict"] and states[2:] == ["connected", "stopped"]
    assert backoff.asked[:3] == [1, 2, 3]
    conflicts = [r for r in caplog.records if "polling with this bot token" in r.getMessage()]
    assert len(conflicts) == 1 and conflicts[0].levelno == logging.ERROR  # once per streak
    assert all(a.status().state is AdapterState.STOPPED for a in made)  # each one closed

