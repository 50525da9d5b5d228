"""Plain values returned by the kernel.

Rows are read tolerantly: one corrupt row never fails a view.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kanban.storage.tx import Row
from kanban.timeutil import to_epoch

log = logging.getLogger(__name__)

Status = Literal["triage", "todo", "ready", "running", "blocked", "done", "archived"]
STATUSES: tuple[str, ...] = ("triage", "todo", "ready", "running", "blocked", "done", "archived")
SATISFIED: tuple[str, ...] = ("done", "archived")
TERMINAL: tuple[str, ...] = ("done", "archived")

# Who put a task in `blocked`: a human (operator or --initial-status blocked), the worker itself,
# or the circuit breaker. Only worker blocks are lifted automatically when parents finish.
BLOCKED_BY = ("human", "worker", "breaker")

WORKSPACE_KINDS = ("scratch", "dir", "worktree")


def loads_json(text: object, default: Any) -> Any:
    if text is None or text == "":
        return default
    # Most rows hold empty skills and metadata: a board of 10,000 tasks skips 20,000 parses.
    if text == "[]":
        return []
    if text == "{}":
        return {}
    try:
        return json.loads(str(text))
    except (TypeError, ValueError):
        return default


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def workspace_spec(kind: str, path: str | None) -> str:
    """A workspace as ``--workspace`` spells it: ``scratch``, ``dir:PATH``, ``worktree[:PATH]``."""
    if kind == "dir":
        return f"dir:{path}"
    if kind == "worktree" and path:
        return f"worktree:{path}"
    return kind


@dataclass
class Task:
    id: int
    title: str
    body: str
    status: str
    assignee: str | None
    priority: int
    created_at: float | None
    updated_at: float | None
    started_at: float | None
    completed_at: float | None
    created_by: str | None
    consecutive_failures: int
    last_failure_error: str | None
    max_runtime_seconds: int | None
    max_retries: int | None
    model_override: str | None
    skills: list[str]
    workspace_kind: str
    workspace_path: str | None
    result: str | None
    summary: str | None
    metadata: dict[str, Any]
    idempotency_key: str | None
    blocked_by: str | None
    blocked_reason: str | None
    current_run_id: int | None
    protocol_violations: int = 0
    decomposed_at: float | None = None
    decompose_failed_at: float | None = None
    decompose_error: str | None = None
    not_before: float | None = None  # not claimable before this time (retry back-off)
    consecutive_requeues: int = 0
    host_label: str | None = None  # only a dispatcher with this label claims it (None: any)
    schedule_id: int | None = None  # the schedule whose occurrence made it
    parents: list[int] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    corrupt: str | None = None

    @property
    def workspace_spec(self) -> str:
        return workspace_spec(self.workspace_kind, self.workspace_path)

    @property
    def waiting_until(self) -> float | None:
        """The time a task made with ``--at``/``--in`` waits for (its ``not_before`` while no
        failure or requeue streak made that a back-off instead)."""
        if self.consecutive_failures or self.consecutive_requeues:
            return None
        return self.not_before

    @property
    def artifacts(self) -> list[str]:
        value = self.metadata.get("artifacts", [])
        return [str(v) for v in value] if isinstance(value, list) else []

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["corrupt"] is None:
            data.pop("corrupt")
        return data

    @classmethod
    def from_row(cls, row: Row) -> Task:
        # One dict per row: sqlite3.Row's lookup by name scans the column list every time.
        get = dict(zip(row.keys(), tuple(row), strict=True)).get

        try:
            skills = loads_json(get("skills"), [])
            metadata = loads_json(get("metadata"), {})
            return cls(
                id=int(row["id"]),
                title=str(get("title") or ""),
                body=str(get("body") or ""),
                status=str(get("status") or "todo"),
                assignee=_opt_str(get("assignee")),
                priority=_int(get("priority")),
                created_at=to_epoch(get("created_at")),
                updated_at=to_epoch(get("updated_at")),
                started_at=to_epoch(get("started_at")),
                completed_at=to_epoch(get("completed_at")),
                created_by=_opt_str(get("created_by")),
                consecutive_failures=_int(get("consecutive_failures")),
                last_failure_error=_opt_str(get("last_failure_error")),
                max_runtime_seconds=_opt_int(get("max_runtime_seconds")),
                max_retries=_opt_int(get("max_retries")),
                model_override=_opt_str(get("model_override")),
                skills=[str(s) for s in skills] if isinstance(skills, list) else [],
                workspace_kind=str(get("workspace_kind") or "scratch"),
                workspace_path=_opt_str(get("workspace_path")),
                result=_opt_str(get("result")),
                summary=_opt_str(get("summary")),
                metadata=metadata if isinstance(metadata, dict) else {},
                idempotency_key=_opt_str(get("idempotency_key")),
                blocked_by=_opt_str(get("blocked_by")),
                blocked_reason=_opt_str(get("blocked_reason")),
                current_run_id=_opt_int(get("current_run_id")),
                protocol_violations=_int(get("protocol_violations")),
                decomposed_at=to_epoch(get("decomposed_at")),
                decompose_failed_at=to_epoch(get("decompose_failed_at")),
                decompose_error=_opt_str(get("decompose_error")),
                not_before=to_epoch(get("not_before")),
                consecutive_requeues=_int(get("consecutive_requeues")),
                host_label=_opt_str(get("host_label")),
                schedule_id=_opt_int(get("schedule_id")),
            )
        except Exception as exc:  # a corrupt row must never fail a board view
            log.warning("task row %r is unreadable: %s", get("id"), exc)
            return cls.placeholder(_int(get("id"), -1), f"unreadable row: {exc}")

    @classmethod
    def placeholder(cls, task_id: int, why: str) -> Task:
        return cls(
            id=task_id, title="(unreadable task)", body="", status="blocked", assignee=None,
            priority=0, created_at=None, updated_at=None, started_at=None, completed_at=None,
            created_by=None, consecutive_failures=0, last_failure_error=None,
            max_runtime_seconds=None, max_retries=None, model_override=None, skills=[],
            workspace_kind="scratch", workspace_path=None, result=None, summary=None,
            metadata={}, idempotency_key=None, blocked_by=None, blocked_reason=None,
            current_run_id=None, corrupt=why,
        )


@dataclass
class Run:
    id: int
    task_id: int
    status: str
    lease: str
    claimed_by: str | None
    profile: str | None
    claimed_at: float | None
    expires_at: float | None
    last_heartbeat_at: float | None
    ended_at: float | None
    worker_pid: int | None
    worker_started_at: float | None
    host: str | None
    exit_code: int | None
    error: str | None
    workspace: str | None
    # What the worker said when this run completed or blocked (a blocked run's summary is the
    # reason); each attempt of a retried task keeps its own.
    summary: str | None = None
    result: str | None = None
    metadata: dict[str, Any] | None = None
    # The dispatcher gave this run the right to create tasks (the orchestrator profile's runs).
    may_create: bool = False

    def to_dict(self, *, with_lease: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_lease:
            data.pop("lease")
        return data

    @classmethod
    def from_row(cls, row: Row) -> Run:
        get = dict(zip(row.keys(), tuple(row), strict=True)).get
        metadata = loads_json(get("metadata"), None)
        return cls(
            id=int(row["id"]),
            task_id=int(row["task_id"]),
            status=str(row["status"]),
            lease=str(row["lease"]),
            claimed_by=_opt_str(row["claimed_by"]),
            profile=_opt_str(row["profile"]),
            claimed_at=to_epoch(row["claimed_at"]),
            expires_at=to_epoch(row["expires_at"]),
            last_heartbeat_at=to_epoch(row["last_heartbeat_at"]),
            ended_at=to_epoch(row["ended_at"]),
            worker_pid=_opt_int(row["worker_pid"]),
            worker_started_at=to_epoch(row["worker_started_at"]),
            host=_opt_str(row["host"]),
            exit_code=_opt_int(row["exit_code"]),
            error=_opt_str(row["error"]),
            workspace=_opt_str(row["workspace"]),
            summary=_opt_str(get("summary")),
            result=_opt_str(get("result")),
            metadata=metadata if isinstance(metadata, dict) else None,
            may_create=bool(get("may_create") or 0),
        )


@dataclass
class Comment:
    id: int
    task_id: int
    author: str
    author_kind: str
    body: str
    created_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Row) -> Comment:
        return cls(
            id=int(row["id"]), task_id=int(row["task_id"]), author=str(row["author"]),
            author_kind=str(row["author_kind"]), body=str(row["body"]),
            created_at=to_epoch(row["created_at"]),
        )


@dataclass
class Event:
    id: int
    task_id: int | None
    run_id: int | None
    kind: str
    payload: dict[str, Any]
    created_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "task_id": self.task_id, "run_id": self.run_id, "kind": self.kind,
            "payload": self.payload, "created_at": self.created_at,
        }

    @classmethod
    def from_row(cls, row: Row) -> Event:
        payload = loads_json(row["payload"], {})
        return cls(
            id=int(row["id"]), task_id=_opt_int(row["task_id"]), run_id=_opt_int(row["run_id"]),
            kind=str(row["kind"]), payload=payload if isinstance(payload, dict) else {},
            created_at=to_epoch(row["created_at"]),
        )


@dataclass(frozen=True)
class Claim:
    task_id: int
    run_id: int
    lease: str
    workspace: str | None
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id, "run_id": self.run_id, "lease": self.lease,
            "workspace": self.workspace, "expires_at": self.expires_at,
        }


@dataclass
class Subscription:
    id: int
    task_id: int
    platform: str
    chat: str
    thread: str | None
    created_by: str | None
    created_at: float | None
    last_event_id: int
    silent: bool = False
    consecutive_failures: int = 0
    disabled_at: float | None = None
    disabled_reason: str | None = None
    carried_from: int | None = None  # the decomposed task this subscription was carried from
    # The latest outbox rows of this subscription (state, kind, attempts, receipts, last error).
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Row) -> Subscription:
        get = dict(zip(row.keys(), tuple(row), strict=True)).get
        return cls(
            id=int(row["id"]), task_id=int(row["task_id"]), platform=str(row["platform"]),
            chat=str(row["chat"]), thread=(str(row["thread"]) or None),
            created_by=_opt_str(row["created_by"]), created_at=to_epoch(row["created_at"]),
            last_event_id=_int(row["last_event_id"]),
            silent=bool(_int(get("silent"))),
            consecutive_failures=_int(get("consecutive_failures")),
            disabled_at=to_epoch(get("disabled_at")),
            disabled_reason=_opt_str(get("disabled_reason")),
            carried_from=_opt_int(get("carried_from")),
        )


@dataclass
class TaskDetail:
    task: Task
    comments: list[Comment]
    runs: list[Run]
    events: list[Event]

    def to_dict(self) -> dict[str, Any]:
        data = self.task.to_dict()
        data["comments"] = [c.to_dict() for c in self.comments]
        data["runs"] = [r.to_dict() for r in self.runs]
        data["events"] = [e.to_dict() for e in self.events]
        return data


SCHEDULE_STATES: tuple[str, ...] = ("active", "paused")


@dataclass
class Schedule:
    """A recurring task: the template each occurrence is made from, and when the next is due.

    ``every`` is the recurrence as the user wrote it, ``cron`` the expression it stands for,
    both read in ``timezone``. ``subscriptions`` are the chat destinations (``platform``,
    ``chat``, ``thread``, ``silent``) each occurrence's task is subscribed to."""

    id: int
    title: str
    body: str
    assignee: str | None
    priority: int
    every: str
    cron: str
    timezone: str
    catch_up: str
    overlap: bool
    state: str
    next_run_at: float | None
    last_run_at: float | None
    max_runtime_seconds: int | None
    max_retries: int | None
    model_override: str | None
    skills: list[str]
    workspace_kind: str
    workspace_path: str | None
    host_label: str | None
    subscriptions: list[dict[str, Any]]
    created_by: str | None
    created_at: float | None
    last_task_id: int | None = None  # the task of the latest created occurrence
    occurrences: int = 0  # occurrences that made a task

    @property
    def ref(self) -> str:
        return f"S{self.id}"

    @property
    def workspace_spec(self) -> str:
        return workspace_spec(self.workspace_kind, self.workspace_path)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ref": self.ref}

    @classmethod
    def from_row(cls, row: Row) -> Schedule:
        get = dict(zip(row.keys(), tuple(row), strict=True)).get
        skills = loads_json(get("skills"), [])
        subs = loads_json(get("subscriptions"), [])
        return cls(
            id=int(row["id"]), title=str(get("title") or ""), body=str(get("body") or ""),
            assignee=_opt_str(get("assignee")), priority=_int(get("priority")),
            every=str(get("every") or ""), cron=str(get("cron") or ""),
            timezone=str(get("timezone") or "UTC"), catch_up=str(get("catch_up") or "last"),
            overlap=bool(_int(get("overlap"))), state=str(get("state") or "active"),
            next_run_at=to_epoch(get("next_run_at")), last_run_at=to_epoch(get("last_run_at")),
            max_runtime_seconds=_opt_int(get("max_runtime_seconds")),
            max_retries=_opt_int(get("max_retries")),
            model_override=_opt_str(get("model_override")),
            skills=[str(s) for s in skills] if isinstance(skills, list) else [],
            workspace_kind=str(get("workspace_kind") or "scratch"),
            workspace_path=_opt_str(get("workspace_path")),
            host_label=_opt_str(get("host_label")),
            subscriptions=[s for s in subs if isinstance(s, dict)] if isinstance(subs, list)
            else [],
            created_by=_opt_str(get("created_by")), created_at=to_epoch(get("created_at")),
            last_task_id=_opt_int(get("last_task_id")), occurrences=_int(get("occurrences")),
        )
