"""Two gateways on one PostgreSQL board: one leads (receives on the chat platforms, decomposes),
the other is a hot standby that sends but does not receive, and takes over within seconds when
the leader stops, loses its database session, or is killed with SIGKILL.

In process: two :class:`~gateway.daemon.Daemon` objects with in-memory adapters. As processes: two
``relayboard gateway run`` against the loopback Telegram fake, each getUpdates attributed to the
process whose socket sent it."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import psutil
import psycopg
import pytest
from aiohttp import web

from gateway.config import load_config
from gateway.daemon import Backoff, Daemon
from gateway.notifier import NotifierSettings
from kanban.storage.pg import drop_namespace
from platforms.fake import FakeAdapter
from tests.fakes.telegram_server import TOKEN, TelegramServer
from tests.gateway.conftest import clean_environ
from tests.gateway.test_daemon_process import Gateway, telegram_base_url
from tests.kanban.workers.harness import wait_until
from tests.storage_backends import pg_dsn

pytestmark = pytest.mark.postgres_only

DSN_VAR = "TEAM_BOARD_DSN"
WITHIN = 20.0
TAKEOVER_BOUND = 10.0  # seconds from the leader's end to the standby receiving


@pytest.fixture
def namespace() -> Iterator[str]:
    dsn = pg_dsn()  # skips here, before any gateway starts, where there is no PostgreSQL
    name = "g" + secrets.token_hex(5)
    yield name
    drop_namespace(dsn, name)


def storage_yaml(namespace: str) -> str:
    return f"storage: {{backend: postgresql, dsn_env: {DSN_VAR}, namespace: {namespace}}}\n"


# ---- in process ---------------------------------------------------------------------------------

@dataclass
class Host:
    """One in-process gateway and every fake adapter its factory made."""

    daemon: Daemon
    made: list[FakeAdapter]
    stop: anyio.Event = field(default_factory=anyio.Event)
    stopped: anyio.Event = field(default_factory=anyio.Event)

    @property
    def receiving(self) -> bool:
        """Its current adapter was started (inbound on) and not closed."""
        current = self.daemon.adapters.get("fake")
        return isinstance(current, FakeAdapter) and current.started and not current.closed

    async def serve(self) -> None:
        try:
            await self.daemon.run(self.stop)
        finally:
            self.stopped.set()


def make_host(root: Path, name: str, namespace: str, config_extra: str = "") -> Host:
    home = root / name
    home.mkdir()
    (home / "config.yaml").write_text(storage_yaml(namespace) + config_extra, encoding="utf-8")
    env = {**os.environ, DSN_VAR: pg_dsn()}
    config = load_config(None, env, home=home)
    made: list[FakeAdapter] = []

    def factory() -> FakeAdapter:
        made.append(FakeAdapter(platform="fake", allowed_users=["*"]))
        return made[-1]

    daemon = Daemon(config, environ=env, adapters={"fake": factory},
                    backoff=Backoff(base=0.01, cap=0.05, steady_seconds=5.0),
                    notifier_settings=NotifierSettings(backoff_base=0.01, tick_seconds=0.2),
                    user_home=home / "user", dashboard=False)
    return Host(daemon, made)


@asynccontextmanager
async def two_hosts(root: Path, namespace: str, config_extra: str = ""
                    ) -> AsyncIterator[tuple[Host, Host]]:
    """Two gateways, started one after the other: the first leads, the second stands by."""
    a = make_host(root, "a", namespace, config_extra)
    b = make_host(root, "b", namespace, config_extra)
    async with anyio.create_task_group() as group:
        group.start_soon(a.serve)
        await until(lambda: a.receiving, "first gateway leads")
        group.start_soon(b.serve)
        await until(lambda: b.daemon.runners["fake"].state.state == "standby",
                    "second gateway stands by")
        try:
            yield a, b
        finally:
            a.stop.set()
            b.stop.set()
    for host in (a, b):
        await host.daemon.dispatcher.aclose(terminate=True)


async def until(check: Any, what: str, within: float = WITHIN) -> float:
    start = time.monotonic()

    async def probe() -> bool:
        return bool(check())

    await wait_until(probe, within=within, what=what)
    return time.monotonic() - start


async def test_one_gateway_receives_and_decomposes_and_the_standby_takes_over_when_it_stops(
    tmp_path: Path, namespace: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.daemon.components")
    async with two_hosts(tmp_path, namespace, "kanban: {auto_decompose: true}\n") as (a, b):
        # The standby holds a send-only adapter: made, never started.
        assert [x.started for x in b.made] == [False] and b.daemon.adapters["fake"] is b.made[0]
        status_a, status_b = await a.daemon.status(), await b.daemon.status()
        assert (status_a["leader"], status_b["leader"]) == (True, False)
        assert status_b["adapters"]["fake"]["state"] == "standby"
        assert status_b["leadership"] == {"state": "standby", "since": None, "terms": 0,
                                          "shared": True}

        # Auto-decomposition runs on the leader only.
        board = await b.daemon.boards.open("default")
        triage = (await board.create_task("ship it\n- one\n- two", triage=True)).task

        async def decomposed() -> bool:
            return (await board.get_task(triage.id)).status != "triage"

        await wait_until(decomposed, within=WITHIN, what="triage task decomposed")
        assert "default" in a.daemon.decomposer.last_outcomes
        assert b.daemon.decomposer.last_outcomes == {}

        # A completion is sent once, by whichever notifier claimed it (the standby can send).
        task = (await board.create_task("report")).task  # no assignee: no dispatcher takes it
        await board.subscribe(task.id, platform="fake", chat="c1")
        claim = await board.claim(task.id)
        await board.complete(task.id, lease=claim.lease, summary="numbers are in")
        everyone = [*a.made, *b.made]
        await until(lambda: any(x.texts for x in everyone), "completion sent")
        await board.comment(task.id, "a later commit wakes both notifiers", author="me")
        await until(lambda: a.daemon.watcher.cycles > 2 and b.daemon.watcher.cycles > 2,
                    "both gateways dispatched since")
        assert sum(len(x.texts) for x in everyone) == 1, [(x.started, x.texts) for x in everyone]

        # The leader stops: the standby starts receiving within about a retry interval.
        a.stop.set()
        took = await until(lambda: b.receiving, "standby took over")
        await until(lambda: a.stopped.is_set(), "first gateway stopped")
        assert took < 5.0, took
        assert (await b.daemon.status())["leader"] is True
        await b.made[-1].inject(chat="c2", text="/status")
        await until(lambda: b.made[-1].texts, "the new leader answered")
        assert "Role: leader" in b.made[-1].texts[0]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "standby: another gateway leads; fake send from here but receive there" in text
    assert "leader: took over fake and auto-decomposition after" in text


async def test_a_leader_whose_database_session_ends_stops_receiving_and_the_standby_takes_over(
    tmp_path: Path, namespace: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with two_hosts(tmp_path, namespace) as (a, b):
        leading = a.daemon.adapters["fake"]
        pid = a.daemon.leadership.session_pid
        assert pid is not None
        async with await psycopg.AsyncConnection.connect(pg_dsn(), autocommit=True) as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The old leader gives up at its next health check, before anything else can happen.
        await until(lambda: not a.receiving, "old leader stopped receiving", within=5.0)
        assert isinstance(leading, FakeAdapter) and leading.closed
        await until(lambda: b.receiving, "standby took over", within=5.0)
        statuses = [await a.daemon.status(), await b.daemon.status()]
        assert [s["leader"] for s in statuses] == [False, True]
        assert statuses[0]["adapters"]["fake"]["state"] == "standby"
        assert statuses[1]["leadership"]["terms"] == 1
        # The old leader's send-only adapter is a fresh one, never started.
        current = a.daemon.adapters["fake"]
        assert current is a.made[-1] and current is not leading
        assert isinstance(current, FakeAdapter) and not current.started
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert any(m.startswith("standby: lost the leadership (") and "stopped fake" in m
               for m in lost), lost


# ---- as processes, with Telegram ---------------------------------------------------------------

class AttributedTelegram(TelegramServer):
    """The Telegram fake, naming the process behind each request: the test's child process that
    owns the request's client socket."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[tuple[str, int | None, float]] = []  # (method, pid, monotonic time)
        self.polling = 0
        self.peak_polling = 0

    def caller(self, request: web.Request) -> int | None:
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer:
            return None
        for child in psutil.Process().children():
            try:
                connections = child.net_connections(kind="tcp")
            except psutil.Error:
                continue
            if any(c.laddr and c.laddr.port == peer[1] and c.raddr and c.raddr.port == self.port
                   for c in connections):
                return int(child.pid)
        return None

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.callers.append((method, self.caller(request), time.monotonic()))
        if method != "getUpdates":
            return await super().handle(request)
        self.polling += 1
        self.peak_polling = max(self.peak_polling, self.polling)
        try:
            return await super().handle(request)
        finally:
            self.polling -= 1

    def pollers(self, since: float = 0.0) -> list[int | None]:
        return [pid for method, pid, at in self.callers if method == "getUpdates" and at >= since]


