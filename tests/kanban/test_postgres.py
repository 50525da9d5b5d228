"""What only the PostgreSQL backend does: its schema matches SQLite's, other hosts' commits wake
watchers by LISTEN/NOTIFY, one database clock, row locks that claimers pass over, an outbox that
several notifiers share, one connection pool for every board of a database (each transaction in
its board's schema), and errors that never show the DSN's password.

The rest of the kernel suite runs on both backends (tests/storage_backends.py); these run on
PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from kanban.board import Board
from kanban.errors import NotClaimable, StorageError
from kanban.home import Boards
from kanban.storage.backend import Storage
from kanban.storage.pg import PgDatabase, drop_namespace, schema_name
from kanban.storage.pg_dialect import placeholders
from kanban.storage.pg_pool import SharedPool
from kanban.storage.schema import migrate
from kanban.storage.tx import Tx
from kanban.testing import make_task, open_board
from kanban.timeutil import now
from tests.storage_backends import pg_dsn

pytestmark = pytest.mark.postgres_only


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Storage]:
    """A PostgreSQL storage of its own (whatever backend the suite's default is)."""
    dsn = pg_dsn()
    storage = Storage.postgres(dsn, namespace=f"p{time.monotonic_ns() % 10**12}", pool_size=3)
    try:
        yield storage
    finally:
        await asyncio.to_thread(drop_namespace, dsn, storage.namespace)


async def open_pg(tmp_path: Path, storage: Storage, host: str = "a") -> Board:
    """The board as one host sees it: its own local folder, the shared database."""
    return await Board.open(tmp_path / host / "boards" / "default" / "kanban.db",
                            storage=storage)


def test_placeholders_take_psycopgs_style_and_nothing_else_changes() -> None:
    assert placeholders("SELECT * FROM tasks WHERE id = ?", True) == (
        "SELECT * FROM tasks WHERE id = %s")
    # A '?' or '%' inside a literal is text, not a placeholder.
    assert placeholders("SELECT '?', x LIKE '%a%' FROM t WHERE y = ?", True) == (
        "SELECT '?', x LIKE '%%a%%' FROM t WHERE y = %s")
    assert placeholders("SELECT 1 WHERE x LIKE '%a%'", False) == "SELECT 1 WHERE x LIKE '%a%'"
    insert = "INSERT INTO task_links (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING id"
    assert placeholders(insert, True) == insert.replace("?", "%s")


def test_a_long_slug_still_names_a_valid_schema() -> None:
    name = schema_name("x" * 64, "ns")
    assert len(name) <= 63 and name.startswith("rb_ns_x")
    assert schema_name("x" * 64, "ns") != schema_name("x" * 63 + "y", "ns")


async def test_the_schema_has_sqlites_tables_and_columns(tmp_path: Path, pg: Storage) -> None:
    conn = sqlite3.connect(tmp_path / "reference.db", isolation_level=None)
    try:
        migrate(conn)
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        expected = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        conn.close()
    board = await open_pg(tmp_path, pg)
    try:
        found = await board.db.read(lambda tx: {t: tx.columns(t) for t in expected})
        migrations = await board.db.read(
            lambda tx: [r[0] for r in tx.all("SELECT name FROM schema_migrations ORDER BY name")])
    finally:
        await board.close()
    assert {t: sorted(c) for t, c in found.items()} == {
        t: sorted(c) for t, c in expected.items()}
    conn = sqlite3.connect(tmp_path / "reference.db")
    try:
        assert migrations == [r[0] for r in conn.execute(
            "SELECT name FROM schema_migrations ORDER BY name")]
    finally:
        conn.close()


async def test_another_hosts_commit_wakes_a_watcher_without_polling(
    tmp_path: Path, pg: Storage,
) -> None:
    watcher = await open_pg(tmp_path, pg, "a")
    writer = await open_pg(tmp_path, pg, "b")
    try:
        assert await watcher.db.data_version() == 0  # starts the listener; nothing to poll
        version = watcher.changes.version
        started = time.monotonic()
        await make_task(writer, "from elsewhere")
        assert await watcher.changes.wait(version, timeout=5) > version
        assert time.monotonic() - started < 2
        # Its own commits bump once (not again through its own NOTIFY).
        version = watcher.changes.version
        await make_task(watcher, "mine")
        assert watcher.changes.version == version + 1
        assert await watcher.changes.wait(version + 1, timeout=0.3) == version + 1
    finally:
        await watcher.close()
        await writer.close()


async def test_inside_a_transaction_the_clock_is_the_servers(tmp_path: Path, pg: Storage) -> None:
    board = await open_pg(tmp_path, pg)
    assert isinstance(board.db, PgDatabase)
    try:
        def read(tx: Tx) -> tuple[float, float]:
            ours = now()
            server = float(tx.one("SELECT extract(epoch FROM clock_timestamp())::float8")[0])
            return ours, server

        ours, server = await board.db.read(read)
        assert ours <= server  # read once at the first now(), before the server's next tick
        assert server - ours < 1
        task = await make_task(board, "t")
        claim = await board.claim(task.id, ttl=60)
        run = await board.get_run(claim.run_id)
        assert run.claimed_at is not None and run.expires_at == run.claimed_at + 60
        assert abs(await board.current_time() - time.time()) < 5  # same machine here
    finally:
        await board.close()


async def test_a_claimer_passes_over_a_task_another_one_holds(tmp_path: Path,
                                                              pg: Storage) -> None:
    board = await open_pg(tmp_path, pg)
    assert isinstance(board.db, PgDatabase)
    try:
        task = await make_task(board, "contended")
        assert pg.dsn is not None
        with psycopg.connect(pg.dsn) as other:
            other.execute(f'SELECT 1 FROM "{board.db.schema}".tasks WHERE id = %s FOR UPDATE',
                          (task.id,))
            started = time.monotonic()
            with pytest.raises(NotClaimable, match="another claimer holds it"):
                await board.claim(task.id)
            assert time.monotonic() - started < 2  # passed over, not waited for
            other.rollback()
        claim = await board.claim(task.id)
        assert claim.task_id == task.id
    finally:
        await board.close()


async def test_several_notifiers_share_the_outbox_and_each_row_goes_once(
    tmp_path: Path, pg: Storage,
) -> None:
    boards = [await open_pg(tmp_path, pg, host) for host in "abc"]
    try:
        first = boards[0]
        for index in range(30):
            task = await make_task(first, f"t{index}")
            await first.subscribe(task.id, platform="fake", chat=f"chat{index}")
            claim = await first.claim(task.id)
            await first.complete(task.id, lease=claim.lease, result="ok")
        assert await first.queue_notifications() == 30

        async def drain(board: Board) -> list[int]:
            got: list[int] = []
            while True:
                items = await board.claim_notifications(limit=4)
                if not items:
                    return got
                for item in items:
                    got.append(item.id)
                    await board.mark_notification_sent(item.id, [])

        claimed = await asyncio.gather(*(drain(b) for b in boards))
        every = [i for ids in claimed for i in ids]
        assert len(every) == 30 and len(set(every)) == 30
        # Nothing is released at start on a shared board: another notifier may be mid-send.
        assert await boards[1].release_notification_claims() == 0
    finally:
        for board in boards:
            await board.close()


async def test_a_corrupt_json_row_never_fails_the_board_view(tmp_path: Path,
                                                             pg: Storage) -> None:
    board = await open_pg(tmp_path, pg)
    try:
        good = await make_task(board, "good")
        odd = await make_task(board, "odd")
        await board.db.write(lambda tx: tx.execute(
            "UPDATE tasks SET skills = '{not json', metadata = '[]' WHERE id = ?", (odd.id,)))
        tasks = {t.id: t for t in await board.list_tasks()}
        assert set(tasks) == {good.id, odd.id}
        assert tasks[odd.id].skills == [] and tasks[odd.id].metadata == {}
        assert {c.id for c in await board.list_cards()} == {good.id, odd.id}
    finally:
        await board.close()


async def test_boards_are_listed_from_the_database_on_every_host(tmp_path: Path,
                                                                 pg: Storage) -> None:
    host_a = Boards(tmp_path / "a", storage=pg)
    host_b = Boards(tmp_path / "b", storage=pg)
    try:
        await host_a.create("ops", name="Operations")
        assert [b.slug for b in await host_b.list()] == ["default", "ops"]
        assert await host_b.exists("ops")
        board = await host_b.open("ops")
        await make_task(board, "seen from b")
        await host_a.remove("ops", delete=True)
        assert [b.slug for b in await host_b.list()] == ["default"]
    finally:
        await host_a.close()
        await host_b.close()


def pool_of(board: Board) -> SharedPool:
    assert isinstance(board.db, PgDatabase)
    return board.db.shared


async def pool_connections(storage: Storage) -> int:
    """Connections the server counts from this storage's pool (named after its namespace)."""
    assert storage.dsn is not None
    async with await psycopg.AsyncConnection.connect(storage.dsn) as conn:
        row = await (await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (f"relayboard:{storage.namespace}",))).fetchone()
    return int(row[0]) if row else 0


