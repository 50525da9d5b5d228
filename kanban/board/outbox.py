"""The notification outbox: subscribed events become rows the notifier delivers at least once.

Life of a row (``notify_outbox.state``)::

    pending ──claim──▶ sending ──mark_sent──▶ sent
       ▲                  │
       └──── retry ◀──────┤ mark_failed(retry_at=…)   (transient: backoff, Retry-After)
                          └ mark_failed(retry_at=None) ──▶ failed   (permanent)

* :meth:`OutboxMixin.queue_notifications` turns each enabled subscription's new events of the
  kinds in :data:`NOTIFY_KINDS` into rows, unique per (subscription, event) — the subscription's
  ``last_event_id`` cursor moves in the same transaction, so a restart never queues twice. A
  ``decomposed`` event carries the subscription over to every child.
* :meth:`OutboxMixin.claim_notifications` hands out due rows, at most one per subscription (the
  oldest undelivered one, so a subscription's messages keep their order) and marks them
  ``sending`` under a lease: a notifier killed mid-send leaves a row that becomes due again when
  the lease ends (at-least-once).
* After ``disable_after`` consecutive permanent failures a subscription is disabled, with the
  reason kept on it and a ``subscription_disabled`` event on the task.

Every method reads before it writes, so a notifier woken by a commit that concerns it not at all
does not commit anything itself (which would wake every watcher again).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kanban.board.shared import BoardCore
from kanban.models import Event, Task, loads_json
from kanban.storage import store
from kanban.storage.tx import Tx
from kanban.timeutil import now

# The task events a subscriber hears about: the ends of a run or of the task.
NOTIFY_KINDS: tuple[str, ...] = (
    "completed", "blocked", "gave_up", "crashed", "timed_out", "archived",
)
CARRY_KINDS: tuple[str, ...] = ("decomposed",)
_WATCHED = NOTIFY_KINDS + CARRY_KINDS
_WATCHED_SQL = ",".join(f"'{k}'" for k in _WATCHED)

DEFAULT_LEASE_SECONDS = 120.0
DELIVERIES_SHOWN = 5  # outbox rows listed per subscription by ``subscriptions()``


@dataclass
class OutboxItem:
    """One claimed notification: the row, its subscription's destination, the event and task."""

    id: int
    sub_id: int
    task_id: int
    event_id: int
    kind: str
    attempts: int
    platform: str
    chat: str
    thread: str | None
    silent: bool
    event: Event
    task: Task
    board: str = ""
    receipts: list[dict[str, Any]] = field(default_factory=list)


# A row goes only when no older row of its subscription is still undelivered: order per chat.
_HEAD_OF_LINE = (
    "NOT EXISTS (SELECT 1 FROM notify_outbox p WHERE p.sub_id = o.sub_id AND p.id < o.id "
    "AND p.state IN ('pending','retry','sending'))"
)


# Enabled subscriptions with watched events past their cursor.
_BEHIND = ("FROM notify_subs s WHERE s.disabled_at IS NULL AND EXISTS (SELECT 1 FROM "
           "task_events e WHERE e.task_id = s.task_id AND e.id > s.last_event_id "
           f"AND e.kind IN ({_WATCHED_SQL}))")


