"""Opening databases (WAL fallback, no leaked connection), migrations (old databases, racing
processes) and the schema cache around board removal."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from kanban.errors import BoardNotFound, InvalidInput, StorageError
from kanban.home import Boards
from kanban.storage import db as dbmod
from kanban.storage import schema
from kanban.storage.db import Database
from kanban.testing import make_task


async def test_wal_is_used_by_default(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "k.db")
    try:
        assert database.journal_mode == "wal"
    finally:
        await database.close()


async def test_wal_refusal_falls_back_to_delete_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = sqlite3.Connection.execute

    class Refusing(sqlite3.Connection):
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
            if sql.strip().upper() == "PRAGMA JOURNAL_MODE=WAL":
                raise sqlite3.OperationalError("locking protocol")
            return original(self, sql, *args)

    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect",
                        lambda *a, **k: real_connect(*a, **{**k, "factory": Refusing}))
    with caplog.at_level(logging.WARNING, logger="kanban.storage.db"):
        database = await Database.open(tmp_path / "k.db")
    try:
        assert database.journal_mode == "delete"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "locking protocol" in warnings[0].getMessage()
        from kanban.board import Board, BoardOptions

        board = Board("default", database, BoardOptions())
        task = await make_task(board, "still works")
        assert (await board.get_task(task.id)).title == "still works"
    finally:
        await database.close()


async def test_failed_setup_closes_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    real_close = aiosqlite.Connection.close

    async def tracking_close(self: aiosqlite.Connection) -> None:
        closed.append(True)
        await real_close(self)

    def broken_migrate(conn: sqlite3.Connection) -> list[str]:
        raise sqlite3.OperationalError("disk I/O error")

    # An existing file whose schema is checked again (a fresh one is built aside first).
    await (await Database.open(tmp_path / "broken.db")).close()
    dbmod.forget_schema(tmp_path / "broken.db")
    monkeypatch.setattr(aiosqlite.Connection, "close", tracking_close)
    monkeypatch.setattr(dbmod, "migrate", broken_migrate)
    with pytest.raises(StorageError) as info:
        await Database.open(tmp_path / "broken.db")
    assert closed == [True]
    assert str(info.value) == (
        f"cannot set up board {tmp_path.name!r} database (broken.db): disk I/O error"
    )


async def test_a_file_that_is_not_a_database_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "kanban.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"\(kanban.db\): file is not a database"):
        await Database.open(path)


def _schema_of(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        out: dict[str, object] = {}
        for table in tables:
            out[table] = [tuple(r) for r in conn.execute(f"PRAGMA table_info({table})")]
            out[f"{table}.fks"] = sorted(tuple(r) for r in conn.execute(
                f"PRAGMA foreign_key_list({table})"))
        out["indexes"] = sorted(
            (r[0], r[1], r[2]) for r in conn.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type='index' "
                "AND sql IS NOT NULL"))
        out["migrations"] = [r[0] for r in conn.execute(
            "SELECT name FROM schema_migrations ORDER BY name")]
        return out
    finally:
        conn.close()


async def test_an_old_database_migrates_to_exactly_the_fresh_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    old = tmp_path / "old.db"
    await (await Database.open(fresh)).close()
    # An old board: only the base shape (no model_override, no outbox), with a task in it.
    conn = sqlite3.connect(old, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    conn.execute("BEGIN")
    schema.MIGRATIONS[0].apply(conn)
    # The first schema also declared two tables nothing ever used; the migrations drop them.
    conn.execute("CREATE TABLE board_meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("CREATE TABLE attachments (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id "
                 "INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE, run_id INTEGER, "
                 "name TEXT NOT NULL, path TEXT NOT NULL, size INTEGER, created_at REAL)")
    conn.execute("CREATE INDEX idx_attachments_task ON attachments (task_id)")
    conn.execute("INSERT INTO schema_migrations VALUES ('0001_base', 0)")
    conn.execute("INSERT INTO tasks (title, status, created_at) VALUES ('legacy', 'ready', "
                 "'2026-05-10T15:00:00Z')")
    conn.execute("COMMIT")
    conn.close()
    assert "model_override" not in str(_schema_of(old)["tasks"])

    database = await Database.open(old)
    try:
        from kanban.board import Board, BoardOptions

        board = Board("default", database, BoardOptions())
        task = await board.get_task(1)
        assert task.model_override is None and task.created_at == 1778425200.0
        await board.set_model(1, "gpt-5")
        assert (await board.get_task(1)).model_override == "gpt-5"
    finally:
        await database.close()
    assert _schema_of(old) == _schema_of(fresh)
    assert "attachments" not in _schema_of(old) and "board_meta" not in _schema_of(old)


def test_migrations_are_idempotent_and_recorded(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        assert schema.migrate(conn) == [m.name for m in schema.MIGRATIONS]
        assert schema.migrate(conn) == []
    finally:
        conn.close()


def test_adding_a_column_tolerates_a_racing_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = sqlite3.connect(tmp_path / "race.db", isolation_level=None)
    try:
        conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        conn.execute("BEGIN")
        schema.MIGRATIONS[0].apply(conn)
        conn.execute("INSERT INTO schema_migrations VALUES ('0001_base', 0)")
        # Another process added the column but had not recorded its migration yet.
        conn.execute("ALTER TABLE tasks ADD COLUMN model_override TEXT")
        conn.execute("COMMIT")
        with caplog.at_level(logging.INFO, logger="kanban.storage.schema"):
            applied = schema.migrate(conn)
        assert applied == [m.name for m in schema.MIGRATIONS[1:]]
        assert any("already present" in r.getMessage() for r in caplog.records)
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            schema.add_column("nope", "x", "TEXT")(conn)
    finally:
        conn.close()


@pytest.mark.sqlite_only  # SQLite's schema cache per file
async def test_board_removal_drops_the_schema_cache_first(tmp_path: Path) -> None:
    boards = Boards(tmp_path)
    try:
        await boards.create("team")
        path = boards.db_path("team")
        assert dbmod._schema_known(path)
        archived = await boards.remove("team")
        assert archived is not None and (archived / "kanban.db").is_file()
        assert archived.parent.name == "_archived"
        assert not dbmod._schema_known(path)
        # A racing open of the same path (the dashboard's poll loop, say) must set up a fresh
        # schema instead of trusting a stale cache entry and failing with "no such table".
        racing = await Database.open(path)
        try:
            from kanban.board import Board, BoardOptions

            board = Board("team", racing, BoardOptions())
            assert await board.events() == []
        finally:
            await racing.close()
    finally:
        await boards.close()


async def test_boards_create_list_remove(tmp_path: Path) -> None:
    boards = Boards(tmp_path)
    try:
        assert [b.slug for b in await boards.list()] == ["default"]
        info = await boards.create("ops", name="Operations")
        assert (info.slug, info.name) == ("ops", "Operations")
        assert [b.slug for b in await boards.list()] == ["default", "ops"]
        with pytest.raises(InvalidInput, match="invalid board slug"):
            await boards.create("Bad Slug")
        with pytest.raises(InvalidInput, match="default board cannot be removed"):
            await boards.remove("default")
        with pytest.raises(BoardNotFound, match="board 'ghost' does not exist"):
            await boards.open("ghost")
        assert await boards.remove("ops", delete=True) is None
        assert not (tmp_path / "boards" / "ops").exists()
        assert [b.slug for b in await boards.list()] == ["default"]
        default = await boards.open()
        assert (await boards.open("default")) is default
    finally:
        await boards.close()
