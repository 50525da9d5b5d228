"""Every change the dashboard makes to a board, in one place.

The dashboard speaks as the operator ``dashboard``. These functions are the only ones in
``gateway/dashboard`` that write, so moving them onto the shared command layer later touches this
file alone.

The operator verbs follow the kernel's operator contract: completing, blocking or archiving a
task with an active run needs ``force`` (the run's lease then becomes stale). The kernel is
gaining ``as_operator=`` / ``force=`` keywords on those methods; until a running kernel has them,
:func:`_operator_call` passes only the keywords the installed ``Board`` accepts and applies the
``force`` rule here, so this module works on both sides of that change.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kanban import Board, Comment, Conflict, InvalidInput, Task
from kanban.agents.decomposer import DecomposeSettings, Outcome, decompose_task
from kanban.agents.describer import DescribeOutcome, describe_profile, set_description
from kanban.agents.llm import AuxiliaryClient, LLMEndpoint
from kanban.agents.profiles import Profiles

OPERATOR = "dashboard"


@functools.cache
def _accepted(method: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(method).parameters)


async def _operator_call(method: Callable[..., Awaitable[Any]], *args: Any,
                         **kwargs: Any) -> Any:
    func = getattr(method, "__func__", method)
    accepted = _accepted(func)
    return await method(*args, **{k: v for k, v in kwargs.items() if k in accepted})


async def _require_force(board: Board, task_ids: Sequence[int], force: bool, verb: str) -> None:
    """The operator rule, for kernels that do not apply it themselves yet."""
    if force:
        return
    for task_id in task_ids:
        task = await board.get_task(task_id)
        if task.status == "running" and task.current_run_id is not None:
            raise Conflict(f"task {task_id} is running; {verb} it with force (its worker's "
                           "lease becomes stale)")


def _kernel_enforces_force(method: Callable[..., Any]) -> bool:
    return "force" in _accepted(getattr(method, "__func__", method))


# ---- tasks ---------------------------------------------------------------------------------------

async def create_task(board: Board, fields: dict[str, Any]) -> Task:
    allowed = {"body", "assignee", "parents", "triage", "priority", "max_runtime_seconds",
               "max_retries", "model_override", "skills", "workspace", "idempotency_key"}
    unknown = set(fields) - allowed - {"title"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
    title = fields.get("title")
    if not isinstance(title, str):
        raise InvalidInput("a task needs a title")
    options = {k: v for k, v in fields.items() if k in allowed and v is not None}
    if options.get("assignee") == "":
        options.pop("assignee")
    created = await board.create_task(title, created_by=OPERATOR, **options)
    return created.task


async def update_task(board: Board, task_id: int, fields: dict[str, Any], *,
                      force: bool = False) -> Task:
    allowed = {"assignee", "priority", "model_override"}
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(f"only {', '.join(sorted(allowed))} can be changed here "
                           f"(got {', '.join(sorted(unknown))})")
    if not fields:
        raise InvalidInput("nothing to change")
    task = await board.get_task(task_id)
    if "assignee" in fields:
        task = await _operator_call(board.assign, task_id, fields["assignee"] or None,
                                    force=force)
    if "priority" in fields:
        priority = fields["priority"]
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidInput("priority must be an integer")
        task = await board.set_priority(task_id, priority)
    if "model_override" in fields:
        task = await board.set_model(task_id, fields["model_override"] or None)
    return task


async def complete(board: Board, task_id: int, *, result: str | None, summary: str | None,
                   force: bool) -> Task:
    if not _kernel_enforces_force(board.complete):
        await _require_force(board, [task_id], force, "complete")
    task: Task = await _operator_call(board.complete, task_id, as_operator=True, force=force,
                                      result=result, summary=summary, by=OPERATOR)
    return task


async def block(board: Board, task_id: int, reason: str, *, force: bool) -> Task:
    if not _kernel_enforces_force(board.block):
        await _require_force(board, [task_id], force, "block")
    task: Task = await _operator_call(board.block, task_id, reason, as_operator=True,
                                      force=force, by=OPERATOR)
    return task


async def unblock(board: Board, task_id: int) -> Task:
    return (await board.unblock([task_id]))[0]


async def archive(board: Board, task_ids: list[int], *, force: bool) -> list[Task]:
    if not _kernel_enforces_force(board.archive):
        await _require_force(board, task_ids, force, "archive")
    tasks: list[Task] = await _operator_call(board.archive, task_ids, force=force)
    return tasks


async def delete(board: Board, task_ids: list[int]) -> list[int]:
    return await board.delete_archived(task_ids)


async def comment(board: Board, task_id: int, text: str) -> Comment:
    return await board.comment(task_id, text, author=OPERATOR)


async def link(board: Board, parent: int, child: int) -> Task:
    return await board.link(parent, child)


async def unlink(board: Board, parent: int, child: int) -> Task:
    return await board.unlink(parent, child)


async def decompose(board: Board, task_id: int, profiles: Profiles,
                    settings: DecomposeSettings) -> Outcome:
    task = await board.get_task(task_id)
    if task.status != "triage":
        raise Conflict(f"task {task_id} is {task.status}; only a triage task can be decomposed")
    return await decompose_task(board, task_id, profiles, settings)


# ---- profiles ------------------------------------------------------------------------------------

def describe_by_hand(profiles: Profiles, name: str, text: str) -> DescribeOutcome:
    if not text.strip():
        raise InvalidInput("a description needs some text")
    return set_description(profiles, name, text)


async def describe_auto(profiles: Profiles, name: str, endpoint: LLMEndpoint) -> DescribeOutcome:
    profiles.require(name)
    client = AuxiliaryClient.for_endpoint(endpoint)
    # Pressing "Auto-generate" is the person asking to replace their own text.
    return await describe_profile(profiles, name, client=client, slot=endpoint.slot,
                                  overwrite=True)