async def test_boards_of_one_database_share_one_pool_each_in_its_own_schema(
    tmp_path: Path, pg: Storage,
) -> None:
    slugs = ["one", "two-2", "three", "four", "five"]
    boards = [await Board.open(tmp_path / s / "kanban.db", slug=s, storage=pg) for s in slugs]
    try:
        assert len({id(pool_of(b)) for b in boards}) == 1
        for turn in range(3):
            await asyncio.gather(*(make_task(b, f"{b.slug} {turn}") for b in boards))
        # Five boards busy at once hold at most pool_size connections (a pool each held 5+).
        assert 1 <= await pool_connections(pg) <= pg.pool_size
        for b in boards:
            assert [t.title for t in await b.list_tasks()] == [f"{b.slug} {n}" for n in range(3)]
    finally:
        for b in boards[1:]:
            await b.close()
    assert not pool_of(boards[0]).pool.closed
    await boards[0].close()  # the last board closes the pool
    assert pool_of(boards[0]).pool.closed
    assert await pool_connections(pg) == 0
    again = await Board.open(tmp_path / "one" / "kanban.db", slug="one", storage=pg)
    try:
        assert len(await again.list_tasks()) == 3
    finally:
        await again.close()


async def test_one_connection_serves_boards_in_turn_and_a_rollback_leaves_no_schema_behind(
    tmp_path: Path, pg: Storage,
) -> None:
    storage = dataclasses.replace(pg, pool_size=1)
    a = await Board.open(tmp_path / "a" / "kanban.db", slug="a", storage=storage)
    b = await Board.open(tmp_path / "b" / "kanban.db", slug="b", storage=storage)

    def fails(tx: Tx) -> None:
        tx.execute("INSERT INTO tasks (title, status) VALUES ('lost', 'ready')")
        raise RuntimeError("rolled back")

    try:
        for board in (a, b, a, b):
            with pytest.raises(RuntimeError):
                await board.db.write(fails)
            await make_task(board, f"kept on {board.slug}")
        assert [t.title for t in await a.list_tasks()] == ["kept on a"] * 2
        assert [t.title for t in await b.list_tasks()] == ["kept on b"] * 2
    finally:
        await a.close()
        await b.close()


