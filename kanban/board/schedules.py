"""Recurring schedules: a task template with a recurrence, and the occurrences made from it.

An occurrence is due at each time the schedule's cron expression names, in its time zone.
:meth:`SchedulesMixin.fire_schedules` (the dispatch loop calls it on the leader) makes each due
occurrence into one task — the template's title, body, assignee, workspace, priority and limits,
subscribed to the schedule's chat destinations — and records it in ``schedule_occurrences``,
whose primary key (schedule, due time) turns a second attempt into a no-op: two gateways on one
PostgreSQL board never make one occurrence twice.

Missed occurrences (the gateway was down, or busy for longer than
:data:`~kanban.timespec.ON_TIME_SECONDS`) follow the schedule's ``catch_up`` policy: ``none``
skips them, ``last`` (the default) runs only the latest, ``all`` runs each (the latest
:data:`~kanban.timespec.MAX_CATCH_UP`). Without ``overlap`` an occurrence is skipped while the
previous occurrence's task is unfinished (not done or archived). Skips are events
(``occurrence_skipped``), never silent. Schedule events have no task (``task_id`` NULL) and
carry ``schedule_id`` in their payload.

All times come from the board's clock (:attr:`BoardCore.clock`), so tests drive them by hand.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kanban.board.outbox import insert_subscription
from kanban.board.shared import BoardCore
from kanban.board.tasks import check_template
from kanban.errors import Conflict, InvalidInput, ScheduleNotFound
from kanban.models import Schedule, Task
from kanban.storage import store
from kanban.storage.tx import Tx
from kanban.timespec import (
    CATCH_UP_POLICIES,
    MAX_CATCH_UP,
    ON_TIME_SECONDS,
    due_between,
    next_after,
    parse_every,
    zone,
)
from kanban.timeutil import now
from kanban.validation import MAX_TITLE, check_opt_text, in_int64

log = logging.getLogger(__name__)

_SELECT = (
    "SELECT s.*, (SELECT o.task_id FROM schedule_occurrences o WHERE o.schedule_id = s.id "
    " AND o.task_id IS NOT NULL ORDER BY o.due_at DESC LIMIT 1) AS last_task_id, "
    "(SELECT COUNT(*) FROM schedule_occurrences o WHERE o.schedule_id = s.id "
    " AND o.outcome = 'created') AS occurrences FROM schedules s")


@dataclass(frozen=True)
class Fired:
    """One occurrence the dispatch loop dealt with: a task made, or a skip and why."""

    schedule_id: int
    due_at: float
    task_id: int | None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schedule_id": self.schedule_id, "due_at": self.due_at,
                "task_id": self.task_id, "skipped": self.skipped}


def _destinations(subscriptions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for sub in subscriptions:
        platform, chat = str(sub.get("platform") or ""), str(sub.get("chat") or "")
        if not platform.strip() or not chat.strip():
            raise InvalidInput("a schedule's subscription needs a platform and a chat")
        entry = {"platform": platform, "chat": chat, "thread": str(sub.get("thread") or ""),
                 "silent": bool(sub.get("silent"))}
        if entry not in out:
            out.append(entry)
    return out


def load_schedule(tx: Tx, schedule_id: int, *, lock: bool = False) -> Schedule:
    if not in_int64(schedule_id):
        raise ScheduleNotFound(schedule_id)
    if lock and tx.for_update:  # locked before it is read: the values read are current
        tx.one("SELECT id FROM schedules WHERE id = ?" + tx.for_update, (schedule_id,))
    row = tx.one(_SELECT + " WHERE s.id = ?", (schedule_id,))
    if row is None:
        raise ScheduleNotFound(schedule_id)
    return Schedule.from_row(row)


def _event(tx: Tx, kind: str, schedule: Schedule, **payload: Any) -> None:
    store.append_event(tx, None, kind, {"schedule_id": schedule.id, "title": schedule.title,
                                        **payload})


def _make_task(tx: Tx, schedule: Schedule, due_at: float, *, by: str) -> int:
    """One occurrence's task from the schedule's template, subscribed like the schedule."""
    stamp = now()
    row = tx.one(
        "INSERT INTO tasks (title, body, status, assignee, priority, created_at, updated_at, "
        "created_by, max_runtime_seconds, max_retries, model_override, skills, workspace_kind, "
        "workspace_path, host_label, schedule_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "RETURNING id",
        (schedule.title, schedule.body, "ready", schedule.assignee, schedule.priority, stamp,
         stamp, by, schedule.max_runtime_seconds, schedule.max_retries,
         schedule.model_override, store.dumps(schedule.skills), schedule.workspace_kind,
         schedule.workspace_path, schedule.host_label, schedule.id))
    task_id = int(row[0])
    store.append_event(tx, task_id, "created", {
        "title": schedule.title, "status": "ready", "assignee": schedule.assignee,
        "parents": [], "created_by": by, "schedule_id": schedule.id, "occurrence_at": due_at})
    cursor = store.last_event_id(tx)  # the subscribers hear what happens from now on
    for sub in schedule.subscriptions:
        insert_subscription(tx, task_id, str(sub["platform"]), str(sub["chat"]),
                            str(sub.get("thread") or ""), schedule.created_by, cursor,
                            int(bool(sub.get("silent"))))
    return task_id


def _unfinished(tx: Tx, schedule_id: int) -> int | None:
    """The task of this schedule's latest occurrence while it is not done or archived."""
    row = tx.one(
        "SELECT t.id FROM schedule_occurrences o JOIN tasks t ON t.id = o.task_id "
        "WHERE o.schedule_id = ? AND t.status NOT IN ('done', 'archived') "
        "ORDER BY o.due_at DESC LIMIT 1", (schedule_id,))
    return int(row[0]) if row is not None else None


