"""The role table of docs/chat.md, row by row, for every kind of caller the command layer serves.

Each row runs one request as the operator's command line, the dashboard, a chat admin, a chat
member, a worker run and an orchestrator run, on a real board, and checks who may and who is
refused — and that a refusal changed nothing. ``chat-admin`` and ``chat-member`` run the same
rows as chat text through the chat surface (:class:`gateway.chat.ThreadTools`, what `/kanban …`
and the agent's tools call), where a refusal is the one line the user reads. End-to-end tests of
the surfaces (the router with a platform, the dashboard over HTTP, a worker's command line) are
in ``test_roles_surfaces.py`` and ``test_worker_identity.py``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.chat import ThreadTools
from gateway.commands import (
    ChatUser,
    NotAllowed,
    Operator,
    Services,
    Worker,
    execute,
    parse_command,
)
from gateway.commands.callers import Caller
from kanban import Board, Boards
from kanban.agents.profiles import Profiles
from platforms.base import Destination

OPERATOR = Operator("tester")
DASHBOARD = Operator("dashboard", host_paths=False)
ADMIN = ChatUser("slack", "UA", "Ann", role="admin", chat="C1", thread="T1")
MEMBER = ChatUser("slack", "UM", "Bob", chat="C1", thread="T1")
CALLERS = ("operator", "dashboard", "admin", "member", "worker", "orchestrator", "chat-admin",
           "chat-member")
# What a refusal reads like in chat (the policy's NotAllowed lines).
CHAT_REFUSAL = re.compile(r"is for admins|a member subscribes only|kanban\.workspace_roots|"
                          r"members create tasks in scratch")


@dataclass
class Table:
    services: Services
    board: Board
    roots: Path
    outside: Path
    callers: dict[str, Caller]

    async def run(self, text: str, who: str) -> object:
        if who.startswith("chat-"):
            caller = self.callers[who.removeprefix("chat-")]
            assert isinstance(caller, ChatUser)
            dest = Destination(caller.platform, caller.chat or "", caller.thread)
            reply = await ThreadTools(self.services, caller, dest).kanban(text)
            if CHAT_REFUSAL.search(reply):
                assert "\n" not in reply, reply
                raise NotAllowed(reply)
            assert not reply.startswith("error"), reply
            return reply
        return await execute(parse_command(text), self.callers[who], self.services)


@pytest.fixture
async def table(tmp_path: Path) -> AsyncIterator[Table]:
    home = tmp_path / "home"
    profiles = Profiles(home)
    profiles.create("coder")
    roots = tmp_path / "work"
    (roots / "inside").mkdir(parents=True)
    outside = tmp_path / "secrets"
    outside.mkdir()
    services = Services(boards=Boards(home), profiles=profiles, workspace_roots=(roots,))
    board = await services.boards.open("default")
    plain = (await board.create_task("plain worker's task", assignee="coder")).task
    orch = (await board.create_task("orchestrator's task", assignee="coder")).task
    plain_claim = await board.claim(plain.id, claimed_by="dispatcher")
    orch_claim = await board.claim(orch.id, claimed_by="dispatcher", may_create=True)
    callers: dict[str, Caller] = {
        "operator": OPERATOR, "dashboard": DASHBOARD, "admin": ADMIN, "member": MEMBER,
        "worker": Worker(plain.id, plain_claim.run_id, plain_claim.lease, board="default",
                         profile="coder"),
        "orchestrator": Worker(orch.id, orch_claim.run_id, orch_claim.lease, board="default",
                               profile="coder"),
    }
    try:
        yield Table(services, board, roots, outside, callers)
    finally:
        await services.aclose()


Row = Callable[[Table, str], Awaitable[object]]


async def expect(table: Table, who: str, allowed: set[str], attempt: Row) -> None:
    """Run ``attempt`` as ``who``: it must pass when ``who`` is allowed, else be refused with
    NotAllowed and leave the board's events as they were."""
    before = len(await table.board.events(since=0, limit=10_000))
    if who.removeprefix("chat-") in allowed:
        await attempt(table, who)
        return
    with pytest.raises(NotAllowed):
        await attempt(table, who)
    assert len(await table.board.events(since=0, limit=10_000)) == before


ALL = {"operator", "dashboard", "admin", "member", "worker", "orchestrator"}
PEOPLE = {"operator", "dashboard", "admin"}


