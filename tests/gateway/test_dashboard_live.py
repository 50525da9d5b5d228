"""GET /api/events over a real socket: one shared tail per board, Last-Event-ID, other writers."""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway.config import load_config
from gateway.dashboard import create_app
from kanban import Board
from tests.gateway.browser.harness import serve, sse


async def test_two_clients_share_one_tail_and_see_the_same_events(tmp_path: Path) -> None:
    app = create_app(tmp_path, load_config(None, {}, home=tmp_path))
    async with serve(app) as served, httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        async with sse(client, "/api/events") as one, sse(client, "/api/events") as two:
            await one.next("hello")
            await two.next("hello")
            hub = app.state.dashboard.live
            assert list(hub.tails) == ["default"]
            tail = hub.tails["default"]
            assert tail.subscribers == 2
            reads_before = tail.reads
            made = await client.post("/api/tasks", json={"title": "live one"})
            assert made.status_code == 201
            task_id = made.json()["id"]
            first, second = await one.next(), await two.next()
            assert first["data"]["task_id"] == second["data"]["task_id"] == task_id
            assert first["data"]["kind"] == "created"
            assert first["id"] == second["id"] == str(first["data"]["id"])
            # One commit, one read of the log for both clients (plus at most one empty re-check).
            assert tail.reads - reads_before <= 2


async def test_last_event_id_resumes_after_the_cursor(tmp_path: Path) -> None:
    app = create_app(tmp_path, load_config(None, {}, home=tmp_path))
    async with serve(app) as served, httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        board = await app.state.dashboard.boards.open("default")
        ids = [(await board.create_task(f"t{i}")).task.id for i in range(3)]
        events = await board.events()
        cursor = events[0].id  # the first task's "created"
        async with sse(client, "/api/events", {"Last-Event-ID": str(cursor)}) as stream:
            got = [await stream.next(), await stream.next()]
            assert [f["data"]["task_id"] for f in got] == ids[1:]
            assert all(int(f["id"]) > cursor for f in got)
            await board.create_task("after")
            later = await stream.next()
            assert later["data"]["payload"]["title"] == "after"


async def test_writes_from_another_process_reach_the_stream(tmp_path: Path) -> None:
    app = create_app(tmp_path, load_config(None, {}, home=tmp_path), poll_seconds=0.05)
    async with serve(app) as served, httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        board = await app.state.dashboard.boards.open("default")
        async with sse(client, "/api/events") as stream:
            await stream.next("hello")
            # A second connection to the file stands for the CLI in another process: its commit
            # does not bump our in-process signal, only SQLite's data_version.
            async with Board.open(board.db.path) as other:
                created = (await other.create_task("from the CLI")).task
            frame = await stream.next()
            assert frame["data"]["task_id"] == created.id


async def test_unknown_board_stream_is_a_404(tmp_path: Path) -> None:
    app = create_app(tmp_path, load_config(None, {}, home=tmp_path))
    async with serve(app) as served, httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        response = await client.get("/api/events?board=nope")
        assert response.status_code == 404
        assert "does not exist" in response.json()["error"]


async def test_an_event_that_commits_below_the_cursor_still_reaches_the_stream(
    tmp_path: Path,
) -> None:
    # On PostgreSQL a claim commits beside other writes, so its event can land after one with a
    # higher id. Stand-in: an event whose id was held back is written once the tail has moved on.
    app = create_app(tmp_path, load_config(None, {}, home=tmp_path))
    async with serve(app) as served, httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        board = await app.state.dashboard.boards.open("default")
        first = (await board.create_task("one")).task.id
        held = (await board.events())[-1].id + 1
        await board.db.write(lambda tx: tx.execute(
            "INSERT INTO task_events (id, task_id, kind, payload, created_at) "
            "VALUES (?, ?, 'placeholder', '{}', 0)", (held, first)))
        await board.create_task("two")
        await board.db.write(lambda tx: tx.execute("DELETE FROM task_events WHERE id = ?",
                                                   (held,)))
        async with sse(client, "/api/events") as stream:
            await stream.next("hello")
            await board.create_task("three")
            assert (await stream.next())["data"]["payload"]["title"] == "three"
            await board.db.write(lambda tx: tx.execute(
                "INSERT INTO task_events (id, task_id, kind, payload, created_at) "
                "VALUES (?, ?, 'claimed', '{\"late\": true}', 0)", (held, first)))
            board.changes.bump()
            late = await stream.next()
            assert late["id"] == str(held) and late["data"]["payload"] == {"late": True}
            await board.create_task("four")
            assert (await stream.next())["data"]["payload"]["title"] == "four"  # once only
