"""The operator's upkeep verbs: ``boards backup``, ``boards restore`` and ``gc``.

Backups and restores name files on the host, so they come from the operator's own command line
only (:class:`Operator` with ``host_paths``); a chat admin, the dashboard and workers are
refused. ``gc`` applies ``kanban.retention``: the operator and chat admins may run it (members
are refused by the role table, workers here).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from gateway.commands import results as r
from gateway.commands import verbs as v
from gateway.commands.callers import Caller, Operator, Worker
from gateway.commands.errors import NotAllowed
from gateway.commands.execute import Services, handles
from gateway.errors import LockHeld
from kanban import Conflict


def _host_operator(caller: Caller, what: str) -> None:
    if not (isinstance(caller, Operator) and caller.host_paths):
        raise NotAllowed(f"boards are {what} from the command line of their host, by an "
                         "operator (`relayboard kanban boards …`)")


@handles(v.BoardsBackupRequest)
async def _boards_backup(req: v.BoardsBackupRequest, caller: Caller,
                         services: Services) -> r.BoardBackedUp:
    _host_operator(caller, "backed up")
    from kanban.backup import backup_board

    target = Path(req.to) if req.to else None
    return r.BoardBackedUp(await asyncio.to_thread(backup_board, services.boards, req.slug,
                                                   target))


@handles(v.BoardsRestoreRequest)
async def _boards_restore(req: v.BoardsRestoreRequest, caller: Caller,
                          services: Services) -> r.BoardRestored:
    _host_operator(caller, "restored")
    if services.home_lock is None:
        raise NotAllowed("restoring a board is only available from `relayboard kanban boards "
                         "restore` on the board's host")
    from kanban.backup import restore_board

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(services.home_lock())
        except LockHeld as exc:
            holder = f" (pid {exc.pid})" if exc.pid is not None else ""
            raise Conflict(f"a gateway is running on this home{holder}; stop it before "
                           "restoring a board (it would keep serving the old one)") from None
        info = await restore_board(services.boards, Path(req.file), slug=req.as_slug,
                                   replace=req.replace)
    return r.BoardRestored(info)


@handles(v.GcRequest)
async def _gc(req: v.GcRequest, caller: Caller, services: Services) -> r.GcDone:
    if isinstance(caller, Worker):
        raise NotAllowed(f"a worker may not run gc (it may only change its own task "
                         f"{caller.task_id})")
    from kanban.retention import RetentionSettings, collect

    settings = services.retention or RetentionSettings()
    if req.all_boards:
        slugs = [info.slug for info in await services.boards.list()]
    else:
        slugs = [services.slug_for(req, caller)]
    reports = []
    for slug in slugs:
        board = await services.boards.open(slug)
        reports.append(await collect(board, settings, dry_run=req.dry_run, vacuum=req.vacuum))
    return r.GcDone(reports)
