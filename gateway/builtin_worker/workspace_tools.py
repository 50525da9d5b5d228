"""Workspace tools: ``run_shell``, ``read_file``, ``write_file``, ``list_files``.

The file tools only ever touch paths that resolve inside the task's workspace
(:func:`~gateway.builtin_worker.toolkit.confine`): ``../../config.yaml`` and a symlink pointing out
are refused with a ToolError (the model reads the refusal; the task goes on). Writes never follow
a final symlink. ``run_shell`` is not a sandbox: it runs with the worker's own rights and
environment (minus the endpoint's API key), like any profile ``command`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import stat
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.builtin_worker.toolkit import ToolError, ToolSpec, arg_int, arg_str, confine, relative

READ_LIMIT = 64_000
READ_LIMIT_MAX = 1_000_000
LIST_LIMIT = 500
# Windows: no console window for the shell (the worker itself has none either).
CREATE_NO_WINDOW = 0x08000000


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


SPECS = [
    ToolSpec("run_shell", "Run a shell command in the task's workspace (its cwd). Returns the exit "
             "code and the combined stdout/stderr (long output is cut).", _object({
                 "command": {"type": "string", "description": "the command line (sh -c)"},
                 "timeout_seconds": {"type": "integer",
                                     "description": "optional, capped by the profile's limit"},
             }, "command")),
    ToolSpec("read_file", "Read a text file inside the workspace.", _object({
        "path": {"type": "string", "description": "relative to the workspace"},
        "max_bytes": {"type": "integer", "description": f"default {READ_LIMIT}"},
    }, "path")),
    ToolSpec("write_file", "Create or replace a text file inside the workspace (parent "
             "directories are created).", _object({
                 "path": {"type": "string", "description": "relative to the workspace"},
                 "content": {"type": "string"},
             }, "path", "content")),
    ToolSpec("list_files", "List files inside the workspace (links are shown, not followed).",
             _object({
                 "path": {"type": "string",
                          "description": "a directory, default the workspace itself"},
                 "recursive": {"type": "boolean"},
             })),
]


@dataclass
class WorkspaceTools:
    workspace: Path
    env: dict[str, str]
    shell_timeout: float = 120.0
    output_cap: int = 16_000

    def specs(self) -> list[ToolSpec]:
        return list(SPECS)

    async def call(self, name: str, args: dict[str, Any], *,
                   time_left: float | None = None) -> dict[str, Any]:
        if name == "run_shell":
            limit = self.shell_timeout if time_left is None else min(self.shell_timeout,
                                                                     time_left)
            asked = arg_int(args, "timeout_seconds")
            return await self.run_shell(arg_str(args, "command", required=True),
                                        min(limit, asked) if asked and asked > 0 else limit)
        if name == "read_file":
            size = arg_int(args, "max_bytes") or READ_LIMIT
            return await _by_deadline(name, time_left, asyncio.to_thread(
                self.read_file, arg_str(args, "path", required=True),
                max(1, min(size, READ_LIMIT_MAX))))
        if name == "write_file":
            content = args.get("content")
            if not isinstance(content, str):
                raise ToolError("content must be a string")
            return await _by_deadline(name, time_left, asyncio.to_thread(
                self.write_file, arg_str(args, "path", required=True), content))
        if name == "list_files":
            return await asyncio.to_thread(self.list_files, arg_str(args, "path") or ".",
                                           bool(args.get("recursive", False)))
        raise ToolError(f"unknown tool {name!r}")

    # ---- shell ------------------------------------------------------------------------------
    async def run_shell(self, command: str, timeout: float) -> dict[str, Any]:
        flags: dict[str, Any] = ({"start_new_session": True} if os.name == "posix"
                                 else {"creationflags": CREATE_NO_WINDOW})
        proc = await asyncio.create_subprocess_shell(
            command, cwd=str(self.workspace), env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, **flags)
        kept = bytearray()
        total = 0

        async def drain() -> None:
            nonlocal total
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                total += len(chunk)
                room = self.output_cap - len(kept)
                if room > 0:
                    kept.extend(chunk[:room])  # the head is kept; the rest is only counted
            await proc.wait()

        timed_out = False
        try:
            await asyncio.wait_for(drain(), max(timeout, 0.1))
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)
        except asyncio.CancelledError:
            _kill_group(proc)
            raise
        out: dict[str, Any] = {"exit_code": proc.returncode,
                               "output": kept.decode("utf-8", errors="replace")}
        if total > len(kept):
            out["truncated"] = f"{total - len(kept)} more bytes not shown"
        if timed_out:
            out["timed_out"] = f"killed after {timeout:g} s"
        return out

    # ---- files ------------------------------------------------------------------------------
    def read_file(self, path: str, max_bytes: int) -> dict[str, Any]:
        target = confine(self.workspace, path)
        try:
            # Non-blocking, so a FIFO or a device answers at once instead of waiting for a
            # writer; judged on the open handle, so nothing but a regular file is read.
            fd = os.open(target.resolve(), _READ_FLAGS)
            with os.fdopen(fd, "rb") as handle:
                _regular_only(path, handle.fileno())
                data = handle.read(max_bytes + 1)
        except ToolError:
            raise
        except FileNotFoundError as exc:
            raise ToolError(f"{path}: no such file") from exc
        except IsADirectoryError as exc:
            raise ToolError(f"{path}: is a directory (use list_files)") from exc
        except OSError as exc:
            raise ToolError(f"{path}: {exc.strerror or exc}") from exc
        out: dict[str, Any] = {"path": relative(self.workspace, target),
                               "content": data[:max_bytes].decode("utf-8", errors="replace")}
        if len(data) > max_bytes:
            out["truncated"] = f"only the first {max_bytes} bytes are shown"
        return out

    def write_file(self, path: str, content: str) -> dict[str, Any]:
        target = confine(self.workspace, path)
        data = content.encode("utf-8")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Re-checked after mkdir: a parent could have been swapped for a link meanwhile.
            target = confine(self.workspace, str(target))
            # No O_TRUNC before the handle is judged: a FIFO or a device is refused untouched.
            fd = os.open(target, _WRITE_FLAGS, 0o644)
            with os.fdopen(fd, "wb") as handle:
                _regular_only(path, handle.fileno())
                os.set_blocking(handle.fileno(), True)
                handle.truncate(0)
                handle.write(data)
        except ToolError:
            raise
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a FIFO nobody reads, opened without blocking
                raise ToolError(f"{path}: not a regular file (a pipe, socket or device is "
                                "never opened by the file tools)") from exc
            raise ToolError(f"{path}: {exc.strerror or exc}") from exc
        return {"path": relative(self.workspace, target), "bytes": len(data)}

    def list_files(self, path: str, recursive: bool) -> dict[str, Any]:
        root = confine(self.workspace, path, allow_root=True)
        if not root.is_dir():
            raise ToolError(f"{path}: not a directory")
        entries: list[dict[str, Any]] = []
        more = False
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            for name in sorted(dirnames) + sorted(filenames):
                if len(entries) >= LIST_LIMIT:
                    more = True
                    break
                entries.append(_entry(self.workspace, here / name))
            if more or not recursive:
                break
            dirnames.sort()
        out: dict[str, Any] = {"path": relative(self.workspace, root), "entries": entries}
        if more:
            out["truncated"] = f"only the first {LIST_LIMIT} entries are shown"
        return out


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | _NONBLOCK | _NOFOLLOW | _CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | _NONBLOCK | _NOFOLLOW | _CLOEXEC


def _regular_only(path: str, fd: int) -> None:
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise ToolError(f"{path}: is a directory (use list_files)")
    if not stat.S_ISREG(mode):
        raise ToolError(f"{path}: not a regular file (a pipe, socket or device is never "
                        "opened by the file tools)")


async def _by_deadline(name: str, time_left: float | None,
                       work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """A file tool bounded by what is left of the run's ``max_seconds``: a read stuck on a slow
    file system returns to the loop (its thread finishes on its own) instead of outliving it."""
    if time_left is None:
        return await work
    try:
        return await asyncio.wait_for(work, max(time_left, 0.1))
    except TimeoutError:
        raise ToolError(f"{name}: stopped at the run's time limit (max_seconds)") from None


def _entry(workspace: Path, path: Path) -> dict[str, Any]:
    try:
        info = os.lstat(path)
    except OSError:
        return {"path": relative(workspace, path), "type": "gone"}
    if stat.S_ISLNK(info.st_mode):
        kind = "link"
    elif stat.S_ISDIR(info.st_mode):
        kind = "dir"
    elif stat.S_ISREG(info.st_mode):
        kind = "file"
    else:
        kind = "other"
    entry: dict[str, Any] = {"path": relative(workspace, path), "type": kind}
    if kind == "file":
        entry["bytes"] = info.st_size
    return entry


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