async def test_boards_whose_tables_differ_share_a_connection_and_each_reads_its_own(
    tmp_path: Path, pg: Storage,
) -> None:
    # A newer version migrated one board further (a column more). Statements are prepared per
    # board, so a SELECT * prepared on one board's table never runs on the other's.
    storage = dataclasses.replace(pg, pool_size=1)
    newer = await Board.open(tmp_path / "n" / "kanban.db", slug="newer", storage=storage)
    older = await Board.open(tmp_path / "o" / "kanban.db", slug="older", storage=storage)
    try:
        await newer.db.write(lambda tx: tx.execute("ALTER TABLE tasks ADD COLUMN later text"))
        await make_task(newer, "n")
        await make_task(older, "o")
        assert pool_of(newer) is pool_of(older)
        for _ in range(8):  # psycopg prepares a statement from its fifth run on
            assert [t.title for t in await newer.list_tasks()] == ["n"]
            assert [t.title for t in await older.list_tasks()] == ["o"]
    finally:
        await newer.close()
        await older.close()


async def test_a_wrong_password_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    dsn = pg_dsn()
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["password"] = "s3cret-not-this-one"
    bad = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})
    with pytest.raises(StorageError) as caught:
        await open_board(tmp_path, storage=Storage.postgres(bad, namespace="nope"))
    assert "s3cret-not-this-one" not in str(caught.value)
    assert "cannot connect to PostgreSQL" in str(caught.value)


async def test_completions_on_several_hosts_never_lose_a_promotion(tmp_path: Path,
                                                                   pg: Storage) -> None:
    # Completions run side by side on PostgreSQL (row locks, not the board's write lock): two
    # parents finishing at once must not each see the other unfinished and leave the child.
    boards = [await open_pg(tmp_path, pg, host) for host in "abc"]
    rng = random.Random(7)
    try:
        first = boards[0]
        parents = [await make_task(first, f"p{i}") for i in range(24)]
        children = [await make_task(first, f"c{j}", parents=sorted(
            {p.id for p in rng.sample(parents, 3)})) for j in range(24)]
        assert {c.status for c in children} == {"todo"}
        claims = [await first.claim(p.id) for p in parents]

        async def finish(index: int) -> None:
            board = boards[index % len(boards)]
            await board.complete(claims[index].task_id, lease=claims[index].lease)

        await asyncio.gather(*(finish(i) for i in range(len(claims))))
        statuses = {t.id: t.status for t in await first.list_tasks()}
        assert [statuses[c.id] for c in children] == ["ready"] * len(children)
    finally:
        for board in boards:
            await board.close()


async def test_a_child_made_or_linked_while_its_parent_completes_is_never_stranded(
    tmp_path: Path, pg: Storage,
) -> None:
    a = await open_pg(tmp_path, pg, "a")
    b = await open_pg(tmp_path, pg, "b")
    try:
        for _ in range(12):
            parent = await make_task(a, "parent")
            loose = await make_task(a, "loose child")  # ready, no parents yet
            claim = await a.claim(parent.id)
            _done, made, linked = await asyncio.gather(
                a.complete(parent.id, lease=claim.lease),
                b.create_task("new child", parents=[parent.id]),
                b.link(parent.id, loose.id))
            assert (await a.get_task(made.task.id)).status == "ready"
            assert (await a.get_task(linked.id)).status == "ready"
    finally:
        await a.close()
        await b.close()