class OutboxMixin(BoardCore):
    # ---- queueing -----------------------------------------------------------------------------
    async def queue_notifications(self) -> int:
        """Queue the new subscribed events of every enabled subscription; returns rows added."""
        if await self.db.read(lambda tx: tx.one(f"SELECT 1 {_BEHIND} LIMIT 1")) is None:
            return 0
        return await self.db.write(_queue)

    # ---- delivery -----------------------------------------------------------------------------
    async def next_notification_due(self) -> float | None:
        """When the earliest undelivered row of an enabled subscription becomes due (or None)."""

        def run(tx: Tx) -> float | None:
            row = tx.one(
                "SELECT MIN(o.next_attempt_at) FROM notify_outbox o JOIN notify_subs s "
                "ON s.id = o.sub_id WHERE o.state IN ('pending','retry','sending') AND "
                "s.disabled_at IS NULL AND " + _HEAD_OF_LINE
            )
            return float(row[0]) if row and row[0] is not None else None

        return await self.db.read(run)

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """(undelivered rows of enabled subscriptions, when the oldest of them was queued).
        Rows of a disabled subscription wait for it to be re-enabled and are not counted."""

        def run(tx: Tx) -> tuple[int, float | None]:
            row = tx.one(
                "SELECT COUNT(*), MIN(o.created_at) FROM notify_outbox o JOIN notify_subs s "
                "ON s.id = o.sub_id WHERE o.state IN ('pending','retry','sending') AND "
                "s.disabled_at IS NULL")
            if row is None:
                return 0, None
            return int(row[0] or 0), float(row[1]) if row[1] is not None else None

        return await self.db.read(run)

    async def claim_notifications(
        self, *, limit: int = 32, lease_seconds: float = DEFAULT_LEASE_SECONDS,
        at: float | None = None,
    ) -> list[OutboxItem]:
        """Mark due rows ``sending`` (attempts + 1) and return them, oldest first, at most one per
        subscription. A row not settled within ``lease_seconds`` becomes due again."""
        select = (
            "SELECT o.*, s.platform, s.chat, s.thread, s.silent FROM notify_outbox o "
            "JOIN notify_subs s ON s.id = o.sub_id "
            "WHERE o.state IN ('pending','retry','sending') AND o.next_attempt_at <= ? AND "
            "s.disabled_at IS NULL AND " + _HEAD_OF_LINE
            + " ORDER BY o.next_attempt_at, o.id LIMIT ?"
        )
        if not await self.db.read(lambda tx: tx.all(select, (now() if at is None else at,
                                                              limit))):
            return []

        def run(tx: Tx) -> list[OutboxItem]:
            stamp = now() if at is None else at
            items: list[OutboxItem] = []
            # Several notifiers (gateways on PostgreSQL) share the outbox: a row another one is
            # claiming right now is passed over, and the CAS below re-checks that the row is
            # still due, so a row is handed to exactly one notifier per lease.
            for row in tx.all(select + tx.skip_locked_of("o"), (stamp, limit)):
                cur = tx.execute(
                    "UPDATE notify_outbox SET state='sending', attempts=attempts+1, "
                    "next_attempt_at=? WHERE id=? AND state=? AND next_attempt_at <= ?",
                    (stamp + lease_seconds, row["id"], row["state"], stamp),
                )
                if cur.rowcount != 1:
                    continue
                event_row = tx.one("SELECT * FROM task_events WHERE id = ?", (row["event_id"],))
                task_row = tx.one("SELECT * FROM tasks WHERE id = ?", (row["task_id"],))
                if event_row is None or task_row is None:
                    tx.execute("UPDATE notify_outbox SET state='failed', last_error=? "
                               "WHERE id=?", ("the event or task no longer exists", row["id"]))
                    continue
                items.append(OutboxItem(
                    id=int(row["id"]), sub_id=int(row["sub_id"]), task_id=int(row["task_id"]),
                    event_id=int(row["event_id"]), kind=str(row["kind"]),
                    attempts=int(row["attempts"]) + 1, platform=str(row["platform"]),
                    chat=str(row["chat"]), thread=str(row["thread"]) or None,
                    silent=bool(row["silent"]), event=Event.from_row(event_row),
                    task=Task.from_row(task_row), board=self.slug,
                    receipts=_receipts(row["receipts"]),
                ))
            return items

        return await self.db.write(run, exclusive=False)

    async def release_notification_claims(self) -> int:
        """Make every ``sending`` row due now. Only for a notifier starting up under the home's
        gateway lock: no other notifier can be mid-send, so those rows belong to one that died
        (at-least-once: their message may have gone out already). A board that several hosts
        share (PostgreSQL) releases nothing: another gateway's notifier may be mid-send, and a
        dead one's rows come due by themselves when their lease ends."""
        if self.storage.shared:
            return 0
        probe = "SELECT 1 FROM notify_outbox WHERE state = 'sending' LIMIT 1"
        if await self.db.read(lambda tx: tx.one(probe)) is None:
            return 0

        def run(tx: Tx) -> int:
            cur = tx.execute("UPDATE notify_outbox SET state='retry', next_attempt_at=? "
                             "WHERE state='sending'", (now(),))
            return cur.rowcount

        return await self.db.write(run)

    async def mark_notification_sent(
        self, outbox_id: int, receipts: Sequence[dict[str, Any]]
    ) -> bool:
        """The platform accepted the message: the row is done and the subscription healthy."""

        def run(tx: Tx) -> bool:
            cur = tx.execute(
                "UPDATE notify_outbox SET state='sent', delivered_at=?, receipts=?, "
                "last_error=NULL WHERE id=? AND state='sending'",
                (now(), json.dumps(list(receipts)), outbox_id),
            )
            if cur.rowcount:
                tx.execute("UPDATE notify_subs SET consecutive_failures=0 WHERE id = "
                           "(SELECT sub_id FROM notify_outbox WHERE id=?)", (outbox_id,))
            return cur.rowcount == 1

        return await self.db.write(run, exclusive=False)

    async def mark_notification_failed(
        self, outbox_id: int, error: str, *, retry_at: float | None,
        receipts: Sequence[dict[str, Any]] = (), disable_after: int = 3,
    ) -> bool:
        """Record a failed attempt. ``retry_at`` set: due again then (transient). None: the row
        failed for good; the subscription's permanent-failure count goes up, and at
        ``disable_after`` it is disabled with ``error`` as the reason. True when disabled now."""

        def run(tx: Tx) -> bool:
            row = tx.one("SELECT sub_id, task_id FROM notify_outbox WHERE id=? AND "
                         "state='sending'", (outbox_id,))
            if row is None:
                return False
            state = "retry" if retry_at is not None else "failed"
            tx.execute(
                "UPDATE notify_outbox SET state=?, next_attempt_at=?, last_error=?, receipts=? "
                "WHERE id=?",
                (state, retry_at, error, json.dumps(list(receipts)), outbox_id),
            )
            if retry_at is not None:
                return False
            sub_id, task_id = int(row[0]), int(row[1])
            tx.execute("UPDATE notify_subs SET consecutive_failures=consecutive_failures+1 "
                       "WHERE id=?", (sub_id,))
            sub = tx.one("SELECT consecutive_failures, disabled_at, platform, chat FROM "
                         "notify_subs WHERE id=?", (sub_id,))
            if sub is None or sub[1] is not None or int(sub[0]) < disable_after:
                return False
            reason = f"{int(sub[0])} deliveries failed in a row; last: {error}"
            tx.execute("UPDATE notify_subs SET disabled_at=?, disabled_reason=? WHERE id=?",
                       (now(), reason, sub_id))
            store.append_event(tx, task_id, "subscription_disabled", {
                "subscription": sub_id, "platform": sub[2], "chat": sub[3], "reason": reason})
            return True

        return await self.db.write(run)

    async def outbox(self, *, sub_id: int | None = None, limit: int = 100
                     ) -> list[dict[str, Any]]:
        """Outbox rows, newest first (for views and tests)."""

        def run(tx: Tx) -> list[dict[str, Any]]:
            where, params = ("WHERE sub_id = ?", (sub_id, limit)) if sub_id is not None else (
                "", (limit,))
            rows = tx.all(f"SELECT * FROM notify_outbox {where} ORDER BY id DESC LIMIT ?",
                          params)
            return [outbox_row(r) for r in rows]

        return await self.db.read(run)


