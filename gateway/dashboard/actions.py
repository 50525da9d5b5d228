"""Every change the dashboard makes to a board, in one place, through the shared command layer.

The dashboard speaks as the operator ``dashboard``: each action builds the same request the CLI
and chat build (:mod:`gateway.commands`) and runs it with :func:`gateway.commands.execute`, so
the rules are one set for every surface — checked assignees ("did you mean …?"), the operator
contract (completing, blocking, archiving or reassigning a task with an active run needs
``force``, and the run's lease then goes stale), limits on every value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gateway.commands import (
    ArchiveRequest,
    AssignRequest,
    BlockRequest,
    BoardsCreateRequest,
    CommentRequest,
    CompleteRequest,
    CreateRequest,
    DecomposeRequest,
    LinkRequest,
    Operator,
    Request,
    Services,
    SetModelRequest,
    SetPriorityRequest,
    UnblockRequest,
    UnlinkRequest,
    execute,
)
from gateway.commands import results as r
from gateway.commands.json_args import json_schema, request_from_json
from kanban import Board, BoardInfo, Comment, InvalidInput, Schedule, Task
from kanban.agents.decomposer import Outcome
from kanban.agents.describer import DescribeOutcome, describe_profile, set_description
from kanban.agents.llm import AuxiliaryClient, LLMEndpoint
from kanban.agents.profiles import Profiles

# The dashboard is the operator (on loopback, or with the token), but not the operator's own
# command line: a dir:/worktree: path it names must lie under kanban.workspace_roots.
OPERATOR = Operator("dashboard", host_paths=False)

# The API's public names of verb fields, where they differ (POST and PATCH /api/tasks).
API_NAMES = {"max_runtime": "max_runtime_seconds", "model": "model_override",
             "profile": "assignee"}
# The bodies of POST /api/tasks/{id}/complete, /block and /comments: the verbs' own arguments,
# the task from the path (a reason or a comment is one string under its own name).
_REASON = {"words": "reason"}
_TEXT = {"words": "text"}
COMPLETE = json_schema(CompleteRequest, fixed=("task_id", "board"))
BLOCK = json_schema(BlockRequest, fixed=("board",), names=_REASON)
COMMENT = json_schema(CommentRequest, fixed=("board", "author", "lease"), names=_TEXT)
# PATCH /api/tasks/{id}: each changeable field is one verb.
_UPDATES: dict[str, type[Request]] = {"assignee": AssignRequest, "priority": SetPriorityRequest,
                                      "model_override": SetModelRequest}


def create_schema() -> dict[str, Any]:
    """The body of POST /api/tasks: the create verb's JSON arguments under the API names."""
    return json_schema(CreateRequest, names=API_NAMES)


def update_schema() -> dict[str, Any]:
    """The body of PATCH /api/tasks/{id}: one field per verb (null clears), and ``force``."""
    properties: dict[str, Any] = {}
    for key, verb in _UPDATES.items():
        prop = dict(json_schema(verb, names=API_NAMES)["properties"][key])
        if key != "priority":
            prop["type"] = [prop["type"], "null"]
        properties[key] = prop
    properties["force"] = json_schema(AssignRequest)["properties"]["force"]
    return {"type": "object", "properties": properties, "additionalProperties": False}


