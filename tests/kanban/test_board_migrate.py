"""Moving a SQLite board to PostgreSQL: every table copied with its ids, the board works on
PostgreSQL afterwards, loosely typed values converted or named, and the refusals."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kanban import Board, Boards, Conflict, InvalidInput, KanbanError, Storage, StorageError
from kanban.move_to_postgres import migrate_board
from kanban.storage.pg import catalog_list, drop_namespace
from kanban.testing import claim_and_complete, make_task, open_board
from tests.storage_backends import pg_dsn

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def pg() -> Iterator[Storage]:
    dsn = pg_dsn()
    namespace = "m" + secrets.token_hex(5)
    yield Storage.postgres(dsn, namespace=namespace, pool_size=2)
    drop_namespace(dsn, namespace)


@pytest.fixture
async def sqlite_board(tmp_path: Path) -> AsyncIterator[Board]:
    board = await open_board(tmp_path, storage=Storage())
    try:
        yield board
    finally:
        await board.close()


def db_of(home: Path, slug: str = "default") -> Path:
    return home / "boards" / slug / "kanban.db"


def sql(home: Path, statement: str, params: tuple[Any, ...] = (), *,
        foreign_keys: bool = True) -> None:
    """A raw write to the board file, as an old version or a hand edit would leave it."""
    conn = sqlite3.connect(db_of(home))
    try:
        conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        conn.execute(statement, params)
        conn.commit()
    finally:
        conn.close()


async def build(board: Board) -> dict[str, int]:
    """A board with some history: a DAG, ended runs of each kind, comments, subscriptions,
    outbox rows (one delivered), and a deleted task whose id must never come back."""
    a = await make_task(board, "collect data", assignee="analyst", priority=5)
    b = await make_task(board, "clean data", body="drop outliers", skills=["pandas"])
    c = await make_task(board, "chart", parents=[a.id, b.id], model_override="m-1",
                        idempotency_key="chart-1")
    d = await make_task(board, "report", parents=[c.id], max_retries=3)
    e = await make_task(board, "side quest")
    await board.subscribe(c.id, platform="slack", chat="C1", thread="T1")
    await board.subscribe(d.id, platform="telegram", chat="42")
    await claim_and_complete(board, a.id, result="rows: 10", summary="collected",
                             metadata={"rows": 10})
    claim_b = await board.claim(b.id)
    await board.comment(b.id, "halfway", author="worker", lease=claim_b.lease)
    await board.block(b.id, "need the schema", lease=claim_b.lease)
    await board.unblock([b.id])
    await claim_and_complete(board, b.id, summary="clean")
    await board.comment(c.id, "use a bar chart", author="ana")
    claim_c = await board.claim(c.id)
    await board.block(c.id, "which colours?", lease=claim_c.lease)
    claim_e = await board.claim(e.id)
    assert await board.release(claim_e.run_id, reason="operator stopped it")
    gone = await make_task(board, "mistake")
    await board.archive([gone.id])
    assert await board.delete_archived([gone.id]) == [gone.id]
    assert await board.queue_notifications() > 0
    items = await board.claim_notifications(limit=10)
    assert items
    assert await board.mark_notification_sent(items[0].id, [{"platform": "slack", "id": "m1"}])
    return {"a": a.id, "b": b.id, "c": c.id, "d": d.id, "e": e.id, "gone": gone.id}


async def snapshot(board: Board) -> dict[str, Any]:
    tasks = await board.list_tasks(include_archived=True)
    return {
        "tasks": {t.id: await board.show_task(t.id, event_limit=1000) for t in tasks},
        "events": await board.events(limit=10_000),
        "events_after_3": await board.events(since=3, limit=10_000),
        "subscriptions": await board.subscriptions(),
        "outbox": await board.outbox(limit=1000),
        "last_event_id": await board.last_event_id(),
    }


async def test_a_board_moves_with_its_ids_and_keeps_working(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    ids = await build(sqlite_board)
    before = await snapshot(sqlite_board)
    await sqlite_board.close()

    moved = await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)

    assert moved.verified
    counts = {t.table: t.target_rows for t in moved.tables}
    assert counts["tasks"] == 5 and counts["task_links"] == 3
    assert counts["task_runs"] == 5 and counts["notify_subs"] == 2
    assert counts["task_comments"] == 2 and counts["notify_outbox"] >= 1
    assert counts["task_events"] == before["last_event_id"]
    assert "password" not in moved.target and "relayboard:relayboard" not in moved.target
    meta = json.loads((tmp_path / "boards" / "default" / "board.json").read_text())
    assert meta["storage"] == "postgresql" and meta["migrated_at"] > 0
    # The old file is kept, whole.
    conn = sqlite3.connect(db_of(tmp_path))
    assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 5
    conn.close()
    # ...but a process still configured for SQLite may not write to it: that would split the
    # board in two.
    stale = Boards(tmp_path, storage=Storage())
    with pytest.raises(StorageError, match="was moved to PostgreSQL"):
        await stale.open("default")
    await stale.close()

    boards = Boards(tmp_path, storage=pg)
    try:
        assert await boards.exists("default")
        board = await boards.open("default")
        after = await snapshot(board)
        assert after == before
        sent = [row for row in after["outbox"] if row["state"] == "sent"]
        assert sent and sent[0]["receipts"] == [{"platform": "slack", "id": "m1"}]

        # New rows continue past every id the SQLite board handed out (the deleted task's too).
        child = await make_task(board, "appendix", parents=[ids["c"]])
        assert child.id > ids["gone"] and child.status == "todo"
        fresh = await make_task(board, "follow-up", parents=[ids["a"]])
        assert fresh.status == "ready"
        claim, done = await claim_and_complete(board, fresh.id, summary="on postgres")
        assert done.status == "done"
        assert claim.run_id > max(r.id for t in before["tasks"].values() for r in t.runs)
        events = await board.events(since=before["last_event_id"], limit=100)
        assert events and events[0].id == before["last_event_id"] + 1
        unblocked = await board.unblock([ids["c"]])
        assert unblocked[0].status == "ready"
    finally:
        await boards.close()


async def test_loosely_typed_values_are_converted_and_reported(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    ids = await build(sqlite_board)
    await sqlite_board.close()
    # ISO text in a time column, a blob holding digits in an integer column, an unreadable time.
    sql(tmp_path, "UPDATE tasks SET started_at = '2024-05-01T12:00:00Z', priority = x'37' "
        "WHERE id = ?", (ids["d"],))
    sql(tmp_path, "UPDATE task_comments SET created_at = 'yesterday' WHERE task_id = ?",
        (ids["c"],))

    moved = await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)

    assert moved.verified
    text = "\n".join(moved.converted)
    assert f"tasks row {ids['d']}: started_at '2024-05-01T12:00:00Z' → 1714564800.0" in text
    assert f"tasks row {ids['d']}: priority '7' → 7" in text
    assert "created_at 'yesterday' → None" in text
    boards = Boards(tmp_path, storage=pg)
    try:
        task = await (await boards.open("default")).get_task(ids["d"])
        assert task.priority == 7 and task.started_at == 1714564800.0
    finally:
        await boards.close()


async def test_a_value_that_cannot_be_converted_stops_the_move_before_any_commit(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    ids = await build(sqlite_board)
    await sqlite_board.close()
    sql(tmp_path, "UPDATE tasks SET priority = 'high' WHERE id = ?", (ids["b"],))
    sql(tmp_path, "UPDATE task_runs SET exit_code = 2.5 WHERE task_id = ?", (ids["a"],))

    with pytest.raises(InvalidInput) as err:
        await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)

    message = str(err.value)
    assert f"tasks row {ids['b']}: priority holds 'high' where a whole number belongs" in message
    assert "(and 1 more value(s) like it)" in message
    assert "nothing was written to PostgreSQL" in message
    assert "\n" not in message
    assert pg.dsn is not None
    assert catalog_list(pg.dsn, pg.namespace) == []  # not even an empty board stays behind
    assert not (tmp_path / "boards" / "default" / "board.json").exists()  # no move recorded


async def test_text_that_is_not_utf8_is_named(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    task = await make_task(sqlite_board, "fine")
    await sqlite_board.close()
    sql(tmp_path, "UPDATE tasks SET body = CAST(x'ff00fe' AS TEXT) WHERE id = ?", (task.id,))

    with pytest.raises(InvalidInput, match=f"tasks row {task.id}: body holds .* not UTF-8"):
        await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)


async def test_rows_pointing_at_missing_tasks_are_named(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    await make_task(sqlite_board, "fine")
    await sqlite_board.close()
    sql(tmp_path, "INSERT INTO task_comments (task_id, author, body) VALUES (999, 'x', 'y')",
        foreign_keys=False)

    with pytest.raises(InvalidInput, match="task_comments row 1 refers to a tasks row that "
                                           "does not exist"):
        await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)


async def test_a_board_with_active_runs_is_refused(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    task = await make_task(sqlite_board, "running")
    await sqlite_board.claim(task.id)
    await sqlite_board.close()

    with pytest.raises(Conflict, match=rf"1 active run\(s\) \(task {task.id}\): workers are "
                                       "writing to it"):
        await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)
    assert pg.dsn is not None
    assert catalog_list(pg.dsn, pg.namespace) == []


async def test_a_target_with_data_is_refused_unless_replaced(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    await build(sqlite_board)
    before = await snapshot(sqlite_board)
    await sqlite_board.close()
    boards = Boards(tmp_path, storage=pg)
    try:
        other = await boards.open("default")
        await make_task(other, "written on postgres")
        await boards.close()

        with pytest.raises(Conflict, match=r"already holds data \(1 task"):
            await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)
        board = await boards.open("default")
        assert [t.title for t in await board.list_tasks()] == ["written on postgres"]
        await boards.close()

        moved = await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg,
                                    replace=True)
        assert moved.verified and moved.replaced_rows >= 2
        board = await boards.open("default")
        assert await snapshot(board) == before
    finally:
        await boards.close()


async def test_refusals_without_a_source_or_a_postgres_target(
    tmp_path: Path, pg: Storage,
) -> None:
    with pytest.raises(KanbanError, match="no SQLite database"):
        await migrate_board(Boards(tmp_path, storage=Storage()), "ops", pg)
    with pytest.raises(InvalidInput, match="only be moved to PostgreSQL"):
        await migrate_board(Boards(tmp_path, storage=Storage()), "default", Storage())
    with pytest.raises(InvalidInput):
        await migrate_board(Boards(tmp_path, storage=Storage()), "../x", pg)


async def test_attachment_files_move_into_the_database_for_other_hosts(
    tmp_path: Path, sqlite_board: Board, pg: Storage,
) -> None:
    task = await make_task(sqlite_board, "chart it")
    claim = await sqlite_board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "sales.csv").write_bytes(b"month,total\njan,3\n")
    done = await sqlite_board.complete(task.id, lease=claim.lease, artifacts=["sales.csv"])
    assert len(done.artifacts) == 1
    await sqlite_board.close()

    moved = await migrate_board(Boards(tmp_path, storage=Storage()), "default", pg)
    assert moved.stored_files == 1 and moved.unstored == []
    # Another host (its own home, no copy of the file) reads it back from the database.
    other = Boards(tmp_path / "host-b", storage=pg)
    try:
        board = await other.open("default")
        local = await board.local_artifacts(task.id, done.artifacts)
        assert [p.read_bytes() for p in local] == [b"month,total\njan,3\n"]
        assert str(tmp_path / "host-b") in str(local[0])
    finally:
        await other.close()
