"""Board.list_cards, the board view's read, on real board files: it agrees with the full task
listing, reads what old or hand-edited rows hold without failing, and is what GET /api/board
serves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from gateway.config import load_config
from gateway.dashboard import create_app
from kanban import Board
from kanban.board.cards import REASON_CHARS, Card, CardWindow
from kanban.storage.db import Tx
from kanban.testing import claim_and_complete, open_board
from kanban.timeutil import to_epoch


async def test_cards_agree_with_the_full_listing(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        root = (await board.create_task("root", assignee="alice", priority=3)).task
        kids = [(await board.create_task(f"kid {i}", parents=[root.id])).task for i in range(3)]
        grandkid = (await board.create_task("grandkid", parents=[kids[0].id, kids[1].id])).task
        await board.create_task("idea", triage=True)
        await claim_and_complete(board, root.id, artifacts=["/nowhere/a.png", "/nowhere/b.csv"])
        await claim_and_complete(board, kids[0].id)
        await board.archive([kids[1].id])
        await board.block(kids[2].id, "waiting for the customer", as_operator=True)

        tasks = await board.list_tasks(with_body=False)
        cards = await board.list_cards()
        assert [c.id for c in cards] == [t.id for t in tasks]  # same order, archived left out
        by_id = {c.id: c for c in cards}
        for task in tasks:
            c = by_id[task.id]
            assert (c.title, c.status, c.assignee, c.priority, c.created_at, c.updated_at,
                    c.completed_at, c.failures, c.files, c.parents, c.children) == (
                task.title, task.status, task.assignee, task.priority, task.created_at,
                task.updated_at, task.completed_at, task.consecutive_failures,
                len(task.artifacts), len(task.parents), len(task.children))
        # done + archived children count as finished; the archived one is not listed itself.
        assert (by_id[root.id].children_done, by_id[root.id].children) == (2, 3)
        assert by_id[root.id].files == 2
        assert (by_id[grandkid.id].parents, by_id[grandkid.id].children) == (2, 0)
        assert by_id[kids[2].id].reason == "waiting for the customer"
        assert by_id[root.id].reason is None
        assert kids[1].id not in by_id
        archived = {c.id: c for c in await board.list_cards(include_archived=True)}
        assert archived[kids[1].id].status == "archived"
    finally:
        await board.close()


async def test_cards_read_old_and_hand_edited_rows(tmp_path: Path) -> None:
    board = await open_board(tmp_path)
    try:
        iso = (await board.create_task("iso times")).task
        junk = (await board.create_task("junk everywhere")).task
        long = (await board.create_task("long reason")).task
        await board.block(long.id, "word " * 60, as_operator=True)
        failed = (await board.create_task("failed")).task
        await board.block(failed.id, "x", as_operator=True)

        def spoil(tx: Tx) -> None:
            tx.execute("UPDATE tasks SET created_at = '2024-05-01T10:00:00Z', "
                       "updated_at = '1714557600' WHERE id = ?", (iso.id,))
            tx.execute("UPDATE tasks SET created_at = 'yesterday-ish', updated_at = x'00ff', "
                       "priority = 'high', consecutive_failures = 'many', "
                       "metadata = '{not json', assignee = 42 WHERE id = ?", (junk.id,))
            # An empty blocked reason falls back to the last error, as the full listing does.
            tx.execute("UPDATE tasks SET blocked_reason = '', last_failure_error = 'boom: exit 3'"
                       " WHERE id = ?", (failed.id,))
            tx.execute("UPDATE tasks SET metadata = '{\"artifacts\": \"not a list\"}' "
                       "WHERE id = ?", (long.id,))

        await board.db.write(spoil)
        cards = {c.id: c for c in await board.list_cards()}
        assert cards[iso.id].created_at == to_epoch("2024-05-01T10:00:00Z") == 1714557600.0
        assert cards[iso.id].updated_at == 1714557600.0
        bad = cards[junk.id]
        assert (bad.title, bad.created_at, bad.updated_at, bad.priority, bad.failures, bad.files,
                bad.assignee, bad.corrupt) == ("junk everywhere", None, None, 0, 0, 0, "42", None)
        reason = cards[long.id].reason
        assert reason is not None and reason.endswith("…") and len(reason) <= REASON_CHARS
        assert reason[:-1].split() == ["word"] * len(reason[:-1].split())  # whole words only
        assert cards[long.id].files == 0
        assert cards[failed.id].reason == "boom: exit 3"
    finally:
        await board.close()


async def test_board_api_serves_cards_from_list_cards(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    app = create_app(home, load_config(None, {}, home=home))
    async with app.router.lifespan_context(app):
        board: Board = await app.state.dashboard.boards.open("default")
        parent = (await board.create_task("parent", assignee="bob")).task
        await board.create_task("child", parents=[parent.id])
        await board.db.write(lambda tx: tx.execute(
            "UPDATE tasks SET created_at = 'garbage' WHERE id = ?", (parent.id,)))
        calls: list[bool] = []
        original = board.list_cards

        async def counted(*, include_archived: bool = False) -> list[Card]:
            calls.append(include_archived)
            return await original(include_archived=include_archived)

        board.list_cards = counted  # type: ignore[method-assign]
        windows: list[int] = []
        window = board.card_window

        async def counted_window(statuses: Sequence[str], *, limit: int) -> CardWindow:
            windows.append(limit)
            return await window(statuses, limit=limit)

        board.card_window = counted_window  # type: ignore[method-assign]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport,
                                     base_url="http://127.0.0.1:8765") as client:
            data = (await client.get("/api/board")).json()
            again = (await client.get("/api/board")).json()
            listed = (await client.get("/api/tasks?assignee=bob")).json()
        # The board: one windowed read (then kept for its version); /tasks: every card.
        assert windows == [200] and calls == [False]
        assert again == data
        ready = data["columns"][2]["tasks"]
        assert ready == [{
            "id": parent.id, "title": "parent", "status": "ready", "assignee": "bob",
            "priority": 0, "created_at": None, "updated_at": ready[0]["updated_at"],
            "completed_at": None, "failures": 0, "children": [0, 1], "parents": 0, "files": 0,
            "reason": None, "corrupt": None, "starts_at": None, "schedule_id": None}]
        assert [c["id"] for c in listed] == [parent.id]
