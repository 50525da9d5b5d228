"""The dispatcher: one OS worker process per claimed task, and the lifecycle around it.

A cycle (:meth:`Dispatcher.run_cycle`) does, for one board, in this order:

1. reap — our workers that exited: exit 75 requeues (not counted), exit 0 without
   complete/block is a protocol violation (own budget, comment), anything else is a crash (exit
   code and log tail in the event). A worker whose run ended under it (reclaimed, completed by an
   operator, …) is terminated — TERM, grace, KILL — never left running beside its successor.
   Completed tasks get their workspace cleanup (:mod:`kanban.runtime.workspaces`).
2. adopt — active runs started by a dispatcher that died: a live pid whose start time matches is
   watched from now on; a pid that is gone is a crash with an unknown exit code, fingerprinted
   from its log.
3. systemic crashes — see :mod:`kanban.runtime.breaker`: when ``systemic_threshold`` or more
   crashes of one cycle share a fingerprint, every one of them trips its breaker at once.
4. stale claims — a claim past its TTL whose worker is alive on this host is extended
   (``claim_extended``); otherwise the run is reclaimed and the task goes back to ready.
5. max runtime — elapsed ≥ ``max_runtime_seconds`` terminates the worker (``timed_out``,
   counted); 0 therefore times out on the next cycle.
6. spawn — ready tasks (with the due occurrences of schedules, made first on the leader:
   :mod:`kanban.runtime.scheduler`), higher priority first then oldest, within the caps.

:meth:`Dispatcher.run` is the one event-driven loop, for ``relayboard kanban dispatch --loop``
and the gateway alike: it signals ``ready``, then waits on a board change (in-process commit, or
another process's commit), a worker exit, the earliest not-before of a backed-off ready task, the
interval tick (only a safety net) or its stop event, whichever comes first
(:mod:`kanban.runtime.wakeups`). Worker exits arrive through a pidfd per worker
(:meth:`WorkerProcess.watch`, Linux ≥ 5.3); where a worker cannot be watched so, the wait is
bounded by ``exit_poll_seconds`` while it runs. A host adds its own parts as ``LoopHooks`` (the
gateway: the hub's boards and change signal, decomposition kicks, an interval from its config)
rather than a loop of its own. :meth:`Dispatcher.run_once` is the one-shot
``relayboard kanban dispatch``.

Nothing here blocks the event loop the daemon shares with chat: file work (log rotation and
tails, prompts, workspaces), process starts, git and process-table probes run on worker threads
(:mod:`kanban.runtime.launch`), and the database only through the :class:`Board` facade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from kanban.agents.profiles import Profile, Profiles
from kanban.board import Board
from kanban.errors import CapReached, KanbanError, NotClaimable, SpawnError, WorkspaceError
from kanban.home import Boards
from kanban.models import Run, Task
from kanban.runtime.breaker import (
    Crash,
    exited_crash,
    gone_crash,
    normalise_error,
    run_tail,
    systemic_fingerprints,
)
from kanban.runtime.launch import (
    LaunchRequest,
    argv_template,
    claimer_gone,
    launch,
    probe_adoptable,
)
from kanban.runtime.report import CycleReport
from kanban.runtime.scheduler import Scheduler
from kanban.runtime.settings import DispatchSettings, default_host_cap
from kanban.runtime.spawn import (
    WorkerProcess,
    find_run_worker,
    is_same_process,
    relayboard_argv,
)
from kanban.runtime.wakeups import LoopHooks, Wake, wait_seconds
from kanban.runtime.workspaces import Tmux, cleanup_completed, sweep_done
from kanban.timeutil import now

log = logging.getLogger(__name__)

EXIT_RETRY_LATER = 75  # EX_TEMPFAIL: "rate limited, retry later" — requeued, not counted


@dataclass
class _Tracked:
    slug: str
    task_id: int
    run_id: int
    proc: WorkerProcess
    ended_seen_at: float | None = None


class Dispatcher:
    """Spawns and supervises workers for the boards of one home.

    ``base_env`` is the environment workers inherit (the caller passes ``os.environ``; nothing in
    kanban reads it). ``slugs`` limits :meth:`run` to some boards (default: every board).
    """

    def __init__(
        self,
        boards: Boards,
        profiles: Profiles,
        settings: DispatchSettings | None = None,
        *,
        base_env: Mapping[str, str],
        slugs: Sequence[str] | None = None,
        relayboard: Sequence[str] | None = None,
    ) -> None:
        self.boards = boards
        self.profiles = profiles
        self.settings = settings or DispatchSettings()
        self.base_env = dict(base_env)
        self.slugs = list(slugs) if slugs is not None else None
        self.relayboard = list(relayboard) if relayboard is not None else relayboard_argv()
        self.host = socket.gethostname()
        self.identity = f"dispatcher@{self.host}:{os.getpid()}"
        self.tmux = Tmux(self.settings.tmux_socket) if self.settings.tmux_cleanup else None
        self.ready = asyncio.Event()
        self.cycles = 0  # run_cycle calls (one per board per pass)
        self.passes = 0  # wake-ups of the loop (one pass over every board each)
        self.last_reports: dict[str, CycleReport] = {}
        self._workers: dict[tuple[str, int], _Tracked] = {}
        self._wake = Wake()
        self._host_cap: int | None = None
        self.scheduler = Scheduler()  # a gateway gives it its leadership

    # ---- introspection ------------------------------------------------------------------------
    def live_workers(self) -> int:
        return sum(1 for t in self._workers.values() if t.proc.poll())

    def workers(self, slug: str | None = None) -> list[tuple[int, int, WorkerProcess]]:
        """(task id, run id, process) of every worker this dispatcher watches."""
        return [(t.task_id, t.run_id, t.proc) for t in self._workers.values()
                if slug is None or t.slug == slug]

    async def wait_workers(self, within: float, *, run_ids: set[int] | None = None) -> bool:
        """Wait up to ``within`` seconds until every watched worker (or those of ``run_ids``)
        has exited; True when they did."""
        deadline = anyio.current_time() + within
        for tracked in list(self._workers.values()):
            if run_ids is not None and tracked.run_id not in run_ids:
                continue
            remaining = deadline - anyio.current_time()
            if remaining <= 0 or not await tracked.proc.wait(remaining):
                return False
        return True

    # ---- one cycle ----------------------------------------------------------------------------
    async def run_cycle(self, board: Board, *, max_new: int | None = None,
                        dry_run: bool = False) -> CycleReport:
        """One pass over ``board``; see the module docstring for the order."""
        report = CycleReport(board.slug, dry_run=dry_run)
        if not dry_run:
            crashes = await self._reap(board, report)
            crashes += await self._adopt(board, report)
            await self._settle_crashes(board, crashes, report)
            await self._stale_claims(board, report)
            await self._max_runtime(board, report)
            await self.scheduler.tick(board, report)  # due occurrences spawn in this cycle
        await self._spawn_ready(board, report, max_new=max_new, dry_run=dry_run)
        self.last_reports[board.slug] = report
        self.cycles += 1
        return report

    async def run_once(self, board: Board, *, max_new: int | None = None, dry_run: bool = False,
                       wait: float = 0.0) -> CycleReport:
        """One-shot dispatch (``relayboard kanban dispatch``): clean up after dead dispatchers,
        run one cycle, then wait up to ``wait`` seconds for the workers it started and reap the
        ones that ended in a second cycle that spawns nothing.

        Without the wait a worker that fails at once is only found by the next run, as "gone,
        exit status unknown"; with it, fast crashes are recorded with their exit status and log
        tail, and crashes sharing one error trip the breaker together as under ``--loop``.
        Workers still running afterwards keep running (the next dispatcher adopts them).
        """
        if dry_run:
            return await self.run_cycle(board, max_new=max_new, dry_run=True)
        cleaned = await self.sweep(board)
        report = await self.run_cycle(board, max_new=max_new)
        report.cleaned[:0] = cleaned
        started = {int(s["run_id"]) for s in report.spawned}
        if started and wait > 0:
            await self.wait_workers(wait, run_ids=started)
            report.absorb(await self.run_cycle(board, max_new=0))
            self.last_reports[board.slug] = report
        return report

    async def _reap(self, board: Board, report: CycleReport) -> list[Crash]:
        mine = [(key, t) for key, t in self._workers.items() if t.slug == board.slug]
        # Look at the processes BEFORE reading the runs: a worker commits its completion before
        # it exits, so "exited, yet its run is active" then really means it never completed.
        alive = {key: t.proc.poll() for key, t in mine}
        active = {run.id: (run, task) for run, task in await board.active_runs()}
        crashes: list[Crash] = []
        stop: list[_Tracked] = []
        for key, tracked in mine:
            if tracked.run_id in active:
                if alive[key]:
                    continue  # its log relay enforces the size cap as it writes
                self._forget(key)
                crash = await self._worker_exited(board, tracked, *active[tracked.run_id],
                                                  report)
                if crash is not None:
                    crashes.append(crash)
                continue
            if not alive[key]:
                self._forget(key)
                await self._after_run(board, tracked.task_id, report)
                continue
            # Alive, but its run ended under it. A worker that finished its own run is about to
            # exit: it gets a grace period. Any other ending means a successor may start: stop it.
            ended = await board.get_run(tracked.run_id)
            if ended.status in ("completed", "blocked"):
                if tracked.ended_seen_at is None:
                    tracked.ended_seen_at = now()
                if now() - tracked.ended_seen_at < self.settings.exit_grace_seconds:
                    continue
            stop.append(tracked)
        if stop:
            async with anyio.create_task_group() as group:
                for tracked in stop:
                    group.start_soon(self._terminate, tracked, report,
                                     name=f"terminate-task-{tracked.task_id}")
            for tracked in stop:
                await self._after_run(board, tracked.task_id, report)
        return crashes

    async def _terminate(self, tracked: _Tracked, report: CycleReport) -> None:
        await tracked.proc.terminate(self.settings.kill_grace_seconds)
        self._forget((tracked.slug, tracked.run_id))
        report.terminated.append(tracked.task_id)

    async def _worker_exited(self, board: Board, tracked: _Tracked, run: Run, task: Task,
                             report: CycleReport) -> Crash | None:
        code = tracked.proc.returncode
        if code == EXIT_RETRY_LATER:
            if await board.requeue(tracked.run_id, reason="worker asked to retry later (exit 75)",
                                   exit_code=code):
                report.requeued.append(task.id)
            return None
        if code == 0:
            outcome = await board.record_failure(
                task.id, run_id=tracked.run_id, kind="protocol_violation",
                error="worker exited 0 without completing or blocking its task", exit_code=0)
            if outcome.recorded:
                report.protocol_violations.append(task.id)
            return None
        tail = await anyio.to_thread.run_sync(
            lambda: run_tail(board.log_path(task.id), since=run.claimed_at,
                             max_bytes=self.settings.log_tail_bytes))
        return exited_crash(task.id, tracked.run_id, code, tail)

    async def _after_run(self, board: Board, task_id: int, report: CycleReport) -> None:
        """A run is over and its worker gone: clean up if the task is done."""
        try:
            task = await board.get_task(task_id)
        except KanbanError:
            return
        if task.status != "done":
            return
        cleanup = await cleanup_completed(board, task, tmux=self.tmux,
                                          worktree_repo=self.settings.worktree_repo)
        report.cleaned.append(cleanup.to_dict())

    async def _adopt(self, board: Board, report: CycleReport) -> list[Crash]:
        """Runs started by another dispatcher (one that died, or a one-shot CLI)."""
        tracked_runs = {t.run_id for t in self._workers.values() if t.slug == board.slug}
        recorded: list[tuple[Run, Task]] = []
        for run, task in await board.active_runs():
            if run.id in tracked_runs or run.host != self.host:
                continue  # foreign hosts are left to the lease TTL
            if run.worker_pid is not None:
                recorded.append((run, task))
            elif claimer_gone(run.claimed_by, self.identity):
                await self._recover_unrecorded(board, run, task, report)
            # else: a manual claim, or one of our own spawns in progress: left alone
        if not recorded:
            return []
        probes = await anyio.to_thread.run_sync(
            probe_adoptable, [(run, board.log_path(task.id)) for run, task in recorded],
            self.settings.log_tail_bytes)
        crashes: list[Crash] = []
        for (run, task), (alive, tail) in zip(recorded, probes, strict=True):
            if alive:
                self._track(board.slug, task.id, run.id,
                            WorkerProcess(run.worker_pid or 0, run.worker_started_at))
                report.adopted.append(task.id)
            else:
                crashes.append(gone_crash(task.id, run.id, run.worker_pid, tail))
        return crashes

    async def _recover_unrecorded(self, board: Board, run: Run, task: Task,
                                  report: CycleReport) -> None:
        """A run whose dispatcher died between the claim and recording the worker's pid: adopt
        the worker if it is running (found by its environment), else release the run at once
        rather than at the lease's expiry — never leave an unknown worker beside a successor."""
        found = await anyio.to_thread.run_sync(find_run_worker, run.id, run.lease)
        if found is not None:
            pid, started = found
            await board.set_worker(run.id, pid=pid, started_at=started, host=self.host)
            self._track(board.slug, task.id, run.id, WorkerProcess(pid, started))
            report.adopted.append(task.id)
            return
        if await board.reclaim(run.id, payload={
            "reason": "its dispatcher died before the worker was recorded; no such worker runs",
            "claimed_by": run.claimed_by, "host_local": True,
        }):
            report.reclaimed.append(task.id)

    async def _settle_crashes(self, board: Board, crashes: list[Crash],
                              report: CycleReport) -> None:
        systemic = systemic_fingerprints(crashes, self.settings.systemic_threshold)
        report.systemic = sorted(systemic)
        for crash in crashes:
            forced = crash.fingerprint in systemic
            outcome = await board.record_failure(
                crash.task_id, run_id=crash.run_id, kind="crashed", error=crash.error,
                exit_code=crash.exit_code, force_trip=forced,
                payload={"log_tail": crash.tail, "fingerprint": crash.fingerprint,
                         "systemic": forced})
            if outcome.recorded:
                report.crashed.append({"task_id": crash.task_id, "error": crash.error,
                                       "exit_code": crash.exit_code, "systemic": forced,
                                       "tripped": outcome.tripped})

    async def _stale_claims(self, board: Board, report: CycleReport) -> None:
        stamp = await board.current_time()
        for run, task in await board.active_runs():
            if run.expires_at is None or run.expires_at > stamp:
                continue
            local = run.host == self.host
            tracked = self._workers.get((board.slug, run.id))
            if not local:
                alive = False
            elif tracked is not None:
                alive = tracked.proc.poll()
            else:
                alive = await anyio.to_thread.run_sync(is_same_process, run.worker_pid,
                                                       run.worker_started_at)
            details = {"claim_expires": run.expires_at,
                       "last_heartbeat_at": run.last_heartbeat_at,
                       "worker_pid": run.worker_pid, "host_local": local}
            if alive:
                # A slow model can sit in one long LLM call without heartbeating; a live worker
                # keeps its claim. Max runtime and crash detection remain the upper bounds.
                if await board.extend_claim(run.id, ttl=self.settings.claim_ttl_seconds,
                                            reason="worker alive on this host", payload=details):
                    report.extended.append(task.id)
                continue
            if tracked is not None:
                await self._terminate(tracked, report)
            if await board.reclaim(run.id, payload=details):
                report.reclaimed.append(task.id)

    async def _max_runtime(self, board: Board, report: CycleReport) -> None:
        stamp = await board.current_time()
        for run, task in await board.active_runs():
            limit = task.max_runtime_seconds
            started = run.claimed_at
            if limit is None or started is None or stamp - started < limit:
                continue
            tracked = self._workers.get((board.slug, run.id))
            if tracked is not None:
                await self._terminate(tracked, report)
            elif run.host == self.host and await anyio.to_thread.run_sync(
                    is_same_process, run.worker_pid, run.worker_started_at):
                await WorkerProcess(run.worker_pid or 0, run.worker_started_at).terminate(
                    self.settings.kill_grace_seconds)
            outcome = await board.record_failure(
                task.id, run_id=run.id, kind="timed_out",
                error=f"ran {stamp - started:.0f} s, over the {limit} s limit",
                payload={"max_runtime_seconds": limit, "elapsed": stamp - started})
            if outcome.recorded:
                report.timed_out.append(task.id)

    # ---- spawning -----------------------------------------------------------------------------
    async def _host_budget(self) -> int:
        if self._host_cap is None:
            # Reads the machine's memory size: once per dispatcher, on a thread.
            self._host_cap = await anyio.to_thread.run_sync(self.settings.host_cap)
        return max(0, self._host_cap - self.live_workers())

    async def _spawn_ready(self, board: Board, report: CycleReport, *, max_new: int | None,
                           dry_run: bool) -> None:
        # max_spawn is a LIVE per-board concurrency cap: the budget is max_spawn minus the
        # tasks running on this board right now (whoever spawned them), not a number of spawns
        # per cycle — counted per cycle, workers would pile up without bound across cycles.
        # This count is only a hint; claim(max_running=) enforces the cap inside its own write
        # transaction, so dispatchers in other processes cannot overshoot it together.
        report.running = await board.count_running()
        report.budget = max(0, self.settings.max_spawn - report.running)
        report.host_budget = await self._host_budget()
        room = min(report.budget, report.host_budget)
        if max_new is not None:
            room = min(room, max_new)
        if room <= 0:
            return
        started = 0
        # ready_candidates() already leaves out tasks backing off (not_before in the future, by
        # the board's clock); claim() is the real gate.
        for task in await board.ready_candidates(limit=room * 4 + 20,
                                                 host_labels=self.settings.host_labels):
            if started >= room:
                break
            assignee = task.assignee or self.settings.default_assignee
            if not assignee:
                continue  # nobody to run it: stays ready for a human to assign
            profile = self.profiles.load(assignee)  # never raises: problems are reported
            unusable = profile.unusable()
            if unusable is not None:
                # Nothing to run (the built-in worker in its place would be wrong): blocked at
                # once, no spawn and no failure counted; subscribers hear of it.
                await self._block(board, task, f"{unusable}, then unblock the task", report,
                                  dry_run)
                continue
            if profile.command is None and not self.settings.builtin_worker:
                await self._block(board, task, (
                    f"profile {assignee!r} has no `command`, and the built-in worker "
                    "(`relayboard worker run`) is not available in this version; give the profile "
                    "a command (`relayboard profile create NAME --command ...` or its "
                    "profile.yaml), then unblock the task"), report, dry_run)
                continue
            if dry_run:
                report.planned.append({"task_id": task.id, "assignee": assignee,
                                       "priority": task.priority,
                                       "command": profile.command or ["(built-in worker)"]})
                started += 1
                continue
            try:
                if await self._spawn(board, task, profile, report):
                    started += 1
            except CapReached:
                return  # other dispatchers filled the board meanwhile

    async def _block(self, board: Board, task: Task, reason: str, report: CycleReport,
                     dry_run: bool) -> None:
        report.blocked.append({"task_id": task.id, "reason": reason})
        if dry_run:
            return
        try:
            await board.block(task.id, reason, as_operator=True, by="dispatcher")
        except KanbanError as exc:  # it changed under us (claimed elsewhere, …): nothing to do
            log.info("not blocking task %s: %s", task.id, exc,
                     extra={"board": board.slug, "task_id": task.id})

    async def _spawn(self, board: Board, task: Task, profile: Profile,
                     report: CycleReport) -> bool:
        try:
            claim = await board.claim(task.id, ttl=self.settings.claim_ttl_seconds,
                                      claimed_by=self.identity, profile=profile.name,
                                      max_running=self.settings.max_spawn,
                                      may_create=profile.name == self.settings.orchestrator_profile)
        except CapReached:
            raise
        except NotClaimable:
            return False
        try:
            await board.localise_for_worker(task.id)  # files made on other hosts
            request = LaunchRequest(
                board=board, task=task, profile=profile, claim=claim,
                context=await board.context(task.id),
                template=argv_template(profile, self.settings), base_env=self.base_env,
                settings=self.settings)
            # Workspace (git worktree add), prompt file, log and Popen: one hop to a thread.
            argv, proc = await anyio.to_thread.run_sync(launch, request)
        except (KanbanError, SpawnError, WorkspaceError, OSError) as exc:
            outcome = await board.record_failure(task.id, run_id=claim.run_id,
                                                 kind="spawn_failed", error=str(exc))
            report.spawn_failed.append({"task_id": task.id, "error": str(exc),
                                        "tripped": outcome.tripped})
            return False
        self._track(board.slug, task.id, claim.run_id, proc)
        # The worker runs now: record its pid even if we are being cancelled (shutdown), so a
        # later dispatcher can adopt it instead of hunting for it by its environment.
        with anyio.CancelScope(shield=True):
            await board.set_worker(claim.run_id, pid=proc.pid, started_at=proc.started_at,
                                   host=self.host)
        report.spawned.append({"task_id": task.id, "run_id": claim.run_id, "pid": proc.pid,
                               "argv": argv})
        return True

    # ---- tracking -----------------------------------------------------------------------------
    def _track(self, slug: str, task_id: int, run_id: int, proc: WorkerProcess) -> None:
        self._workers[(slug, run_id)] = _Tracked(slug, task_id, run_id, proc)
        proc.watch(lambda _p: self._wake.set())

    def _forget(self, key: tuple[str, int]) -> None:
        tracked = self._workers.pop(key, None)
        if tracked is not None:
            tracked.proc.close()

    # ---- the loop -----------------------------------------------------------------------------
    async def _open_boards(self) -> list[Board]:
        slugs = self.slugs if self.slugs is not None else [b.slug for b in await self.boards.list()]
        return [await self.boards.open(slug) for slug in slugs]

    async def sweep(self, board: Board) -> list[dict[str, Any]]:
        """Clean the scratch workspaces of done tasks left by a dispatcher that died."""
        busy = {t.task_id for t in self._workers.values() if t.slug == board.slug}
        return await sweep_done(board, busy, tmux=self.tmux,
                                worktree_repo=self.settings.worktree_repo)

    async def run(self, stop: asyncio.Event | None = None,
                  hooks: LoopHooks | None = None) -> None:
        """The one dispatch loop, for ``relayboard kanban dispatch --loop`` and the gateway.

        Signals :attr:`ready` after the first pass, then waits on whichever comes first: a board
        change, a worker exit, the earliest not-before of a backed-off task, the interval tick
        (a safety net) or ``stop``; each wake-up is one pass: ``hooks.before_pass``, then one
        cycle per board. Returns when ``stop`` is set; cancellation passes straight through.
        """
        hooks = hooks or LoopHooks()
        if stop is None:
            stop = asyncio.Event()  # a host that is cancelled instead (the gateway's supervisor)
        async with anyio.create_task_group() as helpers:
            if hooks.changes is not None:
                helpers.start_soon(self._wake.forward_changes, hooks.changes,
                                   name="dispatch-changes")
                boards_of = hooks.boards or (lambda: [])
            else:
                # Standalone: the boards are opened once; their own change signals, plus a
                # poll for other processes' commits, are the change signal.
                opened = await self._open_boards()
                for board in opened:
                    helpers.start_soon(self._wake.forward_changes, board.changes,
                                       name=f"dispatch-changes-{board.slug}")
                helpers.start_soon(self._wake.poll_external, opened, self.settings.poll_seconds,
                                   name="dispatch-poll")
                boards_of = hooks.boards or (lambda: opened)
            helpers.start_soon(self._wake.forward_stop, stop, name="dispatch-stop")
            try:
                await self._loop(stop, boards_of, hooks)
            finally:
                helpers.cancel_scope.cancel()

    async def _loop(self, stop: asyncio.Event, boards_of: Callable[[], Sequence[Board]],
                    hooks: LoopHooks) -> None:
        swept: set[str] = set()
        while not stop.is_set():
            # Cleared BEFORE the pass: a commit or an exit during it means one more pass.
            self._wake.clear()
            boards = list(boards_of())
            if hooks.before_pass is not None:
                try:
                    await hooks.before_pass(boards)
                except Exception:  # CancelledError is a BaseException and passes
                    log.exception("before-pass hook failed")
            for board in boards:
                if stop.is_set():
                    break
                if board.slug not in swept:
                    swept.add(board.slug)
                    with contextlib.suppress(KanbanError, OSError):
                        await self.sweep(board)
                about = {"board": board.slug}
                try:
                    report = await self.run_cycle(board)
                    if report.busy:
                        log.info("dispatch %s: %s", board.slug, report.summary(), extra=about)
                except Exception:  # CancelledError is a BaseException and passes
                    log.exception("dispatch cycle failed on board %s", board.slug, extra=about)
            self.passes += 1
            self.ready.set()
            if stop.is_set():
                break
            await self._wake.wait(await self._wait_seconds(boards, hooks))

    async def _wait_seconds(self, boards: Sequence[Board], hooks: LoopHooks) -> float:
        """The loop's sleep (:func:`wait_seconds`): exits are polled only while a worker has
        no pidfd; a worker lingering after its run ended is stopped when its grace is over."""
        settings, tracked = self.settings, self._workers.values()
        return await wait_seconds(
            boards, hooks.interval() if hooks.interval is not None else settings.interval_seconds,
            poll=settings.exit_poll_seconds if any(not t.proc.watched for t in tracked) else None,
            deadlines=[*await self.scheduler.deadlines(boards),
                       *(t.ended_seen_at + settings.exit_grace_seconds for t in tracked
                         if t.ended_seen_at is not None)])

    async def aclose(self, *, terminate: bool = False) -> None:
        """Stop watching workers. They keep running (a later dispatcher adopts them) unless
        ``terminate`` is set."""
        tracked = list(self._workers.values())
        if terminate:
            async with anyio.create_task_group() as group:
                for t in tracked:
                    group.start_soon(t.proc.terminate, self.settings.kill_grace_seconds,
                                     name=f"terminate-task-{t.task_id}")
        for t in tracked:
            self._workers.pop((t.slug, t.run_id), None)
            t.proc.detach()


__all__ = ["CycleReport", "DispatchSettings", "Dispatcher", "LoopHooks", "Run",
           "default_host_cap", "normalise_error"]