def outbox_row(row: Any) -> dict[str, Any]:
    """One ``notify_outbox`` row as plain JSON-able values."""
    return {
        "id": int(row["id"]), "sub_id": int(row["sub_id"]), "task_id": int(row["task_id"]),
        "event_id": int(row["event_id"]), "kind": str(row["kind"]), "state": str(row["state"]),
        "attempts": int(row["attempts"]), "next_attempt_at": row["next_attempt_at"],
        "last_error": row["last_error"], "created_at": row["created_at"],
        "delivered_at": row["delivered_at"], "receipts": _receipts(row["receipts"]),
    }


def recent_deliveries(tx: Tx, sub_id: int, limit: int = DELIVERIES_SHOWN) -> list[dict[str, Any]]:
    rows = tx.all("SELECT * FROM notify_outbox WHERE sub_id = ? ORDER BY id DESC LIMIT ?",
                  (sub_id, limit))
    return [outbox_row(r) for r in rows]


def _receipts(text: object) -> list[dict[str, Any]]:
    value = loads_json(text, [])
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _queue(tx: Tx) -> int:
    """Inside the write transaction: queue every enabled subscription's new events. Carried-over
    subscriptions created here are processed in the same transaction (the loop runs until no
    subscription has watched events past its cursor)."""
    added = 0
    stamp = now()
    for _ in range(64):  # a decomposition chain deeper than this is processed next wake-up
        subs = tx.all(f"SELECT s.* {_BEHIND}")
        if not subs:
            break
        for sub in subs:
            events = tx.all(
                "SELECT * FROM task_events WHERE task_id = ? AND id > ? AND kind IN "
                f"({_WATCHED_SQL}) ORDER BY id", (sub["task_id"], sub["last_event_id"]))
            for row in events:
                event = Event.from_row(row)
                if event.kind in CARRY_KINDS:
                    _carry(tx, sub, event, stamp)
                    continue
                cur = tx.execute(
                    "INSERT INTO notify_outbox (sub_id, task_id, event_id, kind, state, "
                    "next_attempt_at, created_at) VALUES (?,?,?,?,'pending',?,?) "
                    "ON CONFLICT DO NOTHING",
                    (sub["id"], sub["task_id"], event.id, event.kind, stamp, stamp),
                )
                added += cur.rowcount
            last = max(int(r["id"]) for r in events) if events else int(sub["last_event_id"])
            tx.execute("UPDATE notify_subs SET last_event_id = ? WHERE id = ? AND "
                       "last_event_id < ?", (last, sub["id"], last))
    return added


