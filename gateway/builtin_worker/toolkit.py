"""What every worker tool shares: the tool description, the refusal, argument reading, and the
workspace confinement rule.

Errors::

    KanbanError
    └── ToolError        a refused call: the message goes back to the model, the task goes on

File paths a tool accepts are joined to the workspace, normalised, and every link in them resolved
before :func:`kanban.fsutil.inside` judges them (:func:`confine`), so ``../../config.yaml`` and a
symlink pointing out of the workspace are both refused.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanban.errors import KanbanError
from kanban.fsutil import inside


class ToolError(KanbanError):
    """A tool call refused with a reason meant for the model."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]  # the JSON Schema of the arguments

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name,
                                                 "description": self.description,
                                                 "parameters": self.schema}}


@dataclass(frozen=True)
class ToolOutcome:
    data: dict[str, Any]
    ended: str | None = None  # TASK_DONE or TASK_BLOCKED when this call finished the run


def parse_arguments(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """A tool call's arguments as a mapping (models sometimes send invalid JSON, or nothing)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ToolError(f"the arguments are not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ToolError("the arguments must be a JSON object")
    return value


def arg_str(args: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = args.get(key)
    if value is None or value == "":
        if required:
            raise ToolError(f"{key} is required")
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ToolError(f"{key} must be a string")
    return str(value)


def arg_int(args: dict[str, Any], key: str) -> int | None:
    value = args.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ToolError(f"{key} must be a whole number")
    try:
        return int(value)
    except ValueError as exc:
        raise ToolError(f"{key} must be a whole number") from exc


def confine(workspace: Path, path: str, *, allow_root: bool = False) -> Path:
    """``path`` (relative to the workspace, or absolute) as a lexical absolute path, when it
    resolves inside ``workspace``; else :class:`ToolError`."""
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise ToolError("a path is required")
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = workspace / candidate
    lexical = Path(os.path.normpath(candidate))
    if allow_root:
        with contextlib.suppress(OSError, RuntimeError):
            if lexical.resolve() == workspace.resolve():
                return lexical
    if not inside(lexical, workspace):
        raise ToolError(f"{path}: refused, it is outside the task's workspace "
                        "(file tools only reach files inside it; links out are not followed)")
    return lexical


def relative(workspace: Path, path: Path) -> str:
    try:
        return str(path.relative_to(workspace)) or "."
    except ValueError:
        return path.name
