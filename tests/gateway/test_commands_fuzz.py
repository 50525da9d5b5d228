"""Property test: the command layer, fed arbitrary strings, numbers and JSON for every verb (as
typed requests and as chat text), never lets anything but a one-line ``KanbanError`` escape, and
the board's invariants hold afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.commands import (
    REGISTRY,
    ChatUser,
    CompleteRequest,
    Operator,
    Request,
    Services,
    Worker,
    execute,
    parse_command,
)
from kanban import Boards, KanbanError
from kanban.agents import Profiles

WORDS = ["create", "list", "show", "link", "unlink", "assign", "set-model", "claim", "complete",
         "block", "unblock", "comment", "heartbeat", "archive", "recompute", "events",
         "subscribe", "unsubscribe", "subscriptions", "boards", "stats", "context", "decompose",
         "--assignee", "--parent", "--priority", "--metadata", "--force", "--rm", "--ttl",
         "--board", "--status", "--lease", "--platform", "--chat", "none", "reporter", "1", "2",
         "3", "-1", "nan", "“", "”", "'", '"', "9223372036854775808", "default"]

text = st.text(max_size=40)
numbers = st.one_of(st.integers(min_value=-5, max_value=8), st.integers(), st.just(2**63))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.1, 3600))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=10)


def strategy_for(field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    kind = str(field.type)
    if field.name == "metadata":
        return st.none() | text | json_values.map(lambda v: json.dumps(v))
    if field.name == "artifacts":  # host paths: the CLI's business, and copying is real I/O
        return st.just(())
    options: dict[str, st.SearchStrategy[Any]] = {
        "str": text, "str | None": st.none() | text, "int": numbers,
        "int | None": st.none() | numbers, "bool": st.booleans(),
        "float | None": st.none() | floats,
        "tuple[int, ...]": st.lists(numbers, max_size=3).map(tuple),
        "tuple[str, ...]": st.lists(st.one_of(text, st.sampled_from(["1", "2", "3"])),
                                    max_size=3).map(tuple),
    }
    return options[kind]


def requests() -> st.SearchStrategy[Request]:
    def build(cls: type[Request]) -> st.SearchStrategy[Request]:
        fields = {f.name: strategy_for(f) for f in dataclasses.fields(cls)
                  if f.init and f.name != "board"}
        board = st.sampled_from([None, "default", "Bad Slug", "ghost"])
        return st.builds(cls, board=board, **fields)

    return st.sampled_from(sorted(REGISTRY.values(), key=lambda c: c.PATH)).flatmap(build)


chat_text = st.lists(st.one_of(st.sampled_from(WORDS), text), max_size=8).map(" ".join)


@dataclasses.dataclass
class Home:
    root: Path
    lease: str
    run_id: int

    @property
    def db(self) -> Path:
        return self.root / "boards" / "default" / "kanban.db"


@pytest.fixture(scope="module")
def home() -> Iterator[Home]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        Profiles(root).create("reporter")

        async def seed() -> Home:
            boards = Boards(root)
            try:
                board = await boards.open("default")
                one = (await board.create_task("one", assignee="reporter")).task
                await board.create_task("two", parents=[one.id])
                three = (await board.create_task("three")).task
                claim = await board.claim(three.id)
                return Home(root, claim.lease, claim.run_id)
            finally:
                await boards.close()

        yield asyncio.run(seed())


def callers(home: Home) -> st.SearchStrategy[Any]:
    return st.sampled_from([
        Operator("fuzz"),
        ChatUser("slack", "U1", "Ann"),
        Worker(task_id=3, run_id=home.run_id, lease=home.lease, board="default"),
        Worker(task_id=2, run_id=None, lease="stale-token", board="default"),
    ])


def check_invariants(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        running = conn.execute(
            "SELECT t.id FROM tasks t LEFT JOIN task_runs r ON r.id = t.current_run_id "
            "WHERE t.status = 'running' AND (r.id IS NULL OR r.status != 'active')").fetchall()
        assert running == [], f"running without an active run: {running}"
        ungated = conn.execute(
            "SELECT l.child_id, l.parent_id FROM task_links l "
            "JOIN tasks c ON c.id = l.child_id JOIN tasks p ON p.id = l.parent_id "
            "WHERE c.status = 'running' AND p.status NOT IN ('done', 'archived')").fetchall()
        assert ungated == [], f"running with an unfinished parent: {ungated}"
        edges: dict[int, list[int]] = {}
        for parent, child in conn.execute("SELECT parent_id, child_id FROM task_links"):
            edges.setdefault(parent, []).append(child)
        state: dict[int, int] = {}

        def visit(node: int) -> None:  # 1 = on the stack, 2 = done
            state[node] = 1
            for nxt in edges.get(node, []):
                assert state.get(nxt) != 1, f"cycle through {node} → {nxt}"
                if nxt not in state:
                    visit(nxt)
            state[node] = 2

        for node in list(edges):
            if node not in state:
                visit(node)
    finally:
        conn.close()


async def run_one(home: Home, request: Request | str, caller: Any) -> None:
    services = Services(boards=Boards(home.root), profiles=Profiles(home.root))
    try:
        parsed = parse_command(request) if isinstance(request, str) else request
        await execute(parsed, caller, services)
    except KanbanError as exc:
        message = str(exc)
        assert message.strip(), f"empty refusal from {request!r}"
        assert "\n" not in message, f"multi-line refusal from {request!r}: {message!r}"
        assert len(message) < 2_000, f"refusal of {len(message)} characters"
    finally:
        await services.aclose()


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_typed_requests_for_every_verb(home: Home, data: st.DataObject) -> None:
    request = data.draw(requests())
    if isinstance(request, CompleteRequest):
        request = dataclasses.replace(request, artifacts=())
    caller = data.draw(callers(home))
    asyncio.run(run_one(home, request, caller))
    check_invariants(home.db)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_chat_text(home: Home, data: st.DataObject) -> None:
    line = data.draw(chat_text)
    caller = data.draw(callers(home))
    asyncio.run(run_one(home, line, caller))
    check_invariants(home.db)