def _carry(tx: Tx, sub: Any, event: Event, stamp: float) -> None:
    """A subscription on a decomposed task follows its children: one message per child's end,
    and the root's own when the whole graph is done."""
    children = event.payload.get("children")
    if not isinstance(children, list):
        return
    for child in children:
        try:
            child_id = int(child)
        except (TypeError, ValueError):
            continue
        if tx.one("SELECT 1 FROM tasks WHERE id = ?", (child_id,)) is None:
            continue
        # The cursor starts at the decomposition: the child's later events are all heard.
        insert_subscription(tx, child_id, sub["platform"], sub["chat"], sub["thread"],
                            sub["created_by"], event.id, sub["silent"], sub["task_id"], stamp)


def insert_subscription(tx: Tx, task_id: int, platform: str, chat: str, thread: str,
                        created_by: str | None, cursor: int, silent: int,
                        carried_from: int | None = None, stamp: float | None = None) -> bool:
    """Add a subscription whose events after ``cursor`` are heard; False when the task already
    had one for that destination."""
    return tx.execute(
        "INSERT INTO notify_subs (task_id, platform, chat, thread, created_by, created_at, "
        "last_event_id, silent, carried_from) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (task_id, platform, chat, thread, created_by, now() if stamp is None else stamp, cursor,
         silent, carried_from),
    ).rowcount == 1
