"""Runs that did not finish normally: requeue, reclaim, failures, the breaker and back-off.

A requeue (exit 75, "rate limited, retry later") and a failure that does not trip the breaker
put the task back to ready with a ``not_before`` time: ``claim`` refuses it and
``ready_candidates`` skips it until then, so a worker that keeps exiting at once cannot spin the
dispatcher (the delay doubles per consecutive attempt, capped; see :class:`BoardOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kanban.board.shared import BoardCore
from kanban.errors import InvalidInput
from kanban.storage import store
from kanban.storage.tx import Tx

FAILURE_KINDS = ("spawn_failed", "crashed", "timed_out", "protocol_violation")


@dataclass(frozen=True)
class FailureOutcome:
    """What :meth:`RecoveryMixin.record_failure` did."""

    recorded: bool  # False: the run was no longer the task's current run (nothing changed)
    failures: int
    limit: int
    tripped: bool  # the breaker blocked the task (``gave_up``)
    status: str
    not_before: float | None = None  # when the task may run again (None: at once / blocked)


class RecoveryMixin(BoardCore):
    """The dispatcher's verdicts on runs that ended without ``complete`` or ``block``."""

    async def reclaim(self, run_id: int, *, payload: dict[str, Any] | None = None) -> bool:
        """End a stale run and put its task back to ready (not counted, not delayed)."""
        return await self._release(run_id, "reclaimed", "reclaimed", payload or {})

    async def release(self, run_id: int, *, reason: str, by: str | None = None) -> bool:
        """End a live run on an operator's decision (its worker was stopped) and put the task
        back to ready (not counted, not delayed); the event is ``released`` with
        ``forced: true``. False when the run had already ended."""
        return await self._release(run_id, "released", "released",
                                   {"reason": reason, "forced": True, "by": by})

    async def requeue(self, run_id: int, *, reason: str, exit_code: int | None = None) -> bool:
        """End a run without counting a failure (e.g. exit 75, "rate limited, retry later");
        the task backs off by its count of consecutive requeues."""
        return await self._release(run_id, "requeued", "requeued",
                                   {"reason": reason, "exit_code": exit_code},
                                   exit_code=exit_code, backoff=True)

    async def _release(self, run_id: int, run_status: str, kind: str,
                       payload: dict[str, Any], exit_code: int | None = None,
                       backoff: bool = False) -> bool:
        def run(tx: Tx) -> bool:
            active = store.active_run(tx, run_id)
            if active is None:
                return False
            task = store.load_task(tx, active.task_id)
            store.end_run(tx, run_id, run_status, error=payload.get("reason"), exit_code=exit_code)
            event = dict(payload)
            if task.status == "running" and task.current_run_id == run_id:
                target = "todo" if store.unsatisfied_parents(tx, task.id) else "ready"
                fields: dict[str, Any] = {"current_run_id": None}
                if backoff:
                    streak = task.consecutive_requeues + 1
                    not_before = self.clock() + self.backoff_delay(streak)
                    fields.update(consecutive_requeues=streak, not_before=not_before)
                    event.update(requeues=streak, not_before=not_before)
                store.set_status(tx, task.id, "running", target, **fields)
            store.append_event(tx, task.id, kind, event, run_id=run_id)
            return True

        return await self.db.write(run)

    async def record_failure(
        self,
        task_id: int,
        *,
        run_id: int | None,
        kind: str,
        error: str,
        force_trip: bool = False,
        exit_code: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> FailureOutcome:
        """Count a spawn failure, crash, timeout or protocol violation against the task.

        The breaker trips at the task's ``max_retries`` (else the board's ``failure_limit``):
        the task is blocked with a ``gave_up`` event. ``force_trip`` trips at once (systemic
        crashes). Protocol violations count on their own small budget and leave a comment.
        A failure that does not trip sets the task's back-off (``not_before``).
        """
        if kind not in FAILURE_KINDS:
            raise InvalidInput(f"unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")

        def run(tx: Tx) -> FailureOutcome:
            task = store.load_task(tx, task_id)
            violation = kind == "protocol_violation"
            limit = (self.options.protocol_violation_limit if violation
                     else task.max_retries or self.options.failure_limit)
            if run_id is not None:
                if task.current_run_id != run_id or task.status != "running":
                    store.end_run(tx, run_id, kind, error=error, exit_code=exit_code)
                    return FailureOutcome(False, task.consecutive_failures, limit, False,
                                          task.status)
                store.end_run(tx, run_id, kind, error=error, exit_code=exit_code)
            elif task.status not in ("ready", "running"):
                return FailureOutcome(False, task.consecutive_failures, limit, False, task.status)
            failures = (task.protocol_violations if violation else task.consecutive_failures) + 1
            counter = "protocol_violations" if violation else "consecutive_failures"
            tripped = force_trip or failures >= limit
            target = "blocked" if tripped else (
                "todo" if store.unsatisfied_parents(tx, task_id) else "ready")
            fields: dict[str, Any] = {counter: failures, "last_failure_error": error,
                                      "current_run_id": None}
            not_before: float | None = None
            if tripped:
                fields.update(blocked_by="breaker", not_before=None,
                              blocked_reason=f"gave up after {failures} {kind}: {error}")
            else:
                not_before = self.clock() + self.backoff_delay(failures)
                fields["not_before"] = not_before
            store.set_status(tx, task_id, task.status, target, **fields)
            store.append_event(tx, task_id, kind, {
                "error": error, "exit_code": exit_code, "failures": failures, "limit": limit,
                **({"not_before": not_before} if not_before is not None else {}),
                **(payload or {}),
            }, run_id=run_id)
            if violation:
                store.add_comment(tx, task_id, "dispatcher", (
                    "The worker exited successfully without calling `relayboard kanban complete`"
                    " or `block`, so its result was lost. "
                    f"({failures}/{limit} before the task is blocked.)"
                ), kind="system")
            if tripped:
                store.append_event(tx, task_id, "gave_up", {
                    "kind": kind, "failures": failures, "limit": limit, "error": error,
                    "forced": force_trip and failures < limit,
                }, run_id=run_id)
            return FailureOutcome(True, failures, limit, tripped, target, not_before)

        return await self.db.write(run)
