"""``relayboard kanban gc`` through the real CLI on a populated board, who may run it, the
``kanban.retention`` keys, and the gateway's ``retention`` component."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from gateway.commands import (
    ChatUser,
    GcRequest,
    NotAllowed,
    Operator,
    Services,
    Worker,
    execute,
)
from gateway.config import ConfigError, load_config
from gateway.daemon.retention import RetentionWatcher
from gateway.kernel_settings import retention_settings
from kanban import Boards
from kanban.retention import DAY, RetentionSettings
from kanban.testing import claim_and_complete, make_task
from tests.gateway.conftest import Cli

pytestmark = pytest.mark.sqlite_only


def populate(rb: Cli, tasks: int) -> None:
    for i in range(tasks):
        task_id = rb.create(f"task {i}")
        claim = rb.claim(task_id)
        rb.ok("kanban", "complete", str(task_id), "--lease", claim["lease"])
    conn = sqlite3.connect(rb.home / "boards" / "default" / "kanban.db")
    try:
        conn.execute("UPDATE task_events SET created_at = created_at - ?", (40 * DAY,))
        conn.commit()
    finally:
        conn.close()


def test_gc_dry_run_then_gc_on_a_populated_board(rb: Cli) -> None:
    (rb.home / "config.yaml").write_text("kanban:\n  retention:\n    events_days: 30\n",
                                         encoding="utf-8")
    populate(rb, 5)
    dry = rb.ok("kanban", "gc", "--dry-run")
    assert dry.startswith("board default: would free 5 row(s): 5 event(s)")
    assert "kept forever by kanban.retention: files" in dry
    [report] = rb.json("kanban", "gc")
    assert (report["board"], report["events"], report["rows"]) == ("default", 5, 5)
    assert report["dry_run"] is False
    events = rb.json("kanban", "events")
    assert [e["kind"] for e in events] == ["created", "completed"] * 5
    assert rb.json("kanban", "gc", "--all")[0]["rows"] == 0


def test_gc_all_covers_every_board(rb: Cli) -> None:
    rb.ok("kanban", "boards", "create", "team")
    slugs = [r["board"] for r in rb.json("kanban", "gc", "--all", "--dry-run")]
    assert slugs == ["default", "team"]


@pytest.mark.parametrize("text", [
    "kanban: {retention: {events_days: -1}}",
    "kanban: {retention: {outbox_days: 1.5}}",
    "kanban: {retention: {interval_hours: 0}}",
])
def test_bad_retention_values_are_one_line(tmp_path: Path, text: str) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kanban\.retention\.\w+ must be"):
        load_config(file, {}, home=tmp_path)


def test_retention_keys_reach_the_kernel(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("kanban:\n  retention: {events_days: 90, files_days: 180, outbox_days: 0}\n",
                    encoding="utf-8")
    settings = retention_settings(load_config(file, {}, home=tmp_path).kanban)
    assert settings == RetentionSettings(events_days=90, files_days=180, outbox_days=0)


@pytest.mark.parametrize(("caller", "allowed"), [
    (Operator(), True),
    (Operator("dashboard", host_paths=False), True),
    (ChatUser("slack", "U1", role="admin"), True),
    (ChatUser("slack", "U2"), False),
    (Worker(task_id=1, run_id=1, lease="x"), False),
])
async def test_who_may_run_gc(tmp_path: Path, caller: Operator | ChatUser | Worker,
                              allowed: bool) -> None:
    services = Services(boards=Boards(tmp_path))
    try:
        if allowed:
            result = await execute(GcRequest(dry_run=True), caller, services)
            assert result.to_json()[0]["board"] == "default"
        else:
            with pytest.raises(NotAllowed):
                await execute(GcRequest(), caller, services)
    finally:
        await services.aclose()


async def test_the_gateway_component_applies_retention_to_open_boards(tmp_path: Path) -> None:
    boards = Boards(tmp_path)
    try:
        board = await boards.open("default")
        task = await make_task(board)
        await claim_and_complete(board, task.id)
        await board.db.write(lambda tx: tx.execute(
            "UPDATE task_events SET created_at = created_at - ?", (40 * DAY,)))
        watcher = RetentionWatcher(lambda: [board], RetentionSettings(events_days=30),
                                   interval_seconds=3600, first_pass_seconds=0)
        async with anyio.create_task_group() as group:
            passed = watcher.passed
            group.start_soon(watcher.run)
            with anyio.fail_after(10):
                await passed.wait()
            group.cancel_scope.cancel()
        assert watcher.passes == 1
        assert [r.events for r in watcher.last] == [1]
        assert [e.kind for e in await board.events(task_id=task.id)] == ["created",
                                                                           "completed"]
    finally:
        await boards.close()
