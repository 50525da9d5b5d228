"""The kanban tools a worker reports through: the same set for the built-in worker's loop and for
``relayboard mcp`` (which serves them to any MCP-speaking agent CLI).

Every write presents the run's lease, so a reclaimed worker can never touch its successor's run.
A refused call raises :class:`~gateway.builtin_worker.toolkit.ToolError`; a
:class:`~kanban.errors.LeaseError` is *not* turned into one: the run is over, and the
caller must stop working rather than let the model try again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.builtin_worker.toolkit import (
    ToolError,
    ToolOutcome,
    ToolSpec,
    arg_int,
    arg_str,
    confine,
)
from kanban.board import Board
from kanban.errors import KanbanError, LeaseError

TASK_DONE = "done"
TASK_BLOCKED = "blocked"


def _int_list(args: dict[str, Any], key: str) -> list[int]:
    value = args.get(key) or []
    if not isinstance(value, list):
        raise ToolError(f"{key} must be a list of task ids")
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise ToolError(f"{key} must be a list of task ids") from exc


def _str_list(args: dict[str, Any], key: str) -> list[str]:
    value = args.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ToolError(f"{key} must be a list of paths")
    return list(value)


SPECS = [
    ToolSpec("kanban_show", "Show a task (default: yours): body, parents' results, comments, runs.",
             {"task_id": {"type": "integer", "description": "default: your own task"}}),
    ToolSpec("kanban_complete", "Finish your task as done. Declare the files you produced as "
             "artifacts (paths inside the workspace); they are delivered with the result.", {
                 "summary": {"type": "string", "description": "one line for people"},
                 "result": {"type": "string", "description": "the outcome, in full"},
                 "metadata": {"type": "object", "description": "optional JSON facts"},
                 "artifacts": {"type": "array", "items": {"type": "string"},
                               "description": "files to deliver, relative to the workspace"},
             }),
    ToolSpec("kanban_block", "Stop and hand the task to a person, saying what you need.",
             {"reason": {"type": "string"}}, ["reason"]),
    ToolSpec("kanban_comment", "Add a progress note to your task.",
             {"text": {"type": "string"}}, ["text"]),
    ToolSpec("kanban_heartbeat", "Tell the board you are still working (extends your lease).",
             {"note": {"type": "string"}}),
]
CREATE_SPEC = ToolSpec(
    "kanban_create", "Create a new task on the board (orchestrator only). It runs once every "
    "task in parents is done.", {
        "title": {"type": "string"},
        "body": {"type": "string"},
        "assignee": {"type": "string", "description": "profile name"},
        "parents": {"type": "array", "items": {"type": "integer"}},
        "priority": {"type": "integer"},
    }, ["title"])


@dataclass
class KanbanTools:
    """The kanban tools bound to one run. ``workspace`` confines declared artifacts (None: paths
    are passed to the board as given, the kernel's own rules apply)."""

    board: Board
    task_id: int
    lease: str
    author: str
    workspace: Path | None = None
    may_create: bool = False
    """What the run's record says (``Board.active_run``): only the orchestrator's runs create."""

    def specs(self) -> list[ToolSpec]:
        return [*SPECS, CREATE_SPEC] if self.may_create else list(SPECS)

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.specs()}

    async def call(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        if name not in self.names:
            if name == CREATE_SPEC.name:
                raise ToolError("kanban_create is only offered to the orchestrator profile")
            raise ToolError(f"unknown tool {name!r}")
        try:
            return await self._call(name, args)
        except (ToolError, LeaseError):
            raise
        except KanbanError as exc:
            raise ToolError(str(exc)) from exc

    async def _call(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        board, task_id, lease = self.board, self.task_id, self.lease
        if name == "kanban_show":
            wanted = arg_int(args, "task_id") or task_id
            detail = await board.show_task(wanted, event_limit=20)
            return ToolOutcome(detail.to_dict())
        if name == "kanban_complete":
            metadata = args.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                raise ToolError("metadata must be a JSON object")
            artifacts = [self._artifact(p) for p in _str_list(args, "artifacts")]
            task = await board.complete(task_id, lease=lease,
                                        result=arg_str(args, "result") or None,
                                        summary=arg_str(args, "summary") or None,
                                        metadata=metadata, artifacts=artifacts)
            return ToolOutcome({"status": task.status, "artifacts": task.artifacts}, TASK_DONE)
        if name == "kanban_block":
            task = await board.block(task_id, arg_str(args, "reason", required=True), lease=lease)
            return ToolOutcome({"status": task.status}, TASK_BLOCKED)
        if name == "kanban_comment":
            comment = await board.comment(task_id, arg_str(args, "text", required=True),
                                          author=self.author, lease=lease)
            return ToolOutcome({"comment_id": comment.id})
        if name == "kanban_heartbeat":
            run = await board.heartbeat(task_id, lease=lease, note=arg_str(args, "note") or None)
            return ToolOutcome({"lease_expires_at": run.expires_at})
        # kanban_create (the only one left once names were checked); the run's rights are read
        # again, so a tool list built before a reclaim grants nothing afterwards.
        if not (await board.active_run(task_id, lease)).may_create:
            raise ToolError("kanban_create is only offered to the orchestrator profile's runs")
        created = await board.create_task(
            arg_str(args, "title", required=True), body=arg_str(args, "body"),
            assignee=arg_str(args, "assignee") or None, parents=_int_list(args, "parents"),
            priority=arg_int(args, "priority") or 0, created_by=self.author)
        return ToolOutcome({"id": created.task.id, "status": created.task.status})

    def _artifact(self, path: str) -> str:
        if self.workspace is None:
            return path
        return str(confine(self.workspace, path))