@pytest.mark.parametrize("who", CALLERS)
async def test_row_read(table: Table, who: str) -> None:
    for text in ("list", "show 1", "context 1", "stats", "events", "subscriptions 1",
                 "boards list"):
        await expect(table, who, ALL, functools.partial(_read, text))


async def _read(text: str, table: Table, who: str) -> object:
    return await table.run(text, who)


@pytest.mark.parametrize("who", CALLERS)
async def test_row_create_scratch(table: Table, who: str) -> None:
    async def attempt(t: Table, w: str) -> None:
        await t.run("create note this --assignee coder", w)
        (made,) = [x for x in await t.board.list_tasks() if x.title == "note this"]
        assert made.workspace_kind == "scratch"

    await expect(table, who, ALL - {"worker"}, attempt)


@pytest.mark.parametrize("who", CALLERS)
async def test_row_create_dir_outside_the_roots(table: Table, who: str) -> None:
    await expect(table, who, {"operator"},
                 lambda t, w: t.run(f"create grab it --workspace dir:{t.outside}", w))


@pytest.mark.parametrize("who", CALLERS)
async def test_row_create_dir_under_the_roots(table: Table, who: str) -> None:
    await expect(table, who, ALL - {"member", "worker"},
                 lambda t, w: t.run(f"create fix --workspace dir:{t.roots / 'inside'}", w))


@pytest.mark.parametrize("who", CALLERS)
async def test_row_create_worktree_path_outside_the_roots(table: Table, who: str) -> None:
    await expect(table, who, {"operator"},
                 lambda t, w: t.run(f"create fix --workspace worktree:{t.outside / 'wt'}", w))


@pytest.mark.parametrize("who", CALLERS)
async def test_row_comment(table: Table, who: str) -> None:
    # A worker comments on its own task; everyone else names one.
    async def attempt(t: Table, w: str) -> None:
        text = "comment looks good" if w in ("worker", "orchestrator") else "comment 1 good"
        await t.run(text, w)

    await expect(table, who, ALL, attempt)


@pytest.mark.parametrize("who", CALLERS)
async def test_row_subscribe_this_thread(table: Table, who: str) -> None:
    await expect(table, who, ALL - {"worker", "orchestrator"},
                 lambda t, w: t.run("subscribe 1 --platform slack --chat C1 --thread T1", w))


@pytest.mark.parametrize("who", CALLERS)
async def test_row_subscribe_another_chat(table: Table, who: str) -> None:
    await expect(table, who, PEOPLE,
                 lambda t, w: t.run("subscribe 1 --platform slack --chat C999", w))


@pytest.mark.parametrize("who", CALLERS)
async def test_row_unsubscribe_another_chat(table: Table, who: str) -> None:
    await table.run("subscribe 1 --platform slack --chat C999", "operator")
    await expect(table, who, PEOPLE,
                 lambda t, w: t.run("unsubscribe 1 --platform slack --chat C999", w))


@pytest.mark.parametrize("who", CALLERS)
async def test_row_unblock(table: Table, who: str) -> None:
    await table.run("create parked --initial-status blocked", "operator")
    await expect(table, who, ALL - {"worker", "orchestrator"},
                 lambda t, w: t.run("unblock 3", w))


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("verb", ["complete 3 --result mine", "block 3 not yours",
                                  "complete 2 --force", "archive 3", "assign 3 coder",
                                  "set-model 3 big", "set-priority 3 5", "claim 3", "link 1 3",
                                  "recompute",
                                  "boards create extra", "archive 2 --force"])
async def test_row_operator_writes(table: Table, who: str, verb: str) -> None:
    """Writes on a worker's behalf, forcing, and board changes: people with operator rights
    only. A worker's writes to its own task are tested in test_commands.py: here task 2 is the
    orchestrator's own, so it may complete it."""
    await table.run("create someone else's", "operator")
    allowed = PEOPLE | ({"orchestrator"} if verb == "complete 2 --force" else set())
    await expect(table, who, allowed, lambda t, w: t.run(verb, w))


@pytest.mark.parametrize("who", CALLERS)
async def test_row_boards_remove(table: Table, who: str) -> None:
    await table.run("boards create spare", "operator")
    await expect(table, who, PEOPLE, lambda t, w: t.run("boards remove spare --delete", w))
