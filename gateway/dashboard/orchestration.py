"""The Orchestration settings (``kanban.auto_decompose`` and friends), read and written in place.

Writing edits ``config.yaml`` round-trip (ruamel.yaml keeps comments, key order and every other
key), to a temporary file that is fsync'd and renamed over the original, on a worker thread so
the event loop never waits on the disk. The returned view carries the *resolved* fallbacks: who
really gets a decomposed root and unknown children when a key is empty.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from gateway.config import Config
from gateway.config_edit import edit_config, section
from gateway.errors import ConfigError
from kanban.agents.profiles import Profiles
from kanban.runtime.sandbox import sandbox_status

KEYS = ("orchestrator_profile", "default_assignee", "auto_decompose", "auto_promote_children")
BOOL_KEYS = ("auto_decompose", "auto_promote_children")


def view(config: Config, profiles: Profiles) -> dict[str, Any]:
    k = config.kanban
    names = profiles.names()
    fallback = profiles.default_name()
    return {
        "orchestrator_profile": k.orchestrator_profile,
        "default_assignee": k.default_assignee,
        "auto_decompose": k.auto_decompose,
        "auto_promote_children": k.auto_promote_children,
        "mode": "auto" if k.auto_decompose else "manual",
        "resolved": {
            "orchestrator_profile": k.orchestrator_profile or fallback,
            "default_assignee": k.default_assignee or fallback,
        },
        "profiles": names,
        "config_file": config.path.name if config.path else "config.yaml",
        # The worker sandbox in force (workers.sandbox and what this kernel offers).
        "sandbox": sandbox_status(config.workers.sandbox),
    }


def validate(changes: dict[str, Any], profiles: Profiles) -> dict[str, Any]:
    unknown = set(changes) - set(KEYS)
    if unknown:
        raise ConfigError(f"unknown orchestration key(s): {', '.join(sorted(unknown))}")
    if not changes:
        raise ConfigError("nothing to change")
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key in BOOL_KEYS:
            if not isinstance(value, bool):
                raise ConfigError(f"kanban.{key} must be true or false (got {value!r})")
        elif value is not None:
            if not isinstance(value, str):
                raise ConfigError(f"kanban.{key} must be a profile name or null")
            value = value.strip() or None
            if value is not None and not profiles.exists(value):
                raise ConfigError(f"kanban.{key}: profile {value!r} does not exist")
        clean[key] = value
    return clean


async def apply(config: Config, changes: dict[str, Any]) -> Config:
    """Write ``changes`` under ``kanban:`` in the config file; the config as it now reads."""
    path = config.path or config.home / "config.yaml"
    await asyncio.to_thread(_write, path, changes)
    return dataclasses.replace(config, path=path, kanban=config.kanban.model_copy(update=changes))


def _write(path: Path, changes: dict[str, Any]) -> None:
    def change(data: CommentedMap) -> None:
        kanban = section(data, "kanban", path)
        for key, value in changes.items():
            kanban[key] = value

    edit_config(path, change)