def _occur(tx: Tx, schedule: Schedule, due_at: float, *, overlap: bool, by: str) -> Fired | None:
    """Record one occurrence and make its task (or skip it); None when it was recorded
    already (another gateway got there first)."""
    if tx.one("INSERT INTO schedule_occurrences (schedule_id, due_at, outcome, created_at) "
              "VALUES (?,?,?,?) ON CONFLICT DO NOTHING RETURNING schedule_id",
              (schedule.id, due_at, "pending", now())) is None:
        return None
    running = None if overlap else _unfinished(tx, schedule.id)
    if running is not None:
        reason = f"the previous occurrence (task {running}) has not finished"
        tx.execute("UPDATE schedule_occurrences SET outcome = 'skipped' WHERE schedule_id = ? "
                   "AND due_at = ?", (schedule.id, due_at))
        _event(tx, "occurrence_skipped", schedule, due_at=due_at, reason=reason,
               previous_task=running)
        return Fired(schedule.id, due_at, None, reason)
    task_id = _make_task(tx, schedule, due_at, by=by)
    tx.execute("UPDATE schedule_occurrences SET outcome = 'created', task_id = ? "
               "WHERE schedule_id = ? AND due_at = ?", (task_id, schedule.id, due_at))
    return Fired(schedule.id, due_at, task_id)


def _pause_broken(tx: Tx, schedule_id: int, reason: str) -> None:
    try:
        schedule = load_schedule(tx, schedule_id, lock=True)
    except ScheduleNotFound:
        return
    tx.execute("UPDATE schedules SET state = 'paused', updated_at = ? WHERE id = ?",
               (now(), schedule_id))
    _event(tx, "schedule_paused", schedule, reason=f"cannot be evaluated: {reason}")


