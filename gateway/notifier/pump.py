"""The notifier: drains each board's outbox into the chat platforms, at least once.

One pass (:meth:`Notifier.pump`), per board: queue the subscriptions' new terminal events
(``Board.queue_notifications``), then claim due rows and deliver them — every subscription's row
concurrently, so one slow or failing chat never holds up another. A delivery is a sequence of
steps (the message, the image album, each other file, the long result); each step's receipts are
stored with the row, so a retry after a transient failure repeats only the steps that did not go
out. A row is marked sent only once every step was accepted (a receipt), or refused for good
(an oversized or missing file is named in the message, not retried).

:meth:`Notifier.run` waits on the boards' change signal (this process's commits, and other
processes' commits seen by the daemon's ``PRAGMA data_version`` poll) or on the next retry time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from gateway.notifier.format import refusal_line, render
from gateway.notifier.outgoing_files import (
    artifact_paths,
    build_policy,
    has_declared_artifacts,
    screen,
)
from kanban.backoff import Backoff
from kanban.board import Board, ChangeSignal
from kanban.board.outbox import NOTIFY_KINDS, OutboxItem
from kanban.errors import KanbanError
from kanban.models import Task
from kanban.timeutil import now
from platforms.base import Destination, PlatformAdapter
from platforms.delivery import DeliveryPolicy, deliver_files
from platforms.errors import PlatformError
from platforms.files import partition_files
from platforms.receipts import Receipt, ReceiptStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotifierSettings:
    tick_seconds: float = 5.0  # safety net; commits and retry times wake the notifier sooner
    lease_seconds: float = 120.0  # a claimed row not settled by then is due again
    send_timeout_seconds: float = 60.0  # one step (a message, an album, a file)
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    max_attempts: int = 12  # transient failures this many times in a row count as permanent
    disable_after: int = 3  # permanent failures in a row that disable a subscription
    batch: int = 32


@dataclass(frozen=True)
class DeliverySettings:
    """Where files may come from, beyond each board's workspaces and attachments."""

    relayboard_home: Path
    config_file: Path | None = None
    extra_roots: tuple[Path, ...] = ()
    user_home: Path | None = None  # None: the current user's home
    max_bytes: int | None = None


@dataclass
class _Outcome:
    receipts: list[dict[str, Any]] = field(default_factory=list)
    transient: str | None = None
    retry_after: float | None = None
    permanent: str | None = None


Step = tuple[str, Callable[[], Awaitable[list[Receipt]]]]


class DeliveryObserver(Protocol):
    """What the notifier reports as it goes (the gateway's metrics)."""

    def sent(self, platform: str, receipts: Sequence[Receipt]) -> None:
        """Every send's receipts, as they come back."""

    def notified(self, item: OutboxItem) -> None:
        """A row delivered for good."""


def _record(step: str, receipt: Receipt) -> dict[str, Any]:
    return {"step": step, "status": receipt.status.value, "name": receipt.name,
            "message_ids": list(receipt.message_ids), "reason": receipt.reason,
            "retryable": receipt.retryable}


