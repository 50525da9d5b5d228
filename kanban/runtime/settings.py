"""The dispatcher's plain settings (the gateway maps its config onto these; kanban never reads
config) and the host's default worker cap."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil


@dataclass(frozen=True)
class DispatchSettings:
    """Plain settings values, frozen: one dispatcher reads them, nothing changes them."""

    max_spawn: int = 4  # live per-board cap: running tasks on the board, not spawns per cycle
    max_spawn_host: int | None = None  # None: derived from cores and memory
    interval_seconds: float = 5.0  # safety-net tick; changes and worker exits wake sooner
    poll_seconds: float = 0.5  # how often other processes' commits are looked for
    claim_ttl_seconds: float | None = None  # None: the board's claim_ttl_seconds (900)
    kill_grace_seconds: float = 5.0  # TERM → KILL
    exit_grace_seconds: float = 10.0  # a worker whose run it finished itself may linger this long
    # Fallback only: where a worker's exit cannot be waited on (no pidfd: not Linux ≥ 5.3, or
    # the pidfd could not be opened), the loop checks such workers this often. Watched workers
    # wake the loop by themselves and cost nothing while they run.
    exit_poll_seconds: float = 0.2
    log_max_bytes: int = 5_000_000
    log_backups: int = 3
    log_tail_bytes: int = 2_000
    systemic_threshold: int = 3
    builtin_worker: bool = True  # profiles without `command` run `relayboard worker run`
    orchestrator_profile: str | None = None  # its built-in worker may create tasks
    default_assignee: str | None = None
    # This host's labels: tasks created with `--host LABEL` run only where LABEL is listed;
    # unlabelled tasks run anywhere.
    host_labels: tuple[str, ...] = ()
    tmux_socket: str | None = None
    tmux_cleanup: bool = True
    worktree_repo: Path | None = None
    platform: str = sys.platform
    shutdown_seconds: float = 10.0
    # The worker API's socket, served by the process that owns this dispatcher (workers get it
    # as RELAYBOARD_API). None: nothing serves one, and nothing is spawned.
    worker_api: Path | None = None
    # The worker sandbox (kanban.runtime.sandbox): "auto" confines workers where the kernel can
    # (one warning where it cannot), "required" refuses to start one it cannot, "off".
    sandbox: Literal["auto", "required", "off"] = "auto"

    def host_cap(self) -> int:
        """The cap on workers one dispatcher watches. Reads the machine's memory when unset:
        call it once (the dispatcher caches it), not on every cycle."""
        return self.max_spawn_host if self.max_spawn_host is not None else default_host_cap()


def default_host_cap(cores: int | None = None, memory_bytes: int | None = None) -> int:
    """Workers are mostly waiting on LLM calls, so several per core; each may hold a few hundred
    MB, so also at most one per 512 MiB of RAM."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    memory = memory_bytes if memory_bytes is not None else int(psutil.virtual_memory().total)
    return max(1, min(cores * 4, memory // (512 * 1024 * 1024)))


__all__ = ["DispatchSettings", "default_host_cap"]
