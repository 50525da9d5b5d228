"""Edit ``config.yaml`` in place, round-trip: comments, key order and every other key survive.

``edit_config(path, change)`` loads the file with ruamel.yaml (an absent or empty file is an
empty mapping), lets ``change`` alter the top-level mapping, and writes the result to a temporary
file that is fsync'd and renamed over the original (keeping its mode), then fsyncs the folder.
A file that cannot be read, or whose top level is not a mapping, is a one-line ``ConfigError``
and is left untouched.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from gateway.errors import ConfigError


def edit_config(path: Path, change: Callable[[CommentedMap], None]) -> None:
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
    change(data)
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


def section(data: CommentedMap, key: str, path: Path, where: str = "") -> CommentedMap:
    """``data[key]`` as a mapping, created when absent; a ``ConfigError`` when it is not one."""
    value = data.get(key)
    if value is None:
        value = data[key] = CommentedMap()
    elif not isinstance(value, CommentedMap):
        raise ConfigError(f"{path.name}: {where}{key} must be a mapping")
    return value


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