class Notifier:
    def __init__(
        self,
        boards: Callable[[], Sequence[Board]],
        changes: ChangeSignal,
        adapters: Mapping[str, PlatformAdapter],
        delivery: DeliverySettings,
        settings: NotifierSettings | None = None,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.boards = boards
        self.observer = observer
        self.changes = changes
        self.adapters = adapters
        self.delivery = delivery
        self.settings = settings or NotifierSettings()
        self._backoff = Backoff(base=self.settings.backoff_base, cap=self.settings.backoff_cap)
        self.delivered = 0
        self.failed = 0
        self.ready = anyio.Event()

    # ---- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until cancelled. Rows a previous notifier left mid-send are due at once: the
        daemon holds the home's lock, so their sender is gone."""
        released: set[str] = set()
        self.ready.set()
        while True:
            for board in self.boards():
                if board.slug not in released:
                    released.add(board.slug)
                    if count := await board.release_notification_claims():
                        log.info("%d notification(s) interrupted by a stop on board %s are "
                                 "sent again", count, board.slug)
            version = self.changes.version
            await self.pump()
            timeout = self.settings.tick_seconds
            for board in self.boards():
                due = await board.next_notification_due()
                if due is not None:
                    timeout = min(timeout, max(0.01, due - now()))
            await self.changes.wait(version, timeout)

    async def pump(self) -> int:
        """Queue and deliver everything due on every board; returns the rows settled."""
        settled = 0
        for board in list(self.boards()):
            await board.queue_notifications()
            while items := await board.claim_notifications(
                    limit=self.settings.batch, lease_seconds=self.settings.lease_seconds):
                async with anyio.create_task_group() as group:
                    for item in items:
                        group.start_soon(self._deliver_guarded, board, item,
                                         name=f"notify-{board.slug}-{item.id}")
                settled += len(items)
        return settled

    async def _deliver_guarded(self, board: Board, item: OutboxItem) -> None:
        try:
            await self.deliver(board, item)
        except Exception:
            # The row stays `sending` and becomes due again when its lease ends.
            log.exception("notification %s (task #%s) failed unexpectedly", item.id,
                          item.task_id, extra=_fields(board, item))

    # ---- one row ------------------------------------------------------------------------------
    async def deliver(self, board: Board, item: OutboxItem) -> None:
        adapter = self.adapters.get(item.platform)
        if adapter is None:
            await self._settle(board, item, _Outcome(
                permanent=f"platform {item.platform!r} is not enabled in this gateway"))
            return
        if await self._superseded(board, item):
            # The same failure tripped the breaker: its ``gave_up`` (next in this chat's queue)
            # says it all, naming the last error; two messages for one crash would be noise.
            await board.mark_notification_sent(item.id, [{
                "step": "superseded", "status": "skipped", "name": None, "message_ids": [],
                "reason": "the gave_up message for the same failure says it",
                "retryable": False}])
            return
        dest = Destination(item.platform, item.chat, item.thread, silent=item.silent)
        files = (artifact_paths(item.event, user_home=self.delivery.user_home)
                 if item.kind == "completed" else [])
        # Paths a worker merely wrote in its result or summary text may only be the task's
        # own files: delivery.allowed_roots admit declared artifacts, never a mentioned path.
        policy = self._policy(board, item.task,
                              mentioned=not has_declared_artifacts(item.event))
        try:
            # Made on another host (a board on PostgreSQL): written here from the database first.
            files = await board.local_artifacts(item.task_id, files)
        except KanbanError as exc:
            # Retried with back-off like a platform's transient failure (bounded by
            # max_attempts), rather than sent with the files named missing.
            await self._settle(board, item, _Outcome(
                transient=f"the task's files could not be written here: {exc}"))
            return
        screened = screen(files, policy, adapter)
        rendered = render(item.event, item.task, screened.refused)
        outcome = _Outcome(receipts=[_record(f"refused:{r.name}", r) for r in screened.refused])
        done = {r["step"] for r in item.receipts if r.get("status") == "delivered"}
        outcome.receipts.extend(r for r in item.receipts if r.get("step") in done)

        late: list[Receipt] = []  # files refused while uploading
        for step, call in self._steps(adapter, dest, policy, rendered.text, rendered.result,
                                      screened.accepted):
            if step in done:
                continue
            receipts = await self._run_step(call)
            if self.observer is not None:
                self.observer.sent(item.platform, receipts)
            outcome.receipts.extend(_record(step, r) for r in receipts)
            failed = [r for r in receipts if not r.ok]
            transient = [r for r in failed if r.status is ReceiptStatus.FAILED and r.retryable]
            if transient:
                outcome.transient = transient[0].reason or "temporary failure"
                waits = [r.retry_after for r in transient if r.retry_after is not None]
                outcome.retry_after = max(waits) if waits else None
                break
            if step == "message" and failed:
                outcome.permanent = failed[0].reason or failed[0].status.value
                break
            if step != "message" and step != "result":
                late.extend(failed)
        if late and outcome.transient is None and outcome.permanent is None \
                and "notice" not in done:
            # Files the platform itself refused on upload (the screen above names those the
            # policy refuses, in the message): said in one more message, a line per file.
            receipts = await self._run_step(
                lambda: self._notice(adapter, dest, refusal_line(late)))
            outcome.receipts.extend(_record("notice", r) for r in receipts)
        await self._settle(board, item, outcome)

    @staticmethod
    async def _notice(adapter: PlatformAdapter, dest: Destination, text: str) -> list[Receipt]:
        return [await adapter.send(dest, text)]

    async def _superseded(self, board: Board, item: OutboxItem) -> bool:
        """True for a ``crashed``/``timed_out`` event followed, in the same transaction, by the
        ``gave_up`` it caused (same run, same failure kind)."""
        if item.kind not in ("crashed", "timed_out"):
            return False
        later = await board.events(task_id=item.task_id, since=item.event_id, limit=5)
        for event in later:
            if event.kind == "gave_up":
                return (event.run_id == item.event.run_id
                        and event.payload.get("kind") == item.kind)
            if event.kind in NOTIFY_KINDS:
                return False
        return False

    def _steps(self, adapter: PlatformAdapter, dest: Destination, policy: DeliveryPolicy,
               text: str, result: str | None, files: Sequence[Path]) -> list[Step]:
        async def send_text(body: str) -> list[Receipt]:
            return [await adapter.send(dest, body)]

        async def send_files(paths: Sequence[Path]) -> list[Receipt]:
            return await deliver_files(adapter, dest, paths, policy=policy)

        steps: list[Step] = [("message", lambda: send_text(text))]
        part = partition_files(files)
        if part.images:
            steps.append(("images", lambda: send_files(part.images)))
        for path in [*part.videos, *part.audio, *part.documents]:
            steps.append((f"file:{path.name}", functools.partial(send_files, [path])))
        if result:
            steps.append(("result", lambda: send_text(result)))
        return steps

    async def _run_step(self, call: Callable[[], Awaitable[list[Receipt]]]) -> list[Receipt]:
        try:
            with anyio.fail_after(self.settings.send_timeout_seconds):
                return await call()
        except TimeoutError:
            return [Receipt.failed("the platform did not answer in time", retryable=True)]
        except PlatformError as exc:
            return [Receipt.from_error(exc)]
        except Exception as exc:
            log.exception("a notification send raised")
            return [Receipt.failed(f"{type(exc).__name__}: {exc}", retryable=True)]

    async def _settle(self, board: Board, item: OutboxItem, outcome: _Outcome) -> None:
        where = f"{item.platform}:{item.chat} for task #{item.task_id} ({item.kind})"
        if outcome.transient is not None and item.attempts < self.settings.max_attempts:
            delay = self._backoff.delay(item.attempts)
            if outcome.retry_after is not None:
                delay = max(delay, outcome.retry_after)
            log.warning("notification to %s failed (%s); retry %d in %.1f s", where,
                        outcome.transient, item.attempts, delay, extra=_fields(board, item))
            await board.mark_notification_failed(item.id, outcome.transient,
                                                  retry_at=now() + delay,
                                                  receipts=outcome.receipts)
            return
        if outcome.transient is not None:
            outcome.permanent = f"gave up after {item.attempts} attempts: {outcome.transient}"
        if outcome.permanent is not None:
            self.failed += 1
            disabled = await board.mark_notification_failed(
                item.id, outcome.permanent, retry_at=None, receipts=outcome.receipts,
                disable_after=self.settings.disable_after)
            log.warning("notification to %s failed for good: %s", where, outcome.permanent,
                        extra=_fields(board, item))
            if disabled:
                log.error("subscription %s:%s on task #%s disabled after %d failed deliveries "
                          "in a row (%s); `kanban subscribe` again to re-enable it",
                          item.platform, item.chat, item.task_id, self.settings.disable_after,
                          outcome.permanent, extra=_fields(board, item))
            return
        await board.mark_notification_sent(item.id, outcome.receipts)
        self.delivered += 1
        if self.observer is not None:
            self.observer.notified(item)
        log.info("notified %s", where, extra=_fields(board, item))

    def _policy(self, board: Board, task: Task, *, mentioned: bool = False) -> DeliveryPolicy:
        d = self.delivery
        return build_policy(board, task, relayboard_home=d.relayboard_home,
                            config_file=d.config_file,
                            extra_roots=() if mentioned else d.extra_roots,
                            user_home=d.user_home, max_bytes=d.max_bytes)


def _fields(board: Board, item: OutboxItem) -> dict[str, Any]:
    """A log record's fields for a notification (see gateway.daemon.logs)."""
    return {"board": board.slug, "task_id": item.task_id, "run_id": item.event.run_id,
            "platform": item.platform}
