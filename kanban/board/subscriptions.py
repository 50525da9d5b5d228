"""Chat subscriptions to a task's events (the notifier's input)."""

from __future__ import annotations

from kanban.board.outbox import insert_subscription, recent_deliveries
from kanban.board.shared import BoardCore
from kanban.errors import InvalidInput
from kanban.models import Subscription
from kanban.storage import store
from kanban.storage.tx import Tx


class SubscriptionsMixin(BoardCore):
    async def subscribe(
        self, task_id: int, *, platform: str, chat: str, thread: str | None = None,
        created_by: str | None = None, silent: bool = False,
    ) -> Subscription:
        """Subscribe a chat destination to a task's events (idempotent). Only events after this
        moment are delivered. Subscribing again re-enables a subscription the notifier disabled.
        ``silent`` asks platforms that can to deliver without a notification sound."""
        if not platform.strip() or not chat.strip():
            raise InvalidInput("a subscription needs a platform and a chat")

        def run(tx: Tx) -> Subscription:
            store.load_task(tx, task_id)
            cursor = store.last_event_id(tx)
            if insert_subscription(tx, task_id, platform, chat, thread or "", created_by,
                                   cursor, int(silent)):
                store.append_event(tx, task_id, "subscribed",
                                   {"platform": platform, "chat": chat, "thread": thread})
            else:
                revived = tx.execute(
                    "UPDATE notify_subs SET disabled_at=NULL, disabled_reason=NULL, "
                    "consecutive_failures=0, last_event_id=?, silent=? WHERE task_id=? AND "
                    "platform=? AND chat=? AND thread=? AND disabled_at IS NOT NULL",
                    (cursor, int(silent), task_id, platform, chat, thread or ""))
                if revived.rowcount:
                    store.append_event(tx, task_id, "subscribed", {
                        "platform": platform, "chat": chat, "thread": thread, "revived": True})
            row = tx.one(
                "SELECT * FROM notify_subs WHERE task_id=? AND platform=? AND chat=? AND thread=?",
                (task_id, platform, chat, thread or ""),
            )
            assert row is not None
            return Subscription.from_row(row)

        return await self.db.write(run)

    async def unsubscribe(
        self, task_id: int, *, platform: str, chat: str, thread: str | None = None
    ) -> bool:
        def run(tx: Tx) -> bool:
            store.load_task(tx, task_id)
            cur = tx.execute(
                "DELETE FROM notify_subs WHERE task_id=? AND platform=? AND chat=? AND thread=?",
                (task_id, platform, chat, thread or ""),
            )
            if cur.rowcount:
                store.append_event(tx, task_id, "unsubscribed",
                                   {"platform": platform, "chat": chat, "thread": thread})
            return cur.rowcount > 0

        return await self.db.write(run)

    async def subscriptions(self, task_id: int | None = None) -> list[Subscription]:
        def run(tx: Tx) -> list[Subscription]:
            if task_id is None:
                rows = tx.all("SELECT * FROM notify_subs ORDER BY task_id, id")
            else:
                store.load_task(tx, task_id)
                rows = tx.all("SELECT * FROM notify_subs WHERE task_id = ? ORDER BY id",
                              (task_id,))
            subs = [Subscription.from_row(r) for r in rows]
            for sub in subs:
                sub.deliveries = recent_deliveries(tx, sub.id)
            return subs

        return await self.db.read(run)