class SchedulesMixin(BoardCore):
    """Creating and managing schedules; making their due occurrences into tasks."""

    async def create_schedule(
        self, title: str, *, every: str, timezone: str, body: str = "",
        assignee: str | None = None, priority: int = 0, max_runtime_seconds: int | None = None,
        max_retries: int | None = None, model_override: str | None = None,
        skills: Sequence[str] = (), workspace: str = "scratch", host_label: str | None = None,
        catch_up: str = "last", overlap: bool = False, created_by: str | None = None,
        subscriptions: Sequence[Mapping[str, Any]] = (),
    ) -> Schedule:
        """A schedule whose first occurrence is the first time ``every`` names after now.

        ``every``: a cron expression or plain words (:func:`kanban.timespec.parse_every`);
        ``timezone``: the IANA zone it is read in; ``catch_up``: none | last | all;
        ``subscriptions``: chat destinations (``platform``, ``chat``, ``thread``, ``silent``)
        every occurrence's task is subscribed to."""
        fields = check_template(
            self.root, title=title, body=body, assignee=assignee, priority=priority,
            max_runtime_seconds=max_runtime_seconds, max_retries=max_retries,
            model_override=model_override, skills=skills, workspace=workspace,
            host_label=host_label)
        check_opt_text(created_by, "created_by", limit=MAX_TITLE)
        recurrence = parse_every(every)
        tz = zone(timezone)
        if catch_up not in CATCH_UP_POLICIES:
            raise InvalidInput(f"--catch-up must be none, last or all (got {catch_up!r})")
        destinations = _destinations(subscriptions)

        def run(tx: Tx) -> Schedule:
            stamp = now()
            first = next_after(recurrence.cron, tz, self.clock())
            row = tx.one(
                "INSERT INTO schedules (title, body, assignee, priority, every, cron, timezone, "
                "catch_up, overlap, state, next_run_at, max_runtime_seconds, max_retries, "
                "model_override, skills, workspace_kind, workspace_path, host_label, "
                "subscriptions, created_by, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (fields.title, fields.body, fields.assignee, fields.priority, recurrence.every,
                 recurrence.cron, tz.key, catch_up, int(overlap), "active", first,
                 fields.max_runtime_seconds, fields.max_retries, fields.model_override,
                 store.dumps(fields.skills), fields.workspace_kind, fields.workspace_path,
                 fields.host_label, store.dumps(destinations), created_by, stamp, stamp))
            schedule = load_schedule(tx, int(row[0]))
            _event(tx, "schedule_created", schedule, every=schedule.every, cron=schedule.cron,
                   timezone=schedule.timezone, next_run_at=first, created_by=created_by)
            return schedule

        return await self.db.write(run)

    async def get_schedule(self, schedule_id: int) -> Schedule:
        return await self.db.read(lambda tx: load_schedule(tx, schedule_id))

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, the next due first (paused ones last)."""

        def run(tx: Tx) -> list[Schedule]:
            rows = tx.all(_SELECT + " ORDER BY CASE WHEN s.state = 'active' THEN 0 ELSE 1 END, "
                          "s.next_run_at, s.id")
            return [Schedule.from_row(r) for r in rows]

        return await self.db.read(run)

    async def pause_schedule(self, schedule_id: int) -> Schedule:
        """No occurrence is made while paused; tasks already made go on."""
        return await self._set_state(schedule_id, "paused")

    async def resume_schedule(self, schedule_id: int) -> Schedule:
        """Active again from now: the next occurrence is the first one after now (those that
        fell while it was paused are not caught up)."""
        return await self._set_state(schedule_id, "active")

    async def _set_state(self, schedule_id: int, state: str) -> Schedule:
        def run(tx: Tx) -> Schedule:
            schedule = load_schedule(tx, schedule_id, lock=True)
            if schedule.state == state:
                raise Conflict(f"schedule {schedule.ref} is {state} already")
            fields: dict[str, Any] = {"state": state}
            if state == "active":
                fields["next_run_at"] = next_after(schedule.cron, zone(schedule.timezone),
                                                   self.clock())
            sets = ", ".join(f"{column} = ?" for column in fields)
            tx.execute(f"UPDATE schedules SET {sets}, updated_at = ? WHERE id = ?",
                       (*fields.values(), now(), schedule_id))
            changed = load_schedule(tx, schedule_id)
            _event(tx, "schedule_paused" if state == "paused" else "schedule_resumed", changed,
                   next_run_at=changed.next_run_at)
            return changed

        return await self.db.write(run)

    async def remove_schedule(self, schedule_id: int) -> Schedule:
        """Delete a schedule and its occurrence records; the tasks it made stay."""

        def run(tx: Tx) -> Schedule:
            schedule = load_schedule(tx, schedule_id, lock=True)
            tx.execute("DELETE FROM schedule_occurrences WHERE schedule_id = ?", (schedule_id,))
            tx.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
            _event(tx, "schedule_removed", schedule)
            return schedule

        return await self.db.write(run)

    async def subscribe_schedule(self, schedule_id: int, *, platform: str, chat: str,
                                 thread: str | None = None, silent: bool = False,
                                 remove: bool = False) -> Schedule:
        """Add (or with ``remove``, take away) a chat destination every later occurrence's task
        is subscribed to; tasks made already keep their subscriptions."""
        [wanted] = _destinations([{"platform": platform, "chat": chat, "thread": thread,
                                   "silent": silent}])
        same = ("platform", "chat", "thread")

        def run(tx: Tx) -> Schedule:
            schedule = load_schedule(tx, schedule_id, lock=True)
            others = [d for d in schedule.subscriptions
                      if tuple(d.get(k) or "" for k in same) != tuple(wanted[k] for k in same)]
            if remove and len(others) == len(schedule.subscriptions):
                raise Conflict(f"schedule {schedule.ref} does not post to {platform} {chat}"
                               + (f" (thread {thread})" if thread else ""))
            tx.execute("UPDATE schedules SET subscriptions = ?, updated_at = ? WHERE id = ?",
                       (store.dumps(others if remove else [*others, wanted]), now(),
                        schedule_id))
            changed = load_schedule(tx, schedule_id)
            _event(tx, "schedule_unsubscribed" if remove else "schedule_subscribed", changed,
                   platform=platform, chat=chat, thread=thread)
            return changed

        return await self.db.write(run)

    async def run_schedule_now(self, schedule_id: int, *, by: str | None = None) -> Task:
        """One occurrence now, whatever the recurrence says (a person asked for it; a
        previous occurrence still running does not stop it). The schedule's own next time
        stays as it was."""

        def run(tx: Tx) -> Task:
            schedule = load_schedule(tx, schedule_id, lock=True)
            fired = _occur(tx, schedule, self.clock(), overlap=True,
                           by=by or f"schedule {schedule.ref}")
            if fired is None or fired.task_id is None:
                raise Conflict(f"schedule {schedule.ref} made an occurrence this very moment; "
                               "try again")
            return store.load_task(tx, fired.task_id, with_links=True)

        return await self.db.write(run)

    async def next_schedule_at(self) -> float | None:
        """The earliest future due time of an active schedule (epoch seconds), or None: the
        dispatch loop sleeps no longer than that."""

        def run(tx: Tx) -> float | None:
            row = tx.one("SELECT MIN(next_run_at) FROM schedules WHERE state = 'active' "
                         "AND next_run_at > ?", (self.clock(),))
            value = row[0] if row is not None else None
            return float(value) if isinstance(value, int | float) else None

        return await self.db.read(run)

    async def fire_schedules(self) -> list[Fired]:
        """Make every due occurrence of every active schedule (one transaction per schedule;
        see the module docstring for catch-up and overlap). Safe to run in several processes
        at once: each occurrence is made once."""

        def due(tx: Tx) -> list[int]:
            return [int(r[0]) for r in tx.all(
                "SELECT id FROM schedules WHERE state = 'active' AND next_run_at <= ? "
                "ORDER BY next_run_at, id", (self.clock(),))]

        fired: list[Fired] = []
        for schedule_id in await self.db.read(due):
            try:
                fired.extend(await self.db.write(functools.partial(self._fire_one,
                                                                   schedule_id=schedule_id)))
            except (ValueError, InvalidInput) as exc:
                # A row no recurrence can be read from (edited by hand, a zone this host
                # lacks): paused with the reason, so it neither blocks the others nor retries
                # every cycle.
                log.warning("schedule S%s cannot be evaluated: %s; pausing it", schedule_id, exc)
                await self.db.write(functools.partial(_pause_broken, schedule_id=schedule_id,
                                                      reason=str(exc)))
        return fired

    def _fire_one(self, tx: Tx, schedule_id: int) -> list[Fired]:
        at = self.clock()
        try:
            schedule = load_schedule(tx, schedule_id, lock=True)
        except ScheduleNotFound:
            return []  # removed meanwhile
        first = schedule.next_run_at
        if schedule.state != "active" or first is None or first > at:
            return []  # paused meanwhile, or another process made this round already
        tz = zone(schedule.timezone)
        due, more = due_between(schedule.cron, tz, first, at, MAX_CATCH_UP)
        if not due:  # a stored next time the expression does not name (edited by hand)
            due = [first]
        if schedule.catch_up == "all":
            run = due
        elif schedule.catch_up == "last" or at - due[-1] <= ON_TIME_SECONDS:
            run = due[-1:]
        else:
            run = []
        missed = [t for t in due if t not in run]
        if missed or more:
            _event(tx, "occurrence_skipped", schedule, reason="missed",
                   policy=schedule.catch_up, count=len(missed), more_before=more,
                   first=missed[0] if missed else None, last=missed[-1] if missed else None)
        out = [f for f in (_occur(tx, schedule, t, overlap=schedule.overlap,
                                  by=f"schedule {schedule.ref}") for t in run) if f is not None]
        upcoming = next_after(schedule.cron, tz, at)
        tx.execute("UPDATE schedules SET next_run_at = ?, last_run_at = ?, updated_at = ? "
                   "WHERE id = ?", (upcoming, due[-1], now(), schedule_id))
        return out
