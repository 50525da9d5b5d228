"""The gateway daemon: every long-running part of Relayboard in one anyio task group.

Components (each restarted with backoff by :class:`~gateway.daemon.supervisor.Supervisor` when
it fails, never taking the others down):

* ``boards`` — :class:`~gateway.daemon.hub.BoardHub`: boards kept open, one change signal;
* ``adapter:<name>`` — one per enabled platform (and ``web``, the dashboard's chat): an
  :class:`~gateway.daemon.adapters.AdapterRunner` awaiting the adapter's ``run`` in this task
  group and running it again with backoff when it loses its connection for good;
* ``chat`` — :class:`~gateway.chat.ChatRouter`: inbound messages → commands, the agent, replies;
* ``dashboard`` — the dashboard and web chat under uvicorn (``dashboard.enabled``);
* ``dispatcher`` — :class:`~gateway.daemon.watcher.DispatchWatcher` (when
  ``kanban.dispatch_in_gateway``);
* ``notifier`` — :class:`~gateway.notifier.Notifier`, the outbox pump;
* ``metrics`` — :class:`~gateway.metrics.TaskLifecycle`: the task counters from the boards'
  event logs (the rest of :class:`~gateway.metrics.GatewayMetrics` is updated in place or read
  at scrape time; ``/metrics``, ``/healthz`` and ``/readyz`` are served by the dashboard);
* ``retention`` — :class:`~gateway.daemon.retention.RetentionWatcher`: ``kanban.retention``
  once a day (``kanban.retention.enabled``; on the leader only);
* ``leadership`` and ``leader`` — :class:`~kanban.storage.leader.Leadership` competes for the
  ``gateway`` leadership; while this gateway holds it, ``leader`` runs the leader-only duties:
  the external chat adapters (two Telegram pollers get 409 Conflict; Slack's socket and
  Discord's gateway deliver each event to one of them), the auto-decomposition kicks and the
  occurrences of recurring schedules (:mod:`kanban.runtime.scheduler`). On a
  standby they stand still (adapters still send) until the leader's session ends. On SQLite the
  leadership is granted at once, so a single gateway behaves as if there were none. The web chat,
  the dashboard, the dispatcher and the notifier run on every gateway: claims and outbox rows are
  locked per row.

Under systemd (``NOTIFY_SOCKET``) the daemon says ``READY=1`` once the boards are open and the
components started, pings the watchdog, and says ``STOPPING=1`` (:mod:`gateway.daemon.systemd`).

Stopping (``stop`` set) cancels them and cleans up within ``shutdown_seconds``. Workers are
detached, not stopped: their claims stay valid and the next start adopts them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from gateway.chat import ChatRouter, History, RouterSettings, build_agent
from gateway.chat.voice import build_transcriber
from gateway.commands import Services
from gateway.config import Config
from gateway.daemon.adapters import (
    EXTERNAL,
    AdapterFactory,
    AdapterRunner,
    adapter_factories,
)
from gateway.daemon.http_server import DashboardServer, web_adapter
from gateway.daemon.hub import BoardHub
from gateway.daemon.operations import DaemonOperations
from gateway.daemon.retention import RetentionWatcher
from gateway.daemon.supervisor import Supervisor
from gateway.daemon.systemd import Systemd
from gateway.daemon.watcher import ConfigFollower, DispatchWatcher
from gateway.kernel_settings import (
    board_options,
    decompose_settings,
    dispatch_settings,
    retention_settings,
    storage,
    time_zone,
)
from gateway.metrics import GatewayMetrics, TaskLifecycle
from gateway.notifier import DeliverySettings, Notifier, NotifierSettings, policy_for_roots
from gateway.worker_api import socket_path, worker_api_server
from kanban.agents.decomposer import BackgroundDecomposer
from kanban.agents.profiles import Profiles
from kanban.backoff import Backoff
from kanban.home import Boards
from kanban.runtime.dispatcher import Dispatcher
from kanban.runtime.sandbox import sandbox_status
from kanban.runtime.scheduler import Scheduler
from kanban.storage.leader import Leadership, Term
from platforms.base import InboundMessage, PlatformAdapter
from platforms.delivery import DeliveryPolicy

log = logging.getLogger(__name__)

INBOX_SIZE = 1000
LEADERSHIP = "gateway"


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        environ: Mapping[str, str],
        config_file: Path | None = None,
        adapters: Mapping[str, AdapterFactory] | None = None,
        notifier_settings: NotifierSettings | None = None,
        poll_seconds: float = 0.015,
        backoff: Backoff | None = None,
        shutdown_seconds: float = 10.0,
        user_home: Path | None = None,
        web: bool | None = None,
        dashboard: bool | None = None,
        router_settings: RouterSettings | None = None,
    ) -> None:
        """``adapters`` replaces the configured external platforms (tests, benchmarks); the web
        chat then runs only with ``web=True``. ``web``/``dashboard`` default to the config
        (``platforms.web.enabled``, ``dashboard.enabled``)."""
        self.config = config
        self.environ = environ
        self.home = config.home
        self.follower = ConfigFollower(config, config_file or config.path, environ)
        self.factories = dict(adapters) if adapters is not None else adapter_factories(config)
        if web is None:
            web = adapters is None
        self.web = web_adapter(config) if web else None
        if self.web is not None:
            chat = self.web
            self.factories["web"] = lambda: chat  # one instance: the dashboard mounts it
        self.shutdown_seconds = shutdown_seconds
        self.stopping = False
        self.operations = DaemonOperations(self)
        self.metrics = GatewayMetrics(self.operations.snapshot)
        self.systemd = Systemd(environ)
        self.supervisor = Supervisor(backoff)
        self.storage = storage(config.storage)
        self.boards = Boards(self.home, board_options(config.kanban, config.delivery),
                             self.storage)
        self.leadership = Leadership(self.storage, LEADERSHIP)
        self.hub = BoardHub(self.boards, poll_seconds=poll_seconds)
        self.profiles = Profiles(self.home)
        self.api_path = socket_path(self.home)
        self.dispatcher = Dispatcher(
            self.boards, self.profiles,
            dispatch_settings(config.kanban, config.workers, worker_api=self.api_path),
            base_env=environ)
        # Schedules' occurrences are made by the leading gateway only (every one dispatches).
        self.dispatcher.scheduler = Scheduler(leader=lambda: self.leadership.held)
        self.decomposer = BackgroundDecomposer(self.profiles, decompose_settings(config))
        self.watcher = DispatchWatcher(self.hub, self.dispatcher, self.decomposer,
                                       self.follower.current,
                                       leader=lambda: self.leadership.held)
        self.adapters: dict[str, PlatformAdapter] = {}
        self.inbox: asyncio.Queue[InboundMessage] = asyncio.Queue(INBOX_SIZE)
        self.runners = {name: AdapterRunner(name, factory, self.adapters, self.inbox, backoff)
                        for name, factory in self.factories.items()}
        for name in self.runners:
            self.metrics.platform_seen(name)
        # Every platform but the built-in web chat receives only on the leader.
        self.leader_runners = {n: r for n, r in self.runners.items() if n != "web"}
        delivery = DeliverySettings(
            relayboard_home=self.home, config_file=config_file or config.path,
            extra_roots=config.delivery.allowed_roots, user_home=user_home,
            max_bytes=config.delivery.max_attachment_bytes)
        self.delivery = delivery
        self.notifier = Notifier(self.hub.open_boards, self.hub.changes, self.adapters,
                                 delivery, notifier_settings, observer=self.metrics)
        self.lifecycle = TaskLifecycle(self.metrics, self.hub.open_boards, self.hub.changes,
                                       start_after=self.hub.ready)
        retention = retention_settings(config.kanban)
        self.services = Services(boards=self.boards, profiles=self.profiles,
                                 default_board=config.kanban.default_board,
                                 decompose_settings=lambda: decompose_settings(config),
                                 workspace_roots=config.kanban.workspace_roots,
                                 retention=retention,
                                 timezone=time_zone(config.kanban),
                                 members_may_schedule=config.kanban.members_may_schedule)
        self.retention = RetentionWatcher(
            self.hub.open_boards, retention,
            interval_seconds=config.kanban.retention.interval_hours * 3600,
            leader=lambda: self.leadership.held)
        settings = router_settings or RouterSettings(
            max_attachment_bytes=config.delivery.max_attachment_bytes)
        if not settings.admins:
            settings = dataclasses.replace(settings, admins={
                name: frozenset(platform.admins) for name, platform in config.platforms.items()})
        if not settings.pairing:
            settings = dataclasses.replace(settings, pairing=frozenset(
                name for name, platform in config.platforms.items()
                if platform.dm_policy == "pairing"))
        if not settings.channels:
            settings = dataclasses.replace(settings, channels={
                name: frozenset(platform.channels) for name, platform in config.platforms.items()
                if platform.channels})
        self.router = ChatRouter(
            services=self.services, adapters=self.adapters, home=self.home,
            agent=build_agent(config.agent, environ, self.home),
            history=History(self.home / "chat" / "history", config.agent.history_messages),
            status=self.status, policy=self.chat_policy, settings=settings,
            sent=self.metrics.sent,
            transcriber=build_transcriber(config.agent.transcription),
            access=self._access_now)
        self.worker_api = worker_api_server(self.services, self.api_path)
        serve = config.dashboard.enabled if dashboard is None else dashboard
        self.dashboard = (DashboardServer(config, self.boards, self.web,
                                          operations=self.operations,
                                          webhooks=self.adapters) if serve else None)
        self.ready = anyio.Event()
        self.started_at: float | None = None
        self._live_workers_at_stop = 0

    # ---- running --------------------------------------------------------------------------
    async def run(self, stop: anyio.Event) -> None:
        """Run every component until ``stop`` is set; then shut down within the deadline."""
        self.started_at = time.time()
        self._announce()
        supervise = self.supervisor.supervise
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(supervise, "boards", self.hub.run, name="boards")
                group.start_soon(supervise, "leadership", self.leadership.run,
                                 name="leadership")
                group.start_soon(supervise, "leader", self._lead, name="leader")
                for name, runner in self.runners.items():
                    if name not in self.leader_runners:
                        group.start_soon(supervise, f"adapter:{name}", runner.run,
                                         name=f"adapter-{name}")
                group.start_soon(supervise, "chat", lambda: self.router.run(self.inbox),
                                 name="chat")
                if self.dashboard is not None:
                    group.start_soon(supervise, "dashboard", self.dashboard.run,
                                     name="dashboard")
                if self.config.kanban.dispatch_in_gateway:
                    # Served whether or not this gateway leads: workers it started before it
                    # lost the lead still report, and so do the ones it adopts.
                    group.start_soon(supervise, "worker-api", self.worker_api.serve,
                                     name="worker-api")
                    group.start_soon(supervise, "dispatcher", self.watcher.run,
                                     name="dispatcher")
                group.start_soon(supervise, "notifier", self.notifier.run, name="notifier")
                group.start_soon(supervise, "metrics", self.lifecycle.run, name="metrics")
                if self.config.kanban.retention.enabled:
                    group.start_soon(supervise, "retention", self.retention.run,
                                     name="retention")
                await self.hub.ready.wait()
                with anyio.move_on_after(self.shutdown_seconds):
                    await self.lifecycle.ready.wait()  # counting from here on
                self.ready.set()
                log.info("gateway running on %s (pid %d; boards in %s; worker sandbox: %s)",
                         self.home, os.getpid(), self.storage.describe(),
                         sandbox_status(self.config.workers.sandbox))
                if self.dashboard is not None and self.systemd.enabled:
                    # Ready for systemd includes answering /readyz; a port that stays busy is
                    # retried while the rest serves, so it does not hold the start back for long.
                    with anyio.move_on_after(5):
                        await self.dashboard.listening.wait()
                self.systemd.ready(f"serving {len(self.hub.open_boards())} board(s)")
                group.start_soon(self.systemd.watchdog, name="systemd-watchdog")
                await stop.wait()
                self.stopping = True
                self.systemd.stopping()
                log.info("stopping")
                if self.dashboard is not None:
                    self.dashboard.stopping = True
                group.cancel_scope.cancel()
        finally:
            with anyio.move_on_after(self.shutdown_seconds, shield=True) as scope:
                await self._cleanup()
            if scope.cancelled_caught:
                log.warning("shutdown took longer than %.0f s; exiting anyway",
                            self.shutdown_seconds)
            log.info("stopped; %d worker(s) left running for the next start to adopt",
                     self._live_workers_at_stop)

    # ---- leader-only duties ---------------------------------------------------------------------
    async def _lead(self) -> None:
        await self.leadership.lead(self._leader_duties, self._standby)

    async def _leader_duties(self, term: Term) -> None:
        """Receive on the external platforms (each adapter supervised as ``adapter:<name>``)
        until the term ends; decomposition kicks follow ``leadership.held`` by themselves."""
        names = ", ".join(self.leader_runners) or "no chat platform"
        if self.leadership.shared:
            log.info("leader: took over %s and auto-decomposition after %.1f s on standby "
                     "(term %d)", names, term.waited, term.number)
        self.hub.changes.bump()  # the watcher's next wake-up kicks decompositions now
        try:
            async with anyio.create_task_group() as group:
                for name, runner in self.leader_runners.items():
                    group.start_soon(self.supervisor.supervise, f"adapter:{name}", runner.run,
                                     name=f"adapter-{name}")
        finally:
            if term.lost.is_set() and term.reason != "stopped":
                log.warning("standby: lost the leadership (%s); stopped %s and "
                            "auto-decomposition", term.reason, names)
            with anyio.CancelScope(shield=True):
                await self.decomposer.aclose()  # a plan in flight is one transaction: none lands

    async def _standby(self) -> None:
        """Another gateway leads: the platforms stay send-only here."""
        for runner in self.leader_runners.values():
            runner.standby()
        if self.leadership.shared:
            log.info("standby: another gateway leads; %s send from here but receive there; "
                     "taking over when its session ends",
                     ", ".join(self.leader_runners) or "no chat platform")

    async def _cleanup(self) -> None:
        for runner in self.runners.values():
            await runner.aclose()
        await self.decomposer.aclose()
        self._live_workers_at_stop = self.dispatcher.live_workers()
        await self.dispatcher.aclose()  # detaches: workers keep running, claims stay valid
        await self.boards.close()

    def _announce(self) -> None:
        external = [n for n in self.factories if n in EXTERNAL or n == "fake"]
        if not external:
            where = self.config.path or self.home / "config.yaml"
            chat = ("chat happens in the dashboard's web chat" if "web" in self.factories
                    else "nothing is sent to chat")
            log.info("no external chat platform is enabled: %s. To add Telegram, Slack or "
                     "Discord, set platforms.<name>.enabled: true in %s (see config.example.yaml "
                     "and docs/platforms/) and export its token variable, e.g. "
                     "TELEGRAM_BOT_TOKEN", chat, where)
        # Whom each platform serves is said by the adapter itself when it starts.

    def _access_now(self, platform: str) -> tuple[frozenset[str], frozenset[str]]:
        """``platforms.<platform>``'s (allowed_users, admins) as the config file reads now (the
        follower re-reads it when it changes): whom ``relayboard pairing approve`` added."""
        block = self.follower.current().platforms.get(platform)
        if block is None:
            return frozenset(), frozenset()
        return frozenset(block.allowed_users), frozenset(block.admins)

    async def chat_policy(self) -> DeliveryPolicy:
        """Which files an agent's chat reply may carry: every board's attachments (the files
        tasks were given and declared), the chat threads' own folders, ``delivery.allowed_roots``;
        never a worker's workspace while it works; the notifier's denials apply."""
        boards = self.hub.open_boards() or [await self.boards.open(
            self.config.kanban.default_board)]
        roots = [self.home / "chat" / "threads", *self.delivery.extra_roots]
        for board in boards:
            roots.append(board.attachments_dir)
        d = self.delivery
        return await asyncio.to_thread(
            functools.partial(policy_for_roots, roots, relayboard_home=d.relayboard_home,
                              config_file=d.config_file, user_home=d.user_home,
                              max_bytes=d.max_bytes))

    # ---- status -----------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        """What ``/status`` shows: uptime, whether this gateway leads (``leader``; always true
        on SQLite), adapters and their state, boards with counts per status, running workers,
        components and their restarts, notifications (``outbox_pending`` per board: those still to
        go out)."""
        boards: dict[str, Any] = {}
        for board in self.hub.open_boards():
            try:
                stats = await board.stats()
                pending, _ = await board.outbox_backlog()
            except Exception as exc:
                boards[board.slug] = {"error": str(exc)}
                continue
            boards[board.slug] = {"by_status": stats["by_status"],
                                  "active_runs": stats["active_runs"],
                                  "outbox_pending": pending}
        started = self.started_at
        return {
            "pid": os.getpid(),
            "home": str(self.home),
            "started_at": started,
            "uptime_seconds": round(time.time() - started, 3) if started else 0.0,
            "leader": self.leadership.held,
            "leadership": self.leadership.status(),
            "adapters": {name: runner.status() for name, runner in self.runners.items()},
            "boards": boards,
            "workers": [
                {"board": slug, "task_id": task_id, "run_id": run_id, "pid": proc.pid}
                for slug in boards
                for task_id, run_id, proc in self.dispatcher.workers(slug)
                if proc.poll()
            ],
            "components": self.supervisor.status(),
            "notifications": {"delivered": self.notifier.delivered,
                              "failed": self.notifier.failed},
            "dispatch_cycles": self.watcher.cycles,
            "dashboard": self.dashboard.url if self.dashboard is not None else None,
            "chat": {"handled": self.router.handled, "refusals": self.router.refusals},
            "sandbox": sandbox_status(self.config.workers.sandbox),
        }
