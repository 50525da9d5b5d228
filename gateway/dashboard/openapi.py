"""The OpenAPI 3.1 description served at ``/api/openapi.json`` (written by hand, kept small;
the task bodies are the verbs' own, from :mod:`gateway.dashboard.actions`).

A test walks the app's routes and checks each one is described here, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from gateway.commands import BoardsCreateRequest
from gateway.commands.json_args import json_schema
from gateway.dashboard.actions import BLOCK, COMMENT, COMPLETE, create_schema, update_schema

BOARD = {"name": "board", "in": "query", "required": False,
         "description": "board slug (default: kanban.default_board)",
         "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"}}
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}}
SCHEDULE_ID = {"name": "schedule_id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": "^[Ss]?[0-9]{1,18}$"},
               "description": "S3 or 3"}
ERRORS = {
    "400": {"description": "bad input (one line in `error`)", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    "404": {"description": "unknown board, task, profile or file"},
    "409": {"description": "the task is not in a state that allows this"},
}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741 - a one-letter schema alias reads best in the table below
B = {"type": "boolean"}
NS = {"type": ["string", "null"]}

# (path, method) -> (summary, request body schema or None, extra parameters)
OPERATIONS: dict[tuple[str, str], tuple[str, dict[str, Any] | None, list[dict[str, Any]]]] = {
    ("/api/board", "get"): ("Columns of task cards with counts", None, [
        {"name": "limit", "in": "query", "schema": I, "description": "cards per column"},
        {"name": "archived", "in": "query", "schema": B},
        {"name": "assignee", "in": "query", "schema": S},
        {"name": "q", "in": "query", "schema": S, "description": "text or #id"}]),
    ("/api/boards", "get"): ("Boards of this home", None, []),
    ("/api/boards", "post"): ("Create a board", json_schema(BoardsCreateRequest), []),
    ("/api/stats", "get"): ("Counts by status and assignee", None, []),
    ("/api/events", "get"): ("Server-sent events of the board's event log (Last-Event-ID)",
                             None, [{"name": "since", "in": "query", "schema": I}]),
    ("/api/tasks", "get"): ("Task cards", None, [
        {"name": "status", "in": "query", "schema": S},
        {"name": "assignee", "in": "query", "schema": S},
        {"name": "archived", "in": "query", "schema": B}]),
    ("/api/tasks", "post"): ("Create a task", create_schema(), []),
    ("/api/tasks/{task_id}", "get"): (
        "A task with comments, runs, events, links, files and log size", None, []),
    ("/api/tasks/{task_id}", "patch"): (
        "Change assignee, priority or model", update_schema(), []),
    ("/api/tasks/{task_id}", "delete"): ("Archive (or ?purge=1: delete an archived task)", None, [
        {"name": "purge", "in": "query", "schema": B},
        {"name": "force", "in": "query", "schema": B}]),
    ("/api/tasks/{task_id}/comments", "post"): ("Comment as the operator", COMMENT, []),
    ("/api/tasks/{task_id}/links", "post"): ("Link a parent or a child", _obj(parent=I, child=I),
                                             []),
    ("/api/tasks/{task_id}/links", "delete"): ("Unlink a parent or a child",
                                               _obj(parent=I, child=I), []),
    ("/api/tasks/{task_id}/complete", "post"): ("Complete (force: even while running)",
                                                COMPLETE, []),
    ("/api/tasks/{task_id}/block", "post"): ("Block for a human", BLOCK, []),
    ("/api/tasks/{task_id}/unblock", "post"): ("Unblock (re-gated on parents)", None, []),
    ("/api/tasks/{task_id}/archive", "post"): ("Archive", _obj(force=B), []),
    ("/api/tasks/{task_id}/decompose", "post"): (
        "Decompose a triage task now (422 with the reason when it fails)", None, []),
    ("/api/tasks/{task_id}/log", "get"): (
        "The worker log from a byte offset", None,
        [{"name": "offset", "in": "query", "schema": I}]),
    ("/api/tasks/{task_id}/artifacts/{index}/{name}", "get"): (
        "Download one of the task's files", None, [
            {"name": "index", "in": "path", "required": True, "schema": I},
            {"name": "name", "in": "path", "required": True, "schema": S},
            {"name": "download", "in": "query", "schema": B}]),
    ("/api/profiles", "get"): ("Worker profiles", None, []),
    ("/api/profiles/{name}", "patch"): ("Set a description written by a person",
                                        _obj(description=S), [
        {"name": "name", "in": "path", "required": True, "schema": S}]),
    ("/api/profiles/{name}/describe-auto", "post"): (
        "Generate a description with auxiliary.profile_describer", None, [
            {"name": "name", "in": "path", "required": True, "schema": S}]),
    ("/api/orchestration", "get"): ("Orchestration settings with resolved fallbacks", None, []),
    ("/api/orchestration", "put"): (
        "Write orchestration settings to config.yaml (comments kept)",
        _obj(orchestrator_profile=NS, default_assignee=NS, auto_decompose=B,
             auto_promote_children=B), []),
    ("/api/pairing", "get"): ("Pairing requests waiting (platforms with dm_policy: pairing)",
                              None, []),
    ("/api/pairing/{code}/approve", "post"): (
        "Approve a pairing request: add the user to allowed_users (admins with admin: true) in "
        "config.yaml (comments kept)", _obj(admin=B), [
            {"name": "code", "in": "path", "required": True, "schema": S}]),
    ("/api/pairing/{code}/deny", "post"): ("Deny a pairing request", None, [
        {"name": "code", "in": "path", "required": True, "schema": S}]),
    ("/api/tasks/{task_id}/run-now", "post"): (
        "Start a task waiting for its start time (or blocked) at once", None, []),
    ("/api/schedules", "get"): ("Recurring schedules with their next runs, and the zone", None,
                                []),
    ("/api/schedules", "post"): ("Create a recurring schedule (`every` is required)",
                                 create_schema(), []),
    ("/api/schedules/{schedule_id}/pause", "post"): ("Pause a schedule", None, [SCHEDULE_ID]),
    ("/api/schedules/{schedule_id}/resume", "post"): (
        "Resume a schedule from its next time after now", None, [SCHEDULE_ID]),
    ("/api/schedules/{schedule_id}/run-now", "post"): (
        "Make one occurrence of a schedule now", None, [SCHEDULE_ID]),
    ("/api/schedules/{schedule_id}", "delete"): (
        "Remove a schedule (the tasks it made stay)", None, [SCHEDULE_ID]),
    ("/api/openapi.json", "get"): ("This description", None, []),
    ("/api/session", "get"): ("What this dashboard offers (chat on or off)", None, []),
}

NO_BOARD = {"/api/boards", "/api/openapi.json", "/api/session", "/api/profiles",
            "/api/profiles/{name}", "/api/profiles/{name}/describe-auto", "/api/orchestration",
            "/api/pairing", "/api/pairing/{code}/approve", "/api/pairing/{code}/deny"}


def openapi_schema() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), (summary, body, extra) in OPERATIONS.items():
        params = list(extra)
        if "{task_id}" in path:
            params.insert(0, TASK_ID)
        if path not in NO_BOARD:
            params.insert(0, BOARD)
        op: dict[str, Any] = {"summary": summary, "parameters": params,
                              "responses": {"200": {"description": "OK"}, **ERRORS}}
        if body is not None:
            op["requestBody"] = {"content": {"application/json": {"schema": body}}}
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Relayboard dashboard API", "version": "1",
                 "description": "The board, its tasks and the orchestration settings. Off "
                                "loopback every request needs `Authorization: Bearer <token>`."},
        "paths": paths,
        "components": {"schemas": {"Error": _obj(error=S)}},
    }
