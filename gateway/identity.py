"""Who a local process is, from what it cannot change about itself: the command line's caller,
and the process at the other end of a loopback connection to the dashboard.

The worker variables (``RELAYBOARD_TASK_ID``, ``RELAYBOARD_LEASE``) say who a worker is, but a
worker can unset them (``env -u …``) and look like the operator at a terminal. So, before an
operator's write, the command line also looks at its own lineage — its pid, its parents up the
chain, and their session and process-group ids — and compares it with the worker processes the
dispatchers of this home recorded for their active runs on this host:

* a process in the lineage was started with the worker variables (its ``/proc/PID/environ``,
  which what it starts cannot change): the caller is that worker;
* a process in the lineage is the worker of an active run (the same pid *and* start time, so a
  recycled pid is no match): the caller is that run's :class:`~gateway.commands.Worker`, with
  that run's rights and nothing more;
* else, a Relayboard gateway or dispatcher is among its ancestors (a chat agent's command, or a
  process a worker left behind): it is no operator — it gets a member's rights;
* else it is the operator.

Workers are started as the leaders of their own sessions, so everything they start shares the
session id even when its parent is gone. A process that leaves the session (``setsid``) *and*
its parent chain is not recognised by this check; the worker sandbox, which keeps workers away
from the boards altogether, closes that. Lineage is read from ``/proc``: elsewhere only the
variables count.

The dashboard trusts "this machine" when it has no token, and a worker runs on this machine. So
for a request that would change something, arriving over loopback, it finds the process that
holds the client's end of the connection (:func:`peer_pid`, from ``/proc/net/tcp`` and the
processes' open sockets) and refuses it when that process is a worker's or runs under a gateway
or dispatcher (:func:`started_by_relayboard`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.commands import Caller, Worker
    from kanban import Boards

PROC = Path("/proc")
_MAX_DEPTH = 64
# Argument pairs that mark a Relayboard process which starts workers or chat agents.
_SPAWNERS = (("gateway", "run"), ("kanban", "dispatch"))
_VALUE_OPTIONS = frozenset({"--home", "--config", "--board"})


def lineage(pid: int | None = None, proc: Path = PROC) -> tuple[frozenset[int], list[int]]:
    """(every pid, session id and process-group id in the chain from ``pid`` up to init;
    the ancestors' pids, nearest first). Empty without ``/proc``."""
    ids: set[int] = set()
    ancestors: list[int] = []
    current = os.getpid() if pid is None else pid
    for _ in range(_MAX_DEPTH):
        fields = _stat(current, proc)
        if fields is None:
            break
        parent, group, session = fields
        ids.update((current, group, session))
        if parent <= 1:
            break
        ancestors.append(parent)
        current = parent
    ids.discard(0)
    ids.discard(1)
    return frozenset(ids), ancestors


def _stat(pid: int, proc: Path) -> tuple[int, int, int] | None:
    try:
        text = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session …": comm may hold spaces and parentheses.
    after = text[text.rfind(")") + 2:].split()
    try:
        return int(after[1]), int(after[2]), int(after[3])
    except (IndexError, ValueError):
        return None


def is_spawner(pid: int, proc: Path = PROC) -> bool:
    """Whether ``pid`` runs ``relayboard gateway run`` or ``relayboard kanban dispatch``."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [w.decode("utf-8", "replace") for w in argv if w]
    if not any(os.path.basename(w) in ("relayboard", "gateway") or w == "gateway"
               for w in words[:4]):
        return False
    return any(_follows(words, first, second) for first, second in _SPAWNERS)


def _follows(words: list[str], group: str, verb: str) -> bool:
    """Whether ``verb`` is the first word after ``group`` that is neither an option nor an
    option's value (``kanban --board b dispatch``)."""
    for i, word in enumerate(words):
        if word != group:
            continue
        j = i + 1
        while j < len(words) and words[j].startswith("-"):
            j += 2 if words[j] in _VALUE_OPTIONS else 1
        if j < len(words) and words[j] == verb:
            return True
    return False


async def worker_of_lineage(boards: Boards, ids: Iterable[int]) -> Worker | None:
    """The active run, on any board of the home, whose recorded worker is in ``ids``."""
    from gateway.commands import Worker
    from kanban.board.runs import HOSTNAME

    for run in await boards.worker_runs(set(ids), HOSTNAME):
        # The process helpers only when a run is recorded: `kanban create` by hand has none.
        from kanban.runtime.spawn import is_same_process

        if is_same_process(run.pid, run.started_at):
            return Worker(task_id=run.task_id, run_id=run.run_id, lease=run.lease,
                          board=run.slug, profile=run.profile)
    return None


def worker_from_environ(environ: Mapping[str, str]) -> Worker | None:
    """The worker the worker variables in ``environ`` name, or None when they are absent or
    malformed."""
    from gateway.commands import Worker

    task = environ.get("RELAYBOARD_TASK_ID")
    lease = environ.get("RELAYBOARD_LEASE")
    if not task or not lease:
        return None
    try:
        task_id = int(task)
    except ValueError:
        return None
    run = environ.get("RELAYBOARD_RUN_ID")
    return Worker(task_id=task_id, run_id=int(run) if run and run.isdigit() else None,
                  lease=lease, board=environ.get("RELAYBOARD_BOARD") or None,
                  profile=environ.get("RELAYBOARD_PROFILE") or None)


def worker_of_environs(ids: Iterable[int], proc: Path = PROC) -> Worker | None:
    """The worker whose variables one of ``ids`` was started with (its initial environment)."""
    for pid in sorted(ids, reverse=True):
        try:
            raw = (proc / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        environ: dict[str, str] = {}
        for item in raw.split(b"\0"):
            name, sep, value = item.partition(b"=")
            if sep and name.startswith(b"RELAYBOARD_"):
                environ[name.decode("ascii", "replace")] = value.decode("utf-8", "replace")
        worker = worker_from_environ(environ)
        if worker is not None:
            return worker
    return None


async def caller_of_process(boards: Boards, fallback: Caller) -> Caller:
    """``fallback`` (the operator), unless this process's lineage says otherwise (see the
    module docstring)."""
    from gateway.commands import ChatUser

    ids, ancestors = lineage()
    worker = worker_of_environs(ids) or await worker_of_lineage(boards, ids)
    if worker is not None:
        return worker
    if any(is_spawner(pid) for pid in ancestors):
        return ChatUser("process", str(os.getpid()), "a process the gateway started")
    return fallback


def started_by_relayboard(pid: int, proc: Path = PROC) -> bool:
    """Whether ``pid`` is a worker (or one of its processes), or runs under a gateway or a
    dispatcher — without opening any board."""
    ids, ancestors = lineage(pid, proc)
    return (worker_of_environs(ids, proc) is not None
            or any(is_spawner(parent, proc) for parent in ancestors))


def peer_pid(client: tuple[str, int], server_port: int, proc: Path = PROC) -> int | None:
    """The process holding the client end of a loopback TCP connection from ``client`` to this
    machine's ``server_port``; None when it cannot be told (no ``/proc``, the process is gone,
    or the socket belongs to another user)."""
    inode = _client_socket_inode(client[1], server_port, proc)
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    me = os.getpid()
    try:
        entries = list(proc.iterdir())
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == wanted:
                    return int(entry.name)
            except OSError:
                continue
    return None


def _client_socket_inode(client_port: int, server_port: int, proc: Path) -> int | None:
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                inode = int(fields[9])
            except (IndexError, ValueError):
                continue
            if local_port == client_port and remote_port == server_port and inode:
                return inode
    return None
