"""The kanban tools a worker reports through (the built-in worker's loop, ``relayboard mcp``):
views of the verbs ``show``, ``complete``, ``block``, ``comment``, ``heartbeat`` and ``create``.

A tool's arguments are its verb's JSON arguments without the run's own (its task and lease); a
call runs the request through one injected ``run`` — here the command layer as the run's
:class:`~gateway.commands.Worker` (:func:`runner`) — so the rules of ``relayboard kanban`` in a
worker hold: its own task only, assignees that are profiles, creating only when the run's record
says so (read at every call). Declared artifacts and attachments must lie inside the workspace.

A refusal raises :class:`~gateway.builtin_worker.toolkit.ToolError`; a
:class:`~kanban.errors.LeaseError` is *not* one: the run is over, and the caller must stop
rather than let the model try again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.builtin_worker.toolkit import ToolError, ToolOutcome, ToolSpec, confine
from gateway.commands import Request, Result, Services, Worker, execute
from gateway.commands import verbs as v
from gateway.commands.json_args import json_schema, request_from_json
from kanban.errors import KanbanError, LeaseError

TASK_DONE = "done"
TASK_BLOCKED = "blocked"
Runner = Callable[[Request], Awaitable[Result]]  # how a worker's requests are run


@dataclass(frozen=True)
class VerbTool:
    name: str
    verb: type[Request]
    description: str
    names: Mapping[str, str] = field(default_factory=dict)  # field → argument name
    paths: tuple[str, ...] = ()  # host paths, confined to the workspace
    ended: str | None = None  # what a successful call does to the run


# Set by the run, never by the model (``author`` is the profile, ``force`` an operator's).
RUN_FIELDS = ("task_id", "lease", "force", "author")
# create's options that only a person may use (a recurring schedule): not offered to a run.
PERSON_ONLY: dict[str, Any] = {"every": None, "catch_up": None, "overlap": False}
TOOLS = (
    VerbTool("kanban_show", v.ShowRequest,
             "Show a task (default: yours): body, parents' results, comments, runs."),
    VerbTool("kanban_complete", v.CompleteRequest,
             "Finish your task as done. Declare the files you produced as artifacts (paths "
             "inside the workspace); they are delivered with the result.",
             paths=("artifacts",), ended=TASK_DONE),
    VerbTool("kanban_block", v.BlockRequest,
             "Stop and hand the task to a person, saying what you need.",
             names={"words": "reason"}, ended=TASK_BLOCKED),
    VerbTool("kanban_comment", v.CommentRequest, "Add a progress note to your task.",
             names={"words": "text"}),
    VerbTool("kanban_heartbeat", v.HeartbeatRequest,
             "Tell the board you are still working (extends your lease)."),
    VerbTool("kanban_create", v.CreateRequest,
             "Create a new task on the board (orchestrator only). It runs once every task in "
             "parents is done.", paths=("attachments",)),
)


def runner(caller: Worker, services: Services) -> Runner:
    """``run`` for a worker in this process: the command layer, as ``caller``."""

    async def run(request: Request) -> Result:
        return await execute(request, caller, services)

    return run


@dataclass
class KanbanTools:
    """The tools of one run. ``workspace`` confines declared paths (None: as given).
    ``may_create`` offers ``kanban_create``; the command layer decides at each call anyway."""

    run: Runner
    task_id: int
    lease: str
    workspace: Path | None = None
    may_create: bool = False

    @classmethod
    async def for_run(cls, run: Runner, task_id: int, lease: str,
                      workspace: Path | None = None) -> KanbanTools:
        """The tools of a run, offering ``kanban_create`` when its record says it may create."""
        try:
            shown = (await run(v.ShowRequest(task_id=task_id))).to_json()
        except KanbanError:
            shown = {}  # the first tool call reports it
        # A task has one active run at most; if it is not this one, every call says so.
        may = any(r.get("may_create") for r in shown.get("runs") or []
                  if r.get("status") == "active")
        return cls(run, task_id, lease, workspace, may)

    def offered(self) -> list[VerbTool]:
        return [t for t in TOOLS if t.verb is not v.CreateRequest or self.may_create]

    @property
    def names(self) -> set[str]:
        return {t.name for t in self.offered()}

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(t.name, t.description, json_schema(t.verb, **self._view(t)))
                for t in self.offered()]

    async def call(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        tool = next((t for t in TOOLS if t.name == name), None)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}")
        try:
            request = request_from_json(tool.verb, args, **self._view(tool))
            if self.workspace is not None and tool.paths:
                confined: dict[str, Any] = {
                    p: tuple(str(confine(self.workspace, x)) for x in getattr(request, p))
                    for p in tool.paths}
                request = dataclasses.replace(request, **confined)
            result = await self.run(request)
        except (ToolError, LeaseError):
            raise
        except KanbanError as exc:
            raise ToolError(str(exc)) from exc
        data = result.to_json()
        return ToolOutcome(data if isinstance(data, dict) else {"result": data}, tool.ended)

    def _view(self, tool: VerbTool) -> dict[str, Any]:
        """The verb's JSON arguments as this run's tool: the run's fields bound (another task
        may be shown, a parent's result: yours is only the default)."""
        run = dict(zip(RUN_FIELDS, (self.task_id, self.lease, False, None), strict=True))
        present = {f.name for f in dataclasses.fields(tool.verb)} & set(run)
        free = {"task_id"} if tool.verb is v.ShowRequest else set()
        fixed = {k: run[k] for k in present - free}
        if tool.verb is v.CreateRequest:
            fixed.update(PERSON_ONLY)
        return {"chat": False, "names": tool.names, "fixed": fixed,
                "defaults": {k: run[k] for k in present & free}}
