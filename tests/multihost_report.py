"""What a multi-host simulation is asked to do (:class:`SimSpec`) and what it found
(:class:`SimReport`), for tests/multihost_harness.py, its test and bench/multihost.py."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from gateway.notifier.format import HEADLINES

CHAT_BASE = 100_000  # a subscribed task's chat id is CHAT_BASE + task id


@dataclass(frozen=True)
class SimSpec:
    tasks: int = 2000
    subscribed: int = 200
    gateways: int = 2
    dispatchers: int = 3
    layer_width: int = 100  # tasks per DAG layer; parents come from the two layers before
    max_parents: int = 3
    max_spawn: int = 8  # the board's live cap, all dispatchers together
    max_spawn_host: int = 4  # one dispatcher's cap
    claim_ttl_seconds: float = 5.0  # short, so a dead host's claims are reclaimed in seconds
    kill_dispatcher: bool = True
    kill_gateway: bool = True
    restart_after_seconds: float = 1.0  # the killed gateway's host comes back this much later
    seed: int = 0
    within: float = 900.0


@dataclass
class SimReport:
    """What happened, as counts and lists; empty lists mean "no violation"."""

    spec: SimSpec
    namespace: str
    separate_hosts: bool
    wall_seconds: float = 0.0
    setup_seconds: float = 0.0
    children_cpu_seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    completed_events_per_task: Counter[int] = field(default_factory=Counter)  # count → tasks
    completed_runs_per_task: Counter[int] = field(default_factory=Counter)
    runs_by_status: Counter[str] = field(default_factory=Counter)
    completed_by_host: Counter[str] = field(default_factory=Counter)
    event_kinds: Counter[str] = field(default_factory=Counter)
    links: int = 0
    gate_violations: list[tuple[int, int, str]] = field(default_factory=list)
    metadata_mismatches: list[tuple[int, str, str]] = field(default_factory=list)
    active_runs_left: int = 0
    run_seconds: list[float] = field(default_factory=list)  # claimed → ended, completed runs
    killed_dispatcher: str | None = None
    killed_dispatcher_runs: dict[str, int] = field(default_factory=dict)  # outcome → runs
    stranded_runs: list[int] = field(default_factory=list)  # active, their worker killed
    stranded_outcomes: dict[str, int] = field(default_factory=dict)
    killed_gateway: str | None = None
    killed_mid_send: bool = False
    interrupted_rows: list[int] = field(default_factory=list)  # outbox rows `sending` at the kill
    subscribed: int = 0
    outbox_states: Counter[str] = field(default_factory=Counter)
    notified_kinds: Counter[str] = field(default_factory=Counter)  # outbox rows per event kind
    deliveries_per_notice: Counter[int] = field(default_factory=Counter)  # copies → rows
    sends_by_host: Counter[str] = field(default_factory=Counter)
    missing_notifications: list[tuple[int, str]] = field(default_factory=list)  # (task, kind)
    stray_notifications: list[tuple[int, str]] = field(default_factory=list)  # (chat, text)
    explained_duplicates: list[tuple[int, str]] = field(default_factory=list)
    unexplained_duplicates: list[tuple[tuple[int, str], list[str]]] = field(
        default_factory=list)
    polls_after_kill: dict[str, int] = field(default_factory=dict)
    # host → rows `release_notification_claims` made due, per start that released any (its log)
    released_at_start: dict[str, list[int]] = field(default_factory=dict)

    @property
    def tasks_per_second(self) -> float:
        return self.spec.tasks / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self) -> str:
        runs = sorted(self.run_seconds)
        p50 = statistics.median(runs) if runs else 0.0
        p95 = runs[int(0.95 * (len(runs) - 1))] if runs else 0.0
        return "\n".join([
            f"multi-host simulation (namespace {self.namespace}, seed {self.spec.seed}, "
            f"{'separate host names' if self.separate_hosts else 'one shared host name'})",
            f"  {self.spec.tasks} tasks, {self.links} links, {self.spec.gateways} gateways, "
            f"{self.spec.dispatchers} dispatchers, max_spawn {self.spec.max_spawn}, "
            f"claim TTL {self.spec.claim_ttl_seconds:g} s",
            f"  setup {self.setup_seconds:.1f} s; run {self.wall_seconds:.1f} s = "
            f"{self.tasks_per_second:.1f} tasks/s; children CPU {self.children_cpu_seconds:.0f} s"
            f" = {self.children_cpu_seconds / max(1, self.spec.tasks):.3f} s per task",
            f"  claim→end of completed runs: p50 {p50:.2f} s, p95 {p95:.2f} s",
            f"  statuses {dict(self.statuses)}; runs {dict(self.runs_by_status)}",
            f"  completed events per task {dict(self.completed_events_per_task)}; completed "
            f"runs per task {dict(self.completed_runs_per_task)}",
            f"  completed by host {dict(sorted(self.completed_by_host.items()))}",
            f"  events {dict(sorted(self.event_kinds.items()))}",
            f"  parent-gate violations {len(self.gate_violations)}; metadata/run host "
            f"mismatches {len(self.metadata_mismatches)}; active runs left "
            f"{self.active_runs_left}",
            f"  killed dispatcher {self.killed_dispatcher}: its runs then ended "
            f"{self.killed_dispatcher_runs}; runs stranded by killing their worker "
            f"{len(self.stranded_runs)}, ended {self.stranded_outcomes}",
            f"  killed gateway {self.killed_gateway} (mid-send: {self.killed_mid_send}; rows "
            f"sending at the kill: {self.interrupted_rows}); getUpdates after the kill "
            f"{self.polls_after_kill}",
            f"  notifications: {self.subscribed} subscribed, outbox {dict(self.outbox_states)} "
            f"{dict(self.notified_kinds)}, copies per (task, event) "
            f"{dict(self.deliveries_per_notice)}, by host "
            f"{dict(sorted(self.sends_by_host.items()))}",
            f"  outbox rows a starting notifier released {self.released_at_start}",
            f"  duplicates explained by the mid-send kill {self.explained_duplicates}; "
            f"unexplained {self.unexplained_duplicates}; missing {self.missing_notifications}; "
            f"stray {self.stray_notifications}",
        ])


def notice_of(chat: int, text: str) -> tuple[int, str] | None:
    """(task id, event kind) of a notification sent to a subscribed task's chat."""
    task_id = chat - CHAT_BASE
    for kind, headline in HEADLINES.items():
        if text.startswith(f"{headline} · #{task_id} "):
            return task_id, kind
    return None
