"""Who may run which request: the role table, checked once for every surface.

:func:`authorize` runs before every handler (:func:`gateway.commands.execute`), so the CLI, chat,
the dashboard, MCP and the agents' tools are held to the same rules. The table itself, as users
read it, is in docs/chat.md ("Roles: who may do what"); ``tests/gateway/test_roles.py`` checks it
row by row for every kind of caller. In short: members (chat users not in ``admins``) create,
read, comment, unblock (or run-now) and follow their own thread, and make recurring schedules
only where ``kanban.members_may_schedule`` is true; host paths (``dir:``/``worktree:PATH``) come
from the operator's own command line anywhere, from everyone else only under
``kanban.workspace_roots``, never from a member; workers never change who is notified; an
inbound webhook creates tasks on its own board and subscribes its configured threads, nothing
else.

A worker's own-task rules live beside its handlers in :mod:`gateway.commands.execute` (they need
the lease); a worker's right to create is read from its run's record on the board.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from gateway.commands import verbs as v
from gateway.commands.callers import Caller, ChatUser, Operator, Webhook, Worker
from gateway.commands.declare import Request
from gateway.commands.errors import NotAllowed
from kanban.validation import parse_workspace

# Requests that change nothing.
READ_VERBS: frozenset[type[Request]] = frozenset({
    v.ListRequest, v.ShowRequest, v.ContextRequest, v.StatsRequest, v.EventsRequest,
    v.SubscriptionsRequest, v.BoardsListRequest, v.SchedulesRequest, v.ScheduleShowRequest,
})
# What a member (an allow-listed chat user who is not an admin) may run.
MEMBER_VERBS: frozenset[type[Request]] = READ_VERBS | {
    v.CreateRequest, v.CommentRequest, v.SubscribeRequest, v.UnsubscribeRequest,
    v.UnblockRequest, v.RunNowRequest,
}
# What members may do besides, where kanban.members_may_schedule is true: recurring schedules.
SCHEDULE_VERBS: frozenset[type[Request]] = frozenset({
    v.SchedulePauseRequest, v.ScheduleResumeRequest, v.ScheduleRemoveRequest,
    v.ScheduleSubscribeRequest, v.ScheduleUnsubscribeRequest,
})
# Requests that change who is notified, of a task or of a schedule's occurrences.
NOTIFY_VERBS = (v.SubscribeRequest | v.UnsubscribeRequest | v.ScheduleSubscribeRequest
                | v.ScheduleUnsubscribeRequest)


def authorize(request: Request, caller: Caller, workspace_roots: Sequence[Path], *,
              members_may_schedule: bool = False) -> None:
    """Refuse, with one line, what ``caller``'s role may not do (:class:`NotAllowed`).
    ``members_may_schedule`` is ``kanban.members_may_schedule``."""
    if is_member(caller):
        _member(request, caller, members_may_schedule)
    if isinstance(caller, Webhook):
        _webhook(request, caller)
    if isinstance(caller, Worker) and isinstance(request, NOTIFY_VERBS):
        raise NotAllowed("a worker may not change who is notified of a task")
    if isinstance(request, v.CreateRequest):
        check_workspace(request.workspace, caller, workspace_roots)


def is_member(caller: Caller) -> bool:
    return isinstance(caller, ChatUser) and caller.role != "admin"


def _member(request: Request, caller: Caller, may_schedule: bool) -> None:
    assert isinstance(caller, ChatUser)
    scheduling = type(request) in SCHEDULE_VERBS or (
        isinstance(request, v.CreateRequest) and request.every is not None)
    if scheduling and not may_schedule:
        raise NotAllowed("recurring schedules are for admins here (the operator may let "
                         "members make them: kanban.members_may_schedule)")
    if type(request) not in MEMBER_VERBS and not scheduling:
        raise NotAllowed(f"`{request.verb}` is for admins; members create, read, comment, "
                         "unblock and follow tasks (ask an admin of this bot)")
    if getattr(request, "force", False):
        raise NotAllowed("--force is for admins")
    if isinstance(request, NOTIFY_VERBS):
        here = (caller.platform, caller.chat, caller.thread)
        asked = (request.platform, request.chat, request.thread)
        if caller.chat is None or asked != here:
            raise NotAllowed("a member subscribes only the thread they write in (use "
                             "/subscribe ID here)")


def _webhook(request: Request, caller: Webhook) -> None:
    if request.board != caller.board:
        raise NotAllowed(f"hook {caller.name} acts only on board {caller.board}")
    if isinstance(request, v.CreateRequest):
        if request.attachments or request.parents or request.every is not None:
            raise NotAllowed("a hook creates tasks without attachments, parents or schedules")
        return
    if isinstance(request, v.SubscribeRequest):
        if (request.platform, request.chat, request.thread) not in caller.threads:
            raise NotAllowed(f"hook {caller.name} subscribes only the threads its config names")
        return
    raise NotAllowed(f"a hook may only create tasks and subscribe its threads, not "
                     f"`{request.verb}`")


def check_workspace(spec: str, caller: Caller, roots: Sequence[Path]) -> None:
    """A ``dir:``/``worktree:PATH`` workspace names a host path: any path from the operator's
    own command line; from every other surface only one under ``kanban.workspace_roots``, and
    never from a member."""
    kind, path = parse_workspace(spec)
    if path is None or (isinstance(caller, Operator) and caller.host_paths):
        return
    if is_member(caller):
        raise NotAllowed("members create tasks in scratch or worktree workspaces; a "
                         f"{kind}: path is for admins")
    if not roots:
        raise NotAllowed(f"a {kind}: workspace is only allowed under kanban.workspace_roots "
                         "here, and none is configured (the operator's command line may name "
                         "any path)")
    if not any(_inside(path, root) for root in roots):
        who = "a worker" if isinstance(caller, Worker) else "chat or the dashboard"
        raise NotAllowed(f"a {kind}: workspace from {who} must lie under "
                         "kanban.workspace_roots")


def _inside(path: str, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it, once both are resolved (links followed, so a
    link inside a root that points out of it does not count as inside)."""
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
