"""The Orchestration settings (``kanban.auto_decompose`` and friends), read and written in place.

Writing edits ``config.yaml`` round-trip (ruamel.yaml keeps comments, key order and every other
key), to a temporary file that is fsync'd and renamed over the original, on a worker thread so
the event loop never waits on the disk. The returned view carries the *resolved* fallbacks: who
really gets a decomposed root and unknown children when a key is empty.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from gateway.config import Config
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
    yaml = YAML()  # round-trip mode: comments and order survive
    yaml.preserve_quotes = True
    data: Any = CommentedMap()
    if path.is_file():
        try:
            loaded = yaml.load(path.read_text(encoding="utf-8"))
        except (OSError, YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path.name}: cannot read config: "
                              f"{str(exc).splitlines()[0] if str(exc) else exc}") from exc
        if loaded is not None:
            if not isinstance(loaded, CommentedMap):
                raise ConfigError(f"{path.name}: the top level must be a mapping")
            data = loaded
    section = data.get("kanban")
    if section is None:
        section = data["kanban"] = CommentedMap()
    elif not isinstance(section, CommentedMap):
        raise ConfigError(f"{path.name}: kanban must be a mapping")
    for key, value in changes.items():
        section[key] = value
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(buffer.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform can open a directory; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
