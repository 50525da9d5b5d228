"""The dispatcher: one OS worker process per claimed task, and the lifecycle around it.

A cycle (:meth:`Dispatcher.run_cycle`) does, for one board, in this order:

1. reap — our workers that exited: exit 75 requeues (not counted), exit 0 without
   complete/block is a protocol violation (own budget, comment), anything else is a crash (exit
   code and log tail in the event). A worker whose run ended under it (reclaimed, completed by an
   operator, …) is terminated — TERM, grace, KILL — never left running beside its successor.
   Completed tasks get their workspace cleanup (:mod:`kanban.runtime.workspaces`).
2. adopt — active runs started by a dispatcher that died: a live pid whose start time matches is
   watched from now on; a pid that is gone is a crash with an unknown exit code.
3. systemic crashes — each crash error is fingerprinted; when ``systemic_threshold`` or more
   crashes of one cycle share a fingerprint, every one of them trips its breaker at once (S6).
4. stale claims — a claim past its TTL whose worker is alive on this host is extended
   (``claim_extended``, S22); otherwise the run is reclaimed and the task goes back to ready.
5. max runtime — elapsed ≥ ``max_runtime_seconds`` terminates the worker (``timed_out``,
   counted); 0 therefore times out on the next cycle (S8).
6. spawn — ready tasks, higher priority first then oldest, within the caps.

:meth:`Dispatcher.run` is the event-driven loop: it wakes on a board change (in-process commit,
or another process's commit seen through ``PRAGMA data_version``), a worker exit, or the
interval tick, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from kanban.agents.profiles import Profile, Profiles
from kanban.board import Board
from kanban.board.context import build_context
from kanban.boards import Boards
from kanban.errors import KanbanError, NotClaimable, SpawnError, WorkspaceError
from kanban.models import Run, Task
from kanban.runtime.spawn import (
    CLI_MODULE,
    SpawnRequest,
    TemplateValues,
    WorkerProcess,
    build_argv,
    find_run_worker,
    is_same_process,
    log_tail,
    relayboard_argv,
    start_worker,
    worker_env,
    write_private_text,
)
from kanban.runtime.workspaces import (
    Tmux,
    cleanup_completed,
    prepare_workspace,
    prompt_path,
)
from kanban.timeutil import now

log = logging.getLogger(__name__)

EXIT_RETRY_LATER = 75  # EX_TEMPFAIL: "rate limited, retry later" — requeued, not counted


@dataclass(frozen=True)
class DispatchSettings:
    """Plain settings (the gateway maps its config onto these; kanban never reads config)."""

    max_spawn: int = 4  # live per-board cap: running tasks on the board, not spawns per cycle
    max_spawn_host: int | None = None  # None: derived from cores and memory
    interval_seconds: float = 5.0  # safety-net tick; changes and worker exits wake sooner
    poll_seconds: float = 0.5  # how often other processes' commits are looked for
    claim_ttl_seconds: float | None = None  # None: the board's claim_ttl_seconds (900)
    kill_grace_seconds: float = 5.0  # TERM → KILL
    exit_grace_seconds: float = 10.0  # a worker whose run it finished itself may linger this long
    log_max_bytes: int = 5_000_000
    log_backups: int = 3
    log_tail_bytes: int = 2_000
    systemic_threshold: int = 3
    builtin_worker: bool = True  # profiles without `command` run `relayboard worker run`
    orchestrator_profile: str | None = None  # its built-in worker may create tasks
    default_assignee: str | None = None
    tmux_socket: str | None = None
    tmux_cleanup: bool = True
    worktree_repo: Path | None = None
    platform: str = sys.platform
    shutdown_seconds: float = 10.0

    def host_cap(self) -> int:
        return self.max_spawn_host if self.max_spawn_host is not None else default_host_cap()


def default_host_cap(cores: int | None = None, memory_bytes: int | None = None) -> int:
    """Workers are mostly waiting on LLM calls, so several per core; each may hold a few hundred
    MB, so also at most one per 512 MiB of RAM."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    memory = memory_bytes if memory_bytes is not None else int(psutil.virtual_memory().total)
    return max(1, min(cores * 4, memory // (512 * 1024 * 1024)))


def _claimer_gone(claimed_by: str | None, me: str) -> bool:
    """True when a run was claimed by a dispatcher process (``dispatcher@host:pid``) other than
    this one that no longer runs. Manual claims (a person's name) are never "gone"."""
    if not claimed_by or not claimed_by.startswith("dispatcher@") or claimed_by == me:
        return False
    _, _, pid_text = claimed_by.rpartition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return not psutil.pid_exists(pid)


# ---- crash fingerprints -----------------------------------------------------------------------

_NORMALISE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
     "<ts>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
     "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.I), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+)+[\\/]?"), "<path>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


def normalise_error(text: str) -> str:
    """An error with host details stripped (timestamps, ids, hex, paths, pids, numbers), so the
    same failure on different workers reads the same."""
    out = text.strip().lower()
    for pattern, replacement in _NORMALISE:
        out = pattern.sub(replacement, out)
    return re.sub(r"\s+", " ", out)[:500]


# ---- reports ----------------------------------------------------------------------------------

@dataclass
class CycleReport:
    board: str
    dry_run: bool = False
    running: int = 0
    budget: int = 0
    host_budget: int = 0
    spawned: list[dict[str, Any]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    spawn_failed: list[dict[str, Any]] = field(default_factory=list)
    crashed: list[dict[str, Any]] = field(default_factory=list)
    systemic: list[str] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    protocol_violations: list[int] = field(default_factory=list)
    timed_out: list[int] = field(default_factory=list)
    extended: list[int] = field(default_factory=list)
    reclaimed: list[int] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    cleaned: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return any((self.spawned, self.blocked, self.spawn_failed, self.crashed, self.requeued,
                    self.protocol_violations, self.timed_out, self.extended, self.reclaimed,
                    self.terminated, self.adopted, self.cleaned, self.errors, self.planned))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class _Tracked:
    slug: str
    task_id: int
    run_id: int
    proc: WorkerProcess
    ended_seen_at: float | None = None


@dataclass
class _Crash:
    task_id: int
    run_id: int
    error: str
    exit_code: int | None
    tail: str
    fingerprint: str | None  # None: nothing to compare (exit status unknown)


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
        self.cycles = 0
        self.last_reports: dict[str, CycleReport] = {}
        self._workers: dict[tuple[str, int], _Tracked] = {}
        self._wake = asyncio.Event()

    # ---- introspection ------------------------------------------------------------------------
    def live_workers(self) -> int:
        return sum(1 for t in self._workers.values() if t.proc.poll())

    def workers(self, slug: str | None = None) -> list[tuple[int, int, WorkerProcess]]:
        """(task id, run id, process) of every worker this dispatcher watches."""
        return [(t.task_id, t.run_id, t.proc) for t in self._workers.values()
                if slug is None or t.slug == slug]

    async def wait_workers(self, within: float) -> bool:
        """Wait up to ``within`` seconds until every watched worker has exited (tests, shutdown);
        True when they did."""
        deadline = asyncio.get_running_loop().time() + within
        for tracked in list(self._workers.values()):
            remaining = deadline - asyncio.get_running_loop().time()
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
        await self._spawn_ready(board, report, max_new=max_new, dry_run=dry_run)
        self.last_reports[board.slug] = report
        self.cycles += 1
        return report

    async def _reap(self, board: Board, report: CycleReport) -> list[_Crash]:
        mine = [(key, t) for key, t in self._workers.items() if t.slug == board.slug]
        # Look at the processes BEFORE reading the runs: a worker commits its completion before
        # it exits, so "exited, yet its run is active" then really means it never completed.
        alive = {key: t.proc.poll() for key, t in mine}
        active = {run.id: (run, task) for run, task in await board.active_runs()}
        crashes: list[_Crash] = []
        stop: list[_Tracked] = []
        for key, tracked in mine:
            if tracked.run_id in active:
                if alive[key]:
                    continue
                self._forget(key)
                _run, task = active[tracked.run_id]
                crash = await self._worker_exited(board, tracked, task, report)
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
            await asyncio.gather(*(self._terminate(t, report) for t in stop))
            for tracked in stop:
                await self._after_run(board, tracked.task_id, report)
        return crashes

    async def _terminate(self, tracked: _Tracked, report: CycleReport) -> None:
        await tracked.proc.terminate(self.settings.kill_grace_seconds)
        self._forget((tracked.slug, tracked.run_id))
        report.terminated.append(tracked.task_id)

    async def _worker_exited(self, board: Board, tracked: _Tracked, task: Task,
                             report: CycleReport) -> _Crash | None:
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
        tail = log_tail(board.log_path(task.id), max_bytes=self.settings.log_tail_bytes)
        last_line = tail.splitlines()[-1] if tail else ""
        if code is not None and code < 0:
            try:
                what = f"worker killed by signal {signal.Signals(-code).name}"
            except ValueError:
                what = f"worker killed by signal {-code}"
        else:
            what = f"worker exited with code {code}"
        error = f"{what}: {last_line}" if last_line else what
        return _Crash(task.id, tracked.run_id, error, code, tail, normalise_error(error))

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

    async def _adopt(self, board: Board, report: CycleReport) -> list[_Crash]:
        """Runs started by another dispatcher (one that died, or a one-shot CLI)."""
        tracked_runs = {t.run_id for t in self._workers.values() if t.slug == board.slug}
        crashes: list[_Crash] = []
        for run, task in await board.active_runs():
            if run.id in tracked_runs or run.host != self.host:
                continue  # foreign hosts are left to the lease TTL
            if run.worker_pid is None:
                if _claimer_gone(run.claimed_by, self.identity):
                    await self._recover_unrecorded(board, run, task, report)
                continue  # manual claims (and our own spawns in progress) are left alone
            if is_same_process(run.worker_pid, run.worker_started_at):
                proc = WorkerProcess(run.worker_pid, run.worker_started_at)
                self._track(board.slug, task.id, run.id, proc)
                report.adopted.append(task.id)
                continue
            tail = log_tail(board.log_path(task.id), max_bytes=self.settings.log_tail_bytes)
            # No exit status to compare: such crashes keep their own budget (no fingerprint).
            crashes.append(_Crash(task.id, run.id,
                                  f"worker pid {run.worker_pid} is gone (exit status unknown)",
                                  None, tail, None))
        return crashes

    async def _recover_unrecorded(self, board: Board, run: Run, task: Task,
                                  report: CycleReport) -> None:
        """A run whose dispatcher died between the claim and recording the worker's pid: adopt
        the worker if it is running (found by its environment), else release the run at once
        rather than at the lease's expiry — never leave an unknown worker beside a successor."""
        found = await asyncio.to_thread(find_run_worker, run.id, str(board.db.path))
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

    async def _settle_crashes(self, board: Board, crashes: list[_Crash],
                              report: CycleReport) -> None:
        counts = Counter(c.fingerprint for c in crashes if c.fingerprint)
        systemic = {fp for fp, n in counts.items() if n >= self.settings.systemic_threshold}
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
        stamp = now()
        for run, task in await board.active_runs():
            if run.expires_at is None or run.expires_at > stamp:
                continue
            local = run.host == self.host
            tracked = self._workers.get((board.slug, run.id))
            alive = local and (tracked.proc.poll() if tracked is not None
                               else is_same_process(run.worker_pid, run.worker_started_at))
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
        stamp = now()
        for run, task in await board.active_runs():
            limit = task.max_runtime_seconds
            started = run.claimed_at
            if limit is None or started is None or stamp - started < limit:
                continue
            tracked = self._workers.get((board.slug, run.id))
            if tracked is not None:
                await self._terminate(tracked, report)
            elif run.host == self.host and is_same_process(run.worker_pid, run.worker_started_at):
                await WorkerProcess(run.worker_pid or 0, run.worker_started_at).terminate(
                    self.settings.kill_grace_seconds)
            outcome = await board.record_failure(
                task.id, run_id=run.id, kind="timed_out",
                error=f"ran {stamp - started:.0f} s, over the {limit} s limit",
                payload={"max_runtime_seconds": limit, "elapsed": stamp - started})
            if outcome.recorded:
                report.timed_out.append(task.id)

    # ---- spawning -----------------------------------------------------------------------------
    async def _spawn_ready(self, board: Board, report: CycleReport, *, max_new: int | None,
                           dry_run: bool) -> None:
        # max_spawn is a LIVE per-board concurrency cap (S23): the budget is max_spawn minus the
        # tasks running on this board right now (whoever spawned them), not a number of spawns
        # per cycle — counted per cycle, workers would pile up without bound across cycles.
        report.running = await board.count_running()
        report.budget = max(0, self.settings.max_spawn - report.running)
        report.host_budget = max(0, self.settings.host_cap() - self.live_workers())
        room = min(report.budget, report.host_budget)
        if max_new is not None:
            room = min(room, max_new)
        if room <= 0:
            return
        started = 0
        for task in await board.ready_candidates(limit=room * 4 + 20):
            if started >= room:
                break
            assignee = task.assignee or self.settings.default_assignee
            if not assignee:
                continue  # nobody to run it: stays ready for a human to assign
            try:
                profile = self.profiles.load(assignee)
            except KanbanError as exc:
                await self._block(board, task, f"cannot load profile {assignee!r}: {exc}", report,
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
            if await self._spawn(board, task, profile, report):
                started += 1

    async def _block(self, board: Board, task: Task, reason: str, report: CycleReport,
                     dry_run: bool) -> None:
        report.blocked.append({"task_id": task.id, "reason": reason})
        if dry_run:
            return
        try:
            await board.block(task.id, reason, as_operator=True, by="dispatcher")
        except KanbanError as exc:  # it changed under us (claimed elsewhere, …): nothing to do
            log.info("not blocking task %s: %s", task.id, exc)

    def _argv_template(self, profile: Profile) -> list[str]:
        if profile.command is not None:
            return list(profile.command)
        # This very interpreter: the worker must run the code that spawned it, and it skips a
        # PATH lookup on the way to its first model request.
        argv = [sys.executable, "-m", CLI_MODULE, "worker", "run", "--board", "{board}",
                "--task", "{task_id}", "--prompt-file", "{prompt_file}"]
        if profile.name == self.settings.orchestrator_profile:
            argv.append("--orchestrator")
        return argv

    async def _spawn(self, board: Board, task: Task, profile: Profile,
                     report: CycleReport) -> bool:
        try:
            claim = await board.claim(task.id, ttl=self.settings.claim_ttl_seconds,
                                      claimed_by=self.identity, profile=profile.name)
        except NotClaimable:
            return False
        try:
            if task.workspace_kind == "worktree":
                workspace = await asyncio.to_thread(
                    prepare_workspace, board, task, worktree_repo=self.settings.worktree_repo)
            else:
                workspace = prepare_workspace(board, task)
            prompt = prompt_path(board, task.id)
            await self._write_prompt(board, task, prompt)
            values = TemplateValues(task.id, board.slug, str(workspace), str(prompt),
                                    task.model_override or profile.model or "")
            argv = build_argv(self._argv_template(profile), values,
                              model_override=task.model_override,
                              has_worker_skill=profile.has_skill("kanban-worker"))
            env = worker_env(self.base_env, profile_env=profile.env,
                             profile_env_from=profile.env_from, profile_home=profile.home,
                             profile_name=profile.name, board=board.slug, db_path=board.db.path,
                             task_id=task.id, run_id=claim.run_id, lease=claim.lease,
                             workspace=workspace, model=values.model, prompt_file=prompt)
            if profile.api_key_env and profile.api_key_env in self.base_env:
                # The one secret a worker gets: its own profile's endpoint key.
                env[profile.api_key_env] = self.base_env[profile.api_key_env]
            proc = start_worker(SpawnRequest(argv, env, workspace, board.log_path(task.id),
                                             self.settings.log_max_bytes,
                                             self.settings.log_backups, self.settings.platform))
        except (SpawnError, WorkspaceError, OSError) as exc:
            outcome = await board.record_failure(task.id, run_id=claim.run_id,
                                                 kind="spawn_failed", error=str(exc))
            report.spawn_failed.append({"task_id": task.id, "error": str(exc),
                                        "tripped": outcome.tripped})
            return False
        self._track(board.slug, task.id, claim.run_id, proc)
        await board.set_worker(claim.run_id, pid=proc.pid, started_at=proc.started_at,
                               host=self.host)
        report.spawned.append({"task_id": task.id, "run_id": claim.run_id, "pid": proc.pid,
                               "argv": argv})
        return True

    async def _write_prompt(self, board: Board, task: Task, path: Path) -> None:
        text = await board.db.read(lambda tx: build_context(tx, task.id))
        _write_text(path, text)

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
        slugs = self.slugs if self.slugs is not None else [b.slug for b in self.boards.list()]
        return [await self.boards.open(slug) for slug in slugs]

    async def sweep(self, board: Board) -> list[dict[str, Any]]:
        """Clean the scratch workspaces of done tasks left by a dispatcher that died (bounded by
        the workspaces that exist, never a scan of the board)."""
        cleaned: list[dict[str, Any]] = []
        if not board.workspaces_dir.is_dir():
            return cleaned
        busy = {t.task_id for t in self._workers.values() if t.slug == board.slug}
        for entry in board.workspaces_dir.iterdir():
            if not entry.name.isdigit() or int(entry.name) in busy:
                continue
            try:
                task = await board.get_task(int(entry.name))
            except KanbanError:
                continue
            if task.status == "done":
                cleaned.append((await cleanup_completed(
                    board, task, tmux=self.tmux,
                    worktree_repo=self.settings.worktree_repo)).to_dict())
        return cleaned

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set: signal :attr:`ready`, then cycle whenever a board
        changes, a worker exits, or the interval elapses."""
        boards = await self._open_boards()
        helpers = [asyncio.create_task(self._watch_changes(b), name=f"dispatch-changes-{b.slug}")
                   for b in boards]
        helpers.append(asyncio.create_task(self._poll_external(boards), name="dispatch-poll"))
        helpers.append(asyncio.create_task(self._forward_stop(stop), name="dispatch-stop"))
        try:
            for board in boards:
                with contextlib.suppress(KanbanError, OSError):
                    await self.sweep(board)
            self.ready.set()
            while not stop.is_set():
                self._wake.clear()
                for board in boards:
                    if stop.is_set():
                        break
                    try:
                        report = await self.run_cycle(board)
                        if report.busy:
                            log.info("dispatch %s: %s", board.slug, _summary(report))
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("dispatch cycle failed on board %s", board.slug)
                if stop.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.interval_seconds)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.wait(helpers, timeout=self.settings.shutdown_seconds)

    async def _watch_changes(self, board: Board) -> None:
        version = board.changes.version
        while True:
            version = await board.changes.wait(version, None)
            self._wake.set()

    async def _poll_external(self, boards: list[Board]) -> None:
        while True:
            for board in boards:
                try:
                    await board.poll_external()  # bumps board.changes → _watch_changes wakes us
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("polling board %s failed: %s", board.slug, exc)
            await asyncio.sleep(self.settings.poll_seconds)

    async def _forward_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def aclose(self, *, terminate: bool = False) -> None:
        """Stop watching workers. They keep running (a later dispatcher adopts them) unless
        ``terminate`` is set."""
        tracked = list(self._workers.values())
        if terminate:
            await asyncio.gather(*(t.proc.terminate(self.settings.kill_grace_seconds)
                                   for t in tracked))
        for t in tracked:
            self._workers.pop((t.slug, t.run_id), None)
            t.proc.detach()


def _write_text(path: Path, text: str) -> None:
    # A few KB on the board's own disk: cheaper inline than a thread hop on the spawn path.
    write_private_text(path, text)


def _summary(report: CycleReport) -> str:
    parts = []
    for name in ("spawned", "blocked", "spawn_failed", "crashed", "requeued",
                 "protocol_violations", "timed_out", "extended", "reclaimed", "terminated",
                 "adopted", "cleaned"):
        value = getattr(report, name)
        if value:
            parts.append(f"{name}={len(value)}")
    return " ".join(parts) or "idle"


__all__ = ["CycleReport", "DispatchSettings", "Dispatcher", "Run", "default_host_cap",
           "normalise_error"]