@dataclass(frozen=True)
class Actor:
    """The dashboard's operator on one board."""

    services: Services
    board: Board

    async def _run(self, request: Request) -> Any:
        return await execute(request, OPERATOR, self.services)

    async def create_task(self, fields: dict[str, Any]) -> Task | Schedule:
        """POST /api/tasks: the create verb's arguments (as chat has them) under API names;
        with ``every``, a recurring schedule."""
        made: r.TaskCreated | r.ScheduleCreated = await self._run(request_from_json(
            CreateRequest, fields, names=API_NAMES, fixed={"board": self.board.slug}))
        return made.schedule if isinstance(made, r.ScheduleCreated) else made.task

    async def create_board(self, fields: dict[str, Any]) -> BoardInfo:
        """POST /api/boards: the ``boards create`` verb's arguments (slug, name)."""
        made: r.BoardCreated = await self._run(request_from_json(BoardsCreateRequest, fields))
        return made.info

    async def update_task(self, task_id: int, fields: dict[str, Any], *,
                          force: bool = False) -> Task:
        unknown = set(fields) - set(_UPDATES)
        if unknown:
            raise InvalidInput(f"only {', '.join(sorted(_UPDATES))} can be changed here "
                               f"(got {', '.join(sorted(unknown))})")
        if not fields:
            raise InvalidInput("nothing to change")
        requests = []
        for key, verb in _UPDATES.items():
            if key not in fields:
                continue
            value = fields[key]
            if key != "priority" and value in (None, ""):
                value = "none"  # the verbs' word for clearing it
            fixed: dict[str, Any] = {"task_id": task_id, "board": self.board.slug}
            if verb is AssignRequest:
                fixed["force"] = force
            requests.append(request_from_json(verb, {key: value}, names=API_NAMES, fixed=fixed))
        # Every value was checked before the first change.
        done: list[r.TaskUpdated] = [await self._run(request) for request in requests]
        return done[-1].task

    async def complete(self, task_id: int, fields: dict[str, Any]) -> Task:
        """POST /api/tasks/{id}/complete: the complete verb's arguments (``COMPLETE``)."""
        done: r.TaskUpdated = await self._run(request_from_json(
            CompleteRequest, fields, fixed=self._on(task_id=task_id)))
        return done.task

    async def block(self, task_id: int, fields: dict[str, Any]) -> Task:
        """POST /api/tasks/{id}/block: ``{"reason": …, "force": …}`` (``BLOCK``)."""
        given = request_from_json(BlockRequest, fields, names=_REASON, fixed=self._on())
        done: r.TaskUpdated = await self._run(
            dataclasses.replace(given, words=(str(task_id), *given.words)))
        return done.task

    async def unblock(self, task_id: int) -> Task:
        done: r.TasksChanged = await self._run(UnblockRequest(
            task_ids=(task_id,), board=self.board.slug))
        return done.tasks[0]

    async def archive(self, task_ids: list[int], *, force: bool) -> list[Task]:
        done: r.TasksChanged = await self._run(ArchiveRequest(
            task_ids=tuple(task_ids), force=force, board=self.board.slug))
        return done.tasks

    async def delete(self, task_ids: list[int]) -> list[int]:
        done: r.TasksDeleted = await self._run(ArchiveRequest(
            task_ids=tuple(task_ids), remove=True, board=self.board.slug))
        return done.ids

    async def comment(self, task_id: int, fields: dict[str, Any]) -> Comment:
        """POST /api/tasks/{id}/comments: ``{"text": …}`` as the operator (``COMMENT``)."""
        given = request_from_json(CommentRequest, fields, names=_TEXT,
                                  fixed=self._on(author=OPERATOR.name, lease=None))
        done: r.CommentAdded = await self._run(
            dataclasses.replace(given, words=(str(task_id), *given.words)))
        return done.comment

    def _on(self, **more: Any) -> dict[str, Any]:
        return {"board": self.board.slug, **more}

    async def link(self, parent: int, child: int) -> Task:
        done: r.TaskUpdated = await self._run(LinkRequest(
            parent=parent, child=child, board=self.board.slug))
        return done.task

    async def unlink(self, parent: int, child: int) -> Task:
        done: r.TaskUpdated = await self._run(UnlinkRequest(
            parent=parent, child=child, board=self.board.slug))
        return done.task

    async def decompose(self, task_id: int) -> Outcome:
        done: r.Decomposed = await self._run(DecomposeRequest(
            task_id=task_id, board=self.board.slug))
        outcome: Outcome = done.outcomes[0]
        return outcome


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