@pytest.fixture
async def telegram() -> AsyncIterator[AttributedTelegram]:
    async with AttributedTelegram() as server:
        yield server


@pytest.fixture
def gateways(tmp_path: Path, namespace: str, telegram: AttributedTelegram
             ) -> Iterator[tuple[Gateway, Gateway]]:
    made = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        (home / "config.yaml").write_text(
            storage_yaml(namespace)
            + "kanban: {auto_decompose: false}\n"
            + "dashboard: {port: 0}\n"
            + "platforms:\n"
            + f"  telegram: {{enabled: true, base_url: '{telegram_base_url(telegram.url)}',"
            + " allowed_users: ['*']}\n", encoding="utf-8")
        env = clean_environ({"HOME": str(tmp_path / "user"), "TELEGRAM_BOT_TOKEN": TOKEN,
                             "PTB_TIMEDELTA": "1", DSN_VAR: pg_dsn()})
        made.append(Gateway(home, env, tmp_path / f"gateway-{name}.log"))
    try:
        yield made[0], made[1]
    finally:
        for gw in made:
            gw.kill()


@pytest.mark.slow
async def test_kill_9_of_the_leading_gateway_hands_telegram_polling_to_the_standby(
    gateways: tuple[Gateway, Gateway], telegram: AttributedTelegram,
) -> None:
    a, b = gateways
    proc_a = await a.start()
    await a.wait_log("leader: took over telegram", proc_a)
    proc_b = await b.start()
    await b.wait_log("standby: another gateway leads", proc_b)

    # Only the leader polls, one getUpdates at a time, over many polls.
    since = time.monotonic()
    await telegram.wait_until(lambda: len(telegram.pollers(since)) >= 10, WITHIN)
    assert set(telegram.pollers()) == {proc_a.pid}
    assert telegram.peak_polling == 1

    killed_at = time.monotonic()
    a.kill()  # SIGKILL: no goodbye; the server drops its session and the lock with it
    await telegram.wait_until(lambda: proc_b.pid in telegram.pollers(killed_at), WITHIN)
    takeover = time.monotonic() - killed_at
    print(f"\ntakeover after kill -9: {takeover:.2f} s")  # a figure for the report
    assert takeover < TAKEOVER_BOUND, takeover
    await b.wait_log("leader: took over telegram", proc_b)
    assert set(telegram.pollers(killed_at)) == {proc_b.pid}
    assert telegram.peak_polling == 1

    # A message sent to the bot now is answered, by the new leader.
    telegram.push_message(chat_id=555, text="/status")

    def answered() -> list[str]:
        return [str(r.params.get("text", "")) for r in telegram.calls("sendMessage")
                if str(r.params.get("chat_id")) == "555"]

    await telegram.wait_until(answered, WITHIN)
    assert "Role: leader" in answered()[0]
    assert [pid for method, pid, _ in telegram.callers if method == "sendMessage"] == [proc_b.pid]
    assert await b.stop(signal.SIGTERM) == 0
    for gw in (a, b):
        assert pg_dsn() not in gw.text() and TOKEN not in gw.text()


def test_status_names_the_role_only_where_another_gateway_could_lead() -> None:
    from gateway.chat import render_status

    base: dict[str, Any] = {"uptime_seconds": 5, "pid": 1, "adapters": {}, "boards": {}}
    shared = {"state": "standby", "since": None, "terms": 0, "shared": True}
    assert "Role: standby (another gateway receives chat)" in render_status(
        {**base, "leader": False, "leadership": shared}).splitlines()
    assert "Role: leader" in render_status(
        {**base, "leader": True, "leadership": {**shared, "state": "leader"}}).splitlines()
    single = {"state": "leader", "since": 1.0, "terms": 1, "shared": False}
    assert "Role" not in render_status({**base, "leader": True, "leadership": single})
