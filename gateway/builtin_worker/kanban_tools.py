"""The kanban tools a worker reports through, for the built-in worker's loop and for
``relayboard mcp``: views of the verbs ``show``, ``complete``, ``block``, ``comment``,
``heartbeat`` and ``create``.

A tool's arguments are its verb's JSON arguments (:mod:`gateway.commands.json_args`) without what
the run binds (its task id and lease), and a call runs the verb's request through one injected
``run`` — in this process the command layer as the run's
:class:`~gateway.commands.Worker` (:func:`runner`) — so a tool is held to the rules of
``relayboard kanban`` inside a worker: its own task only, assignees that are profiles, creating
only when the run's record says it may (read again at every call). Declared artifacts and
attachments must lie inside the workspace.

A refused call raises :class:`~gateway.builtin_worker.toolkit.ToolError`; a
:class:`~kanban.errors.LeaseError` is *not* turned into one: the run is over, and the caller
must stop working rather than let the model try again.
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
from gateway.commands.results import TaskShown
from kanban.errors import KanbanError, LeaseError

TASK_DONE = "done"
TASK_BLOCKED = "blocked"

Runner = Callable[[Request], Awaitable[Result]]
"""How a worker's requests are run: one async call, request in, typed result out."""


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
BY_NAME = {tool.name: tool for tool in TOOLS}
CREATE = "kanban_create"


def runner(caller: Worker, services: Services) -> Runner:
    """``run`` for a worker in this process: the command layer, as ``caller``."""

    async def run(request: Request) -> Result:
        return await execute(request, caller, services)

    return run


@dataclass
class KanbanTools:
    """The kanban tools bound to one run. ``workspace`` confines declared paths (None: they go
    to the board as given, the kernel's own rules apply)."""

    run: Runner
    task_id: int
    lease: str
    workspace: Path | None = None
    may_create: bool = False
    """Whether ``kanban_create`` is offered; the command layer decides at each call anyway."""

    @classmethod
    async def for_run(cls, run: Runner, task_id: int, lease: str,
                      workspace: Path | None = None) -> KanbanTools:
        """The tools of a run, offering ``kanban_create`` when its record says it may create."""
        may_create = False
        try:
            shown = await run(v.ShowRequest(task_id=task_id))
        except KanbanError:
            pass  # the first tool call reports it
        else:
            if isinstance(shown, TaskShown):
                may_create = any(r.may_create for r in shown.detail.runs
                                 if r.status == "active" and r.lease == lease)
        return cls(run, task_id, lease, workspace, may_create)

    def offered(self) -> list[VerbTool]:
        return [t for t in TOOLS if t.name != CREATE or self.may_create]

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(t.name, t.description, json_schema(
            t.verb, chat=False, fixed=self._fixed(t), defaults=self._defaults(t), names=t.names))
            for t in self.offered()]

    @property
    def names(self) -> set[str]:
        return {t.name for t in self.offered()}

    async def call(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        tool = BY_NAME.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}")
        try:
            request = request_from_json(tool.verb, args, chat=False, fixed=self._fixed(tool),
                                        defaults=self._defaults(tool), names=tool.names)
            result = await self.run(self._confined(tool, request))
        except (ToolError, LeaseError):
            raise
        except KanbanError as exc:
            raise ToolError(str(exc)) from exc
        data = result.to_json()
        return ToolOutcome(data if isinstance(data, dict) else {"result": data}, tool.ended)

    def _fixed(self, tool: VerbTool) -> dict[str, Any]:
        values = {"task_id": self.task_id, "lease": self.lease, "force": False, "author": None}
        present = {f.name for f in dataclasses.fields(tool.verb)}
        return {k: values[k] for k in RUN_FIELDS
                if k in present and k not in self._defaults(tool)}

    def _defaults(self, tool: VerbTool) -> dict[str, Any]:
        # Showing another task (a parent's result) is fine; yours is the default.
        return {"task_id": self.task_id} if tool.verb is v.ShowRequest else {}

    def _confined(self, tool: VerbTool, request: Request) -> Request:
        if self.workspace is None or not tool.paths:
            return request
        workspace = self.workspace
        confined: dict[str, Any] = {
            name: tuple(str(confine(workspace, p)) for p in getattr(request, name))
            for name in tool.paths}
        return dataclasses.replace(request, **confined)
