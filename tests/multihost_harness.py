"""A multi-host simulation on one machine: several gateways and dispatchers, each a separate
process with its own home folder, sharing one board on PostgreSQL.

* Every process is a "host": its own home (config, profiles, workspaces, logs) and — where
  ``unshare --uts`` is allowed (root, or unprivileged user namespaces) — its own host name, so the
  dispatchers treat each other's runs as foreign (left to the lease TTL, never adopted by pid).
  Without it they share the machine's name and take the same-host paths (adoption by pid).
* Gateways (``relayboard gateway run``, dispatch off) run the notifier towards one loopback
  Telegram fake; each gateway reaches it under its own URL prefix, so every request is
  attributed to the host that made it.
* Dispatchers (``relayboard kanban dispatch --loop``) run ``multihost_worker.sh``, which
  completes its task through the real CLI and writes its host name into the task's metadata.
* :meth:`Simulation.run` SIGKILLs one dispatcher while it has runs in flight, and one gateway in
  the middle of a send (the fake has accepted the message; the gateway never hears back), then
  restarts that gateway's host, as a service manager would: the notifier's lease on a row is
  120 s and not configurable, so only a restart makes an interrupted row due within a test.
* :meth:`Simulation.audit` reads the tables (the database's clock stamped every row) and the
  fake's log and returns a :class:`SimReport`: it asserts nothing, tests and bench/multihost.py
  decide.

The board lives in a fresh namespace (schemas ``rb_<ns>_*``), dropped by :meth:`Simulation.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from psycopg import sql

from kanban.agents.profiles import Profiles
from kanban.board import Board, BoardOptions
from kanban.home import Boards
from kanban.runtime.spawn import is_same_process
from kanban.storage.backend import Storage
from kanban.storage.pg import connect, drop_namespace, schema_name
from tests.fakes.common import Recorded
from tests.fakes.telegram_server import TOKEN, TelegramServer
from tests.multihost_report import CHAT_BASE, SimReport, SimSpec, notice_of

__all__ = ["HostTelegram", "SimReport", "SimSpec", "Simulation", "SimulationFailed", "simulate"]

WORKER = Path(__file__).with_name("multihost_worker.sh")
PROFILE = "sim"
SLUG = "default"
PG_ENV = "SIM_PG_DSN"  # the hosts' storage.dsn_env
TG_ENV = "SIM_TELEGRAM_TOKEN"
POLL = 0.1  # how often the run loop looks at the board and the processes
STOP_WITHIN = 20.0  # a host's graceful stop (SIGTERM) before SIGKILL

RELEASED = re.compile(r"(\d+) notification\(s\) interrupted by a stop")

_HOST: contextvars.ContextVar[str] = contextvars.ContextVar("sim_host", default="")


def separate_hosts_supported() -> bool:
    """Whether ``unshare --uts`` works here (each process then gets its own host name)."""
    if shutil.which("unshare") is None or shutil.which("hostname") is None:
        return False
    probe = subprocess.run(["unshare", "--uts", "hostname", "sim-probe"],
                           capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


# ---- the Telegram fake, per host ----------------------------------------------------------------

class HostTelegram(TelegramServer):
    """The Telegram fake reached by each host under ``/<host>/bot…``; ``origin[i]`` is the host
    of ``requests[i]``. :meth:`kill_mid_send` arms a trap: the next message a given host sends is
    accepted (recorded, as Telegram would deliver it), then ``action`` runs — it kills the
    gateway — before the answer goes back."""

    def __init__(self) -> None:
        super().__init__()
        self.origin: list[str] = []
        self._trap: tuple[str, Callable[[], Awaitable[None]]] | None = None
        self.trap_fired = asyncio.Event()

    def base_url(self, host: str) -> str:
        return f"{self.url}/{host}/bot"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{host}/bot{token}/{method}", self._by_host)
        app.router.add_get("/{host}/bot{token}/{method}", self._by_host)
        super().routes(app)

    async def _by_host(self, request: web.Request) -> web.Response:
        host = request.match_info["host"]
        reset = _HOST.set(host)
        try:
            response = await self.handle(request)
        finally:
            _HOST.reset(reset)
        trap = self._trap
        if (trap is not None and trap[0] == host and request.match_info["method"] == "sendMessage"
                and response.status == 200):
            self._trap = None
            await trap[1]()
            self.trap_fired.set()
        return response

    async def record(self, rec: Recorded) -> None:
        self.origin.append(_HOST.get())
        await super().record(rec)

    def kill_mid_send(self, host: str, action: Callable[[], Awaitable[None]]) -> None:
        self._trap = (host, action)

    def disarm(self) -> None:
        self._trap = None

    def sends(self) -> list[tuple[str, int, str, float]]:
        """(host, chat id, text, time.monotonic()) of every sendMessage the fake received."""
        return [(host, int(r.params.get("chat_id", 0)), str(r.params.get("text", "")), r.at)
                for host, r in zip(self.origin, self.requests, strict=True)
                if r.method == "sendMessage"]

    def polls(self, since: float = 0.0) -> Counter[str]:
        """getUpdates calls per host since a ``time.monotonic()`` instant."""
        return Counter(host for host, r in zip(self.origin, self.requests, strict=True)
                       if r.method == "getUpdates" and r.at >= since)


TAKEOVER_WAIT = 15.0  # seconds a standby gateway gets to take the poller over after a kill

# ---- specification and hosts --------------------------------------------------------------------

@dataclass
class Host:
    name: str
    role: str  # "gateway" | "dispatcher"
    root: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    killed_at: float | None = None  # time.monotonic()

    @property
    def home(self) -> Path:
        return self.root / "relayboard"

    @property
    def log(self) -> Path:
        return self.root / "process.log"

    def command(self) -> list[str]:
        verb = ["gateway", "run"] if self.role == "gateway" else ["kanban", "dispatch", "--loop"]
        return [sys.executable, "-m", "gateway", "--home", str(self.home), *verb]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


def build_dag(count: int, width: int, max_parents: int, rng: random.Random) -> list[list[int]]:
    """Parents (as indexes) of ``count`` tasks in layers of ``width``: each task past the first
    layer has 0..max_parents parents drawn from the two layers before its own."""
    parents: list[list[int]] = []
    for index in range(count):
        layer = index // width
        if layer == 0:
            parents.append([])
            continue
        pool = range(max(0, (layer - 2) * width), layer * width)
        parents.append(sorted(rng.sample(pool, min(len(pool), rng.randint(0, max_parents)))))
    return parents


# ---- the simulation -----------------------------------------------------------------------------

class SimulationFailed(AssertionError):
    """The run did not finish (timeout, or a host died on its own); the message says why."""


class Simulation:
    def __init__(self, spec: SimSpec, root: Path, dsn: str, *,
                 separate_hosts: bool | None = None) -> None:
        self.spec = spec
        self.root = root
        self.dsn = dsn
        self.rng = random.Random(spec.seed)
        self.namespace = "mh" + secrets.token_hex(5)
        self.separate = separate_hosts_supported() if separate_hosts is None else separate_hosts
        self.telegram = HostTelegram()
        self.hosts = ([Host(f"sim-g{i + 1}", "gateway", root / f"g{i + 1}")
                       for i in range(spec.gateways)]
                      + [Host(f"sim-d{i + 1}", "dispatcher", root / f"d{i + 1}")
                         for i in range(spec.dispatchers)])
        self.storage = Storage.postgres(dsn, namespace=self.namespace, pool_size=2)
        self.boards: Boards | None = None
        self.board: Board | None = None
        self.task_ids: list[int] = []
        self.subscribed: list[int] = []
        self.report = SimReport(spec, self.namespace, self.separate)
        self._victim_runs: list[int] = []
        self._gateway_victim: Host | None = None
        self._gateway_killed_at: float | None = None
        self._killed_worker_runs: list[int] = []

    # ---- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Simulation:
        await self.telegram.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self.telegram.disarm()
        await asyncio.gather(*(self._stop(host) for host in self.hosts))
        if self.boards is not None:
            await self.boards.close()
        await self.telegram.stop()
        await asyncio.to_thread(drop_namespace, self.dsn, self.namespace)

    def environ(self, host: Host) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOARD_")}
        env.update({PG_ENV: self.dsn, TG_ENV: TOKEN, "HOME": str(host.root), "USER": "sim",
                    "PTB_TIMEDELTA": "1"})
        return env

    def write_config(self, host: Host) -> None:
        host.home.mkdir(parents=True, exist_ok=True)
        s = self.spec
        config = {
            "storage": {"backend": "postgresql", "dsn_env": PG_ENV, "namespace": self.namespace},
            "kanban": {"dispatch_in_gateway": False, "claim_ttl_seconds": s.claim_ttl_seconds,
                       "max_spawn": s.max_spawn, "max_spawn_host": s.max_spawn_host,
                       "dispatch_interval_seconds": 1.0, "auto_decompose": False},
            "platforms": {
                "telegram": {"enabled": host.role == "gateway", "token_env": TG_ENV,
                             "base_url": self.telegram.base_url(host.name),
                             "allowed_users": []},
                "web": {"enabled": False},
            },
            "dashboard": {"enabled": False},
        }
        # JSON is YAML: no quoting questions for paths and URLs.
        (host.home / "config.yaml").write_text(json.dumps(config, indent=1), encoding="utf-8")
        if host.role == "dispatcher":
            Profiles(host.home).create(PROFILE, command=["sh", str(WORKER)],
                                       read_paths=[str(WORKER)])

    async def setup(self) -> None:
        """Homes, then the board: the task graph and the subscriptions, before any host runs."""
        started = time.monotonic()
        for host in self.hosts:
            self.write_config(host)
        self.boards = Boards(self.root / "seed", BoardOptions(), self.storage)
        self.board = board = await self.boards.open(SLUG)
        dag = build_dag(self.spec.tasks, self.spec.layer_width, self.spec.max_parents, self.rng)
        for index, parents in enumerate(dag):
            created = await board.create_task(
                f"sim {index}", assignee=PROFILE, parents=[self.task_ids[p] for p in parents])
            self.task_ids.append(created.task.id)
        self.subscribed = sorted(self.rng.sample(self.task_ids, self.spec.subscribed))
        for task_id in self.subscribed:
            await board.subscribe(task_id, platform="telegram", chat=str(CHAT_BASE + task_id))
        self.report.setup_seconds = time.monotonic() - started

    async def _start(self, host: Host) -> None:
        argv = host.command()
        if self.separate:
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$1" && shift && exec "$@"',
                    "sh", host.name, *argv]
        with host.log.open("ab") as out:
            host.proc = await asyncio.create_subprocess_exec(
                *argv, env=self.environ(host), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        host.starts += 1
        host.killed_at = None

    async def _kill(self, host: Host) -> None:
        assert host.proc is not None
        host.proc.kill()
        await host.proc.wait()
        host.killed_at = time.monotonic()

    async def _stop(self, host: Host) -> None:
        proc = host.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_WITHIN)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    # ---- the run ------------------------------------------------------------------------------
    async def run(self) -> SimReport:
        """Start every host, kill one dispatcher and one gateway on the way, wait until every
        task is done and every notification settled, stop the hosts, audit."""
        assert self.board is not None, "setup() first"
        spec = self.spec
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = usage.ru_utime + usage.ru_stime
        started = time.monotonic()
        for host in self.hosts:
            await self._start(host)
        kill_d_at = self.rng.uniform(0.15, 0.5) * spec.tasks if spec.kill_dispatcher else None
        kill_g_at = self.rng.uniform(0.15, 0.6) * spec.tasks if spec.kill_gateway else None
        armed_at: float | None = None
        deadline = started + spec.within
        while True:
            done = await self._done_count()
            if kill_d_at is not None and done >= kill_d_at:
                kill_d_at = None
                await self._kill_dispatcher(deadline=time.monotonic() + 10)
            if kill_g_at is not None and done >= kill_g_at:
                kill_g_at = None
                armed_at = time.monotonic()
                self._arm_gateway_kill()
            victim = self._gateway_victim
            if victim is not None and armed_at is not None and self._gateway_killed_at is None \
                    and time.monotonic() - armed_at > 10:
                # It sent nothing for a while (the other gateway won every row): kill it anyway.
                self.telegram.disarm()
                await self._gateway_killed(victim, mid_send=False)
            killed_at = self._gateway_killed_at
            if victim is not None and killed_at is not None and victim.starts == 1 \
                    and time.monotonic() - killed_at >= spec.restart_after_seconds \
                    and (self._survivor_polled(victim, killed_at)
                         or time.monotonic() - killed_at > TAKEOVER_WAIT):
                # The surviving gateway leads now (it took the Telegram poller over if the victim
                # held it); the test asserts on these counts.
                self.report.polls_after_kill = dict(self.telegram.polls(killed_at))
                await self._start(victim)
            self._check_hosts()
            if done >= spec.tasks and kill_d_at is None and kill_g_at is None \
                    and (victim is None or victim.starts > 1) and await self._notified():
                break
            if time.monotonic() > deadline:
                raise SimulationFailed(await self._diagnosis(done))
            await asyncio.sleep(POLL)
        self.report.wall_seconds = time.monotonic() - started
        await asyncio.gather(*(self._stop(host) for host in self.hosts))
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.report.children_cpu_seconds = usage.ru_utime + usage.ru_stime - cpu_before
        await self.audit()
        return self.report

    async def _done_count(self) -> int:
        assert self.board is not None
        stats = await self.board.stats()
        return int(stats["by_status"].get("done", 0))

    def _survivor_polled(self, victim: Host, since: float) -> bool:
        return any(count for host, count in self.telegram.polls(since).items()
                   if host != victim.name)

    def _check_hosts(self) -> None:
        for host in self.hosts:
            if host.proc is not None and host.proc.returncode is not None \
                    and host.killed_at is None:
                raise SimulationFailed(f"{host.name} ({host.role}) exited "
                                       f"{host.proc.returncode} by itself:\n{host.tail()}")

    async def _kill_dispatcher(self, *, deadline: float) -> None:
        """SIGKILL a random dispatcher while its workers run (waiting a little for one), then
        half of those workers (their sessions): the other half are orphans that finish on their
        own; the killed ones leave stale runs that only the surviving dispatchers can end."""
        victim = self.rng.choice([h for h in self.hosts if h.role == "dispatcher"])
        assert victim.proc is not None
        mine = ("SELECT id, worker_pid, worker_started_at FROM task_runs WHERE status = 'active' "
                "AND claimed_by LIKE %s")
        claimer = (f"%:{victim.proc.pid}",)
        while time.monotonic() < deadline:
            if any(run[1] for run in await self._sql(mine, claimer)):
                break
            await asyncio.sleep(0.02)
        await self._kill(victim)
        # Read after the kill: the runs it claimed in between count too.
        runs = await self._sql(mine, claimer)
        self._victim_runs = [int(run[0]) for run in runs]
        self.report.killed_dispatcher = victim.name
        spawned = [run for run in runs if run[1] is not None]
        for run_id, pid, started in self.rng.sample(spawned, (len(spawned) + 1) // 2):
            if await asyncio.to_thread(is_same_process, int(pid), started):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pid), signal.SIGKILL)  # the worker leads its own session
                self._killed_worker_runs.append(int(run_id))
        # Those whose run the killed worker had not completed: stranded until a reclaim.
        if self._killed_worker_runs:
            still = await self._sql("SELECT id FROM task_runs WHERE status = 'active' AND "
                                    "id = ANY(%s)", (self._killed_worker_runs,))
            self.report.stranded_runs = sorted(int(row[0]) for row in still)

    def _arm_gateway_kill(self) -> None:
        victim = self.rng.choice([h for h in self.hosts if h.role == "gateway"])
        self._gateway_victim = victim

        async def kill() -> None:
            await self._gateway_killed(victim, mid_send=True)

        self.telegram.kill_mid_send(victim.name, kill)

    async def _gateway_killed(self, victim: Host, *, mid_send: bool) -> None:
        await self._kill(victim)
        self._gateway_killed_at = victim.killed_at
        rows = await self._sql("SELECT id FROM notify_outbox WHERE state = 'sending'")
        self.report.interrupted_rows = sorted(int(r[0]) for r in rows)
        self.report.killed_gateway = victim.name
        self.report.killed_mid_send = mid_send

    async def _notified(self) -> bool:
        """Every subscribed completion queued, every outbox row sent, and each row's message
        seen by the fake."""
        rows = await self._sql("SELECT task_id, kind, state FROM notify_outbox")
        if sum(1 for row in rows if row[1] == "completed") < len(self.subscribed):
            return False
        if any(row[2] not in ("sent", "failed") for row in rows):
            return False
        expected = Counter((int(row[0]), str(row[1])) for row in rows)
        seen = Counter(key for key in (notice_of(chat, text)
                                       for _host, chat, text, _at in self.telegram.sends())
                       if key is not None)
        return all(seen[key] >= count for key, count in expected.items())

    async def _diagnosis(self, done: int) -> str:
        statuses = await self._sql("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        outbox = await self._sql("SELECT state, COUNT(*) FROM notify_outbox GROUP BY state")
        active = await self._sql("SELECT task_id, claimed_by, host, expires_at FROM task_runs "
                                 "WHERE status = 'active' LIMIT 10")
        lines = [f"simulation (seed {self.spec.seed}) did not finish within "
                 f"{self.spec.within:.0f} s: {done} of {self.spec.tasks} done",
                 f"tasks {statuses}", f"outbox {outbox}", f"active runs {active}"]
        for host in self.hosts:
            lines.append(f"--- {host.name} ({'alive' if host.alive() else 'dead'}):\n"
                         f"{host.tail(1500)}")
        return "\n".join(lines)

    async def _sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """An auditor's read, on its own connection: not the kernel's view of the board."""
        schema = schema_name(SLUG, self.namespace)

        def run() -> list[tuple[Any, ...]]:
            with connect(self.dsn) as conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                return list(conn.execute(query, params).fetchall())

        return await asyncio.to_thread(run)

    # ---- the audit ----------------------------------------------------------------------------
    async def audit(self) -> SimReport:
        r = self.report
        tasks = {int(t[0]): (str(t[1]), t[2], json.loads(t[3] or "{}")) for t in await self._sql(
            "SELECT id, status, completed_at, metadata FROM tasks")}
        links = await self._sql("SELECT parent_id, child_id FROM task_links")
        runs = await self._sql("SELECT id, task_id, status, claimed_at, ended_at, host "
                               "FROM task_runs ORDER BY id")
        events = await self._sql("SELECT id, task_id, run_id, kind FROM task_events")
        r.links = len(links)
        r.statuses = Counter(status for status, _, _ in tasks.values())
        r.event_kinds = Counter(str(e[3]) for e in events)
        completed_events = Counter(int(e[1]) for e in events if e[3] == "completed")
        r.completed_events_per_task = Counter(completed_events.get(t, 0) for t in tasks)
        completed_runs = [run for run in runs if run[2] == "completed"]
        per_task = Counter(int(run[1]) for run in completed_runs)
        r.completed_runs_per_task = Counter(per_task.get(t, 0) for t in tasks)
        r.runs_by_status = Counter(str(run[2]) for run in runs)
        r.active_runs_left = r.runs_by_status.get("active", 0)
        r.run_seconds = [float(run[4]) - float(run[3]) for run in completed_runs
                         if run[3] is not None and run[4] is not None]
        for run in completed_runs:
            task_id, host = int(run[1]), str(run[5])
            r.completed_by_host[host] += 1
            said = str(tasks[task_id][2].get("host", ""))
            if said != host:
                r.metadata_mismatches.append((task_id, said, host))
        self._audit_gate(tasks, links, runs, events)
        status_of = {int(run[0]): str(run[2]) for run in runs}
        r.killed_dispatcher_runs = dict(Counter(status_of[i] for i in self._victim_runs))
        r.stranded_outcomes = dict(Counter(status_of[i] for i in r.stranded_runs))
        await self._audit_notifications()
        for gateway in self.hosts:
            if gateway.role == "gateway":
                # The notifier's own account of `release_notification_claims` at its start.
                found = RELEASED.findall(gateway.tail(10_000_000))
                r.released_at_start[gateway.name] = [int(n) for n in found]
        return r

    def _audit_gate(self, tasks: dict[int, tuple[str, Any, dict[str, Any]]],
                    links: list[tuple[Any, ...]], runs: list[tuple[Any, ...]],
                    events: list[tuple[Any, ...]]) -> None:
        """Every run of a task was claimed after each of its parents completed: by the DB clock
        (claimed_at vs completed_at), and by the order of the events (a claim committed after the
        parent's completion got a later event id)."""
        parents: dict[int, list[int]] = {}
        for parent, child in links:
            parents.setdefault(int(child), []).append(int(parent))
        completed_event = {int(e[1]): int(e[0]) for e in events if e[3] == "completed"}
        claimed_event = {int(e[2]): int(e[0]) for e in events
                         if e[3] == "claimed" and e[2] is not None}
        for run in runs:
            run_id, task_id, claimed_at = int(run[0]), int(run[1]), run[3]
            for parent in parents.get(task_id, []):
                done_at = tasks[parent][1]
                if done_at is None or claimed_at is None or float(claimed_at) <= float(done_at):
                    self.report.gate_violations.append(
                        (task_id, parent, f"run {run_id} claimed at {claimed_at}, parent "
                                          f"completed at {done_at}"))
                elif claimed_event.get(run_id, 0) <= completed_event.get(parent, 1 << 62):
                    self.report.gate_violations.append(
                        (task_id, parent, f"run {run_id}'s claimed event precedes the parent's "
                                          "completed event"))

    async def _audit_notifications(self) -> None:
        """One message per outbox row, i.e. per (subscription, event); a subscribed chat hears
        only its own task's events."""
        r = self.report
        r.subscribed = len(self.subscribed)
        rows = await self._sql("SELECT id, task_id, kind, state FROM notify_outbox")
        r.outbox_states = Counter(str(row[3]) for row in rows)
        r.notified_kinds = Counter(str(row[2]) for row in rows)
        expected = Counter((int(row[1]), str(row[2])) for row in rows)
        rows_of: dict[tuple[int, str], set[int]] = {}
        for row in rows:
            rows_of.setdefault((int(row[1]), str(row[2])), set()).add(int(row[0]))
        sends: dict[tuple[int, str], list[tuple[str, float]]] = {}
        for host, chat, text, at in self.telegram.sends():
            r.sends_by_host[host] += 1
            key = notice_of(chat, text)
            if key is None or key[0] not in set(self.subscribed):
                r.stray_notifications.append((chat, text[:80]))
                continue
            sends.setdefault(key, []).append((host, at))
        r.deliveries_per_notice = Counter(len(sends.get(key, [])) - count + 1
                                          for key, count in expected.items())
        r.missing_notifications = sorted(key for key, count in expected.items()
                                         if len(sends.get(key, [])) < count)
        r.stray_notifications += [(CHAT_BASE + key[0], f"{key[1]}: not queued")
                                  for key in sorted(sends) if key not in expected]
        interrupted = set(r.interrupted_rows)
        killed_at = self._gateway_killed_at
        for key, count in sorted(expected.items()):
            copies = sends.get(key, [])
            if len(copies) <= count:
                continue
            # At least once: the row the killed gateway had in flight (the fake took the
            # message, the gateway died before the answer) goes out once more after that.
            first_host, first_at = copies[0]
            if (len(copies) == count + 1 and rows_of[key] & interrupted and killed_at is not None
                    and first_host == r.killed_gateway and first_at <= killed_at):
                r.explained_duplicates.append(key)
            else:
                r.unexplained_duplicates.append((key, [host for host, _ in copies]))


async def simulate(spec: SimSpec, root: Path, dsn: str, *,
                   separate_hosts: bool | None = None) -> SimReport:
    """Set up, run and audit one simulation; the namespace is dropped whatever happens."""
    async with Simulation(spec, root, dsn, separate_hosts=separate_hosts) as sim:
        await sim.setup()
        return await sim.run()
