"""The worker's environment, built from an allowlist.

A worker runs code a language model chose, so it inherits nothing by default: not the gateway's
chat tokens, not LLM API keys, not cloud credentials. It gets

* the host basics in :data:`INHERITED` (and every ``LC_*``) from the caller's environment
  (``TMPDIR`` is then replaced by the worker's private folder, :mod:`kanban.runtime.launch`);
* ``PATH`` with the running interpreter's script directory first (the "PATH shim"), so a worker
  that runs ``relayboard …`` by name reaches the very installation that spawned it, even when
  the gateway was started as ``.venv/bin/relayboard`` without an activated venv;
* the profile's own ``env:`` entries — literal values, and names copied from the caller's
  environment (see :mod:`kanban.agents.profiles`), the only way a secret reaches a worker;
* the ``RELAYBOARD_*`` variables, last, so a profile cannot forge its task, run or lease.

No database path or credential is among them: a worker reaches its board only through the worker
API of the process that started it (``RELAYBOARD_API``, a socket; see docs/worker.md), presenting
its run's lease.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

INHERITED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    # Where the spawning process found its own packages (a source checkout run with PYTHONPATH):
    # the worker's `relayboard …` must be that same code, or it speaks another protocol.
    "PYTHONPATH",
    # Windows needs these to start processes at all; none holds a secret.
    "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE",
    "APPDATA", "LOCALAPPDATA",
})


def script_dir(executable: str = sys.executable) -> str:
    """The directory of the running interpreter as invoked — ``.venv/bin``, not the directory
    of the system python its symlink points to (that one holds no ``relayboard``)."""
    return os.path.dirname(os.path.abspath(executable))


def shim_path(path: str | None, first: str) -> str:
    """``first`` at the front of ``path``, other entries kept in order (minus duplicates of it)."""
    rest = [p for p in (path or os.defpath).split(os.pathsep) if p and p != first]
    return os.pathsep.join([first, *rest])


def inherited(base: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in base.items()
            if k.upper() in INHERITED or k.startswith("LC_")}


def worker_env(
    base: Mapping[str, str],
    *,
    profile_env: Mapping[str, str],
    profile_env_from: Mapping[str, str] | None = None,
    profile_home: Path,
    profile_name: str,
    board: str,
    api: Path,
    task_id: int,
    run_id: int,
    lease: str,
    workspace: Path,
    model: str = "",
    prompt_file: Path | str = "",
    executable: str = sys.executable,
) -> dict[str, str]:
    """The worker's whole environment. ``base`` is the caller's environment (the gateway passes
    ``os.environ``); only :data:`INHERITED` names and ``LC_*`` are taken from it, plus the
    names ``profile_env_from`` maps (``{worker name: name in base}``; a missing one is skipped).
    ``RELAYBOARD_HOME`` is the profile's home so its own config applies; it is set even when that
    directory does not exist (the name still travels). ``api`` is the worker API's socket."""
    env = inherited(base)
    for name, source in (profile_env_from or {}).items():
        if source in base:
            env[name] = base[source]
    env.update(profile_env)
    env["PATH"] = shim_path(env.get("PATH"), script_dir(executable))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update({
        "RELAYBOARD_HOME": str(profile_home),
        "RELAYBOARD_PROFILE": profile_name,
        "RELAYBOARD_BOARD": board,
        "RELAYBOARD_API": str(api),
        "RELAYBOARD_TASK_ID": str(task_id),
        "RELAYBOARD_RUN_ID": str(run_id),
        "RELAYBOARD_LEASE": lease,
        "RELAYBOARD_WORKSPACE": str(workspace),
        "RELAYBOARD_MODEL": model,
        "RELAYBOARD_PROMPT_FILE": str(prompt_file),
    })
    return env
