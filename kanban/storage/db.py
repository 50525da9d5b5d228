"""One SQLite connection per board file, with transactions that cross to the database thread once.

aiosqlite gives each connection its own thread. Issuing one ``await`` per statement costs a
thread hop each; a whole transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) instead runs as one plain
function on that thread, which roughly doubles write throughput.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from kanban.errors import InvalidInput, StorageError
from kanban.storage.modes import PRIVATE_FILE_MODE, private_dir, private_files
from kanban.storage.schema import migrate
from kanban.storage.tx import Tx, committed

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 15_000
MAX_BATCH = 64  # writes grouped into one commit at most

# Paths whose schema this process has already brought up to date. Board removal drops the entry
# BEFORE touching the filesystem, so a racing open of the same slug sets up a fresh file.
_schema_ready: set[str] = set()
_schema_lock = threading.Lock()


def forget_schema(path: Path) -> None:
    with _schema_lock:
        _schema_ready.discard(str(path.resolve()))


def _schema_known(path: Path) -> bool:
    with _schema_lock:
        return str(path.resolve()) in _schema_ready


def _mark_schema(path: Path) -> None:
    with _schema_lock:
        _schema_ready.add(str(path.resolve()))


async def _on_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(sqlite3_connection)`` as ONE call on aiosqlite's database thread.

    aiosqlite's public API hops threads once per statement; its ``_execute`` queues an arbitrary
    function on the connection's thread, which is what a whole transaction needs. Kept to this
    one function so an aiosqlite change has one place to land.
    """
    execute: Callable[..., Awaitable[T]] = conn._execute
    return await execute(fn, conn._conn)


def _label(path: Path) -> str:
    """``board 'slug' (kanban.db)`` — names the board without echoing the host path."""
    return f"board {path.parent.name!r} database ({path.name})"


def set_journal_mode(conn: sqlite3.Connection) -> str:
    """Switch to WAL; on filesystems that refuse it, fall back to DELETE with one warning."""
    try:
        row = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        mode = str(row[0]).lower() if row else ""
        if mode == "wal":
            return mode
        cause = f"SQLite kept journal_mode={mode or 'unknown'}"
    except sqlite3.OperationalError as exc:
        if _disk_full(exc):
            raise  # not a filesystem without WAL: reported as "disk full" by the opener
        cause = str(exc)
    log.warning(
        "WAL journal mode unavailable (%s); using DELETE journal mode instead "
        "(slower; common on network filesystems)",
        cause,
    )
    conn.execute("PRAGMA journal_mode=DELETE")
    return "delete"


def _setup(conn: sqlite3.Connection, *, path: Path, run_migrations: bool) -> str:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    mode = set_journal_mode(conn)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    if run_migrations:
        migrate(conn)
    return mode


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def _prepare_file(path: Path) -> None:
    """Refuse a 0-byte database, and create a missing one atomically as 0600.

    SQLite takes an empty file for an empty database, so a copy that failed half-way would
    silently become a new, empty board. A fresh database is therefore built beside its final
    name and linked into place only once it has its schema: a 0-byte ``kanban.db`` is then
    never ours, and a racing opener never sees one half-made.
    """
    private_dir(path.parent)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError as exc:
        raise StorageError(f"cannot open {_label(path)}: {exc.strerror or exc}") from exc
    if size == 0:
        raise StorageError(f"{_label(path)} is empty (0 bytes) — it may be a failed copy; "
                           "move it away to start fresh")
    if size is not None:
        return
    temp = path.with_name(f".{path.name}.new-{os.getpid()}-{threading.get_ident()}")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE))
        private_files(temp)
        conn = sqlite3.connect(temp, isolation_level=None)
        try:
            # The schema only: journal mode and the rest are set by the real open.
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn)
        finally:
            conn.close()
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another opener made it first: use theirs
        except OSError:
            if not path.exists():  # no hard links on this filesystem
                os.replace(temp, path)
    except (OSError, sqlite3.Error) as exc:
        if _disk_full(exc):
            raise StorageError(f"disk full: cannot create {_label(path)}") from exc
        raise StorageError(f"cannot create {_label(path)}: {exc}") from exc
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-wal"),
                         temp.with_name(temp.name + "-shm")):
            leftover.unlink(missing_ok=True)


class SqliteTx(Tx):
    """A transaction on the board's SQLite connection (see :class:`~kanban.storage.tx.Tx`)."""

    __slots__ = ("conn",)

    backend = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: sqlite3.Row costs a lookup per field
        return list(cursor.execute(sql, params))

    def columns(self, table: str) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(
            "SELECT name FROM pragma_table_info(?)", (table,))]


@dataclass
class _Write:
    fn: Callable[[Tx], Any]
    future: asyncio.Future[tuple[Any, Tx]]


def _bad_value(exc: OverflowError | UnicodeEncodeError) -> InvalidInput:
    """The last line of defence for values the surfaces did not check: SQLite refuses to bind
    integers beyond 64 bits and text with lone surrogates (undecodable command-line bytes)."""
    if isinstance(exc, UnicodeEncodeError):
        return InvalidInput("a text value is not valid UTF-8 text")
    return InvalidInput("a number is out of range (SQLite integers are 64-bit)")


def _run_batch(conn: sqlite3.Connection, *, fns: list[Callable[[Tx], Any]]
               ) -> list[tuple[bool, Any]]:
    """One transaction for several writes; each write is isolated by a SAVEPOINT."""
    conn.execute("BEGIN IMMEDIATE")
    outcomes: list[tuple[bool, Any]] = []
    try:
        if len(fns) == 1:
            tx = SqliteTx(conn)
            try:
                outcomes.append((True, (fns[0](tx), tx)))
            except BaseException as exc:
                conn.execute("ROLLBACK")
                return [(False, exc)]
        else:
            for fn in fns:
                conn.execute("SAVEPOINT write")
                tx = SqliteTx(conn)
                try:
                    outcomes.append((True, (fn(tx), tx)))
                except BaseException as exc:
                    conn.execute("ROLLBACK TO write")
                    outcomes.append((False, exc))
                conn.execute("RELEASE write")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


class Database:
    """An open board database. Use :meth:`open`; always :meth:`close`.

    Writes are cancel-safe: once a write has been handed to the database thread, its commit,
    its after-commit effects and the ``on_commit`` hooks (which wake watchers) run to the end
    in the writer task, whether or not the caller is still waiting. The daemon's task group
    cancels on every shutdown; a cancelled caller must never leave rows and files (or rows and
    watchers) disagreeing.
    """

    backend = "sqlite"

    def __init__(self, path: Path, conn: aiosqlite.Connection, journal_mode: str) -> None:
        self.path = path
        self.journal_mode = journal_mode
        self._conn = conn
        self._closed = False
        self._queue: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.batches = 0  # commits made by the write queue (a burst shares one)
        self.on_commit: list[Callable[[Tx], None]] = []

    @classmethod
    async def open(cls, path: Path) -> Database:
        if sqlite3.sqlite_version_info < (3, 35):  # RETURNING; ON CONFLICT DO NOTHING is 3.24
            raise StorageError(f"SQLite {sqlite3.sqlite_version} is too old: boards need 3.35+")
        await asyncio.to_thread(_prepare_file, path)
        try:
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {_label(path)}: {exc}") from exc
        run_migrations = not _schema_known(path)
        try:
            mode = await _on_thread(conn, functools.partial(_setup, path=path,
                                                            run_migrations=run_migrations))
        except BaseException as exc:
            # Never leak the connection (and its thread) when setup fails after connect.
            await conn.close()
            if isinstance(exc, sqlite3.Error):
                if _disk_full(exc):
                    raise StorageError(f"disk full: cannot set up {_label(path)}") from exc
                raise StorageError(f"cannot set up {_label(path)}: {exc}") from exc
            raise
        if run_migrations:
            _mark_schema(path)
        # SQLite makes -wal and -shm with the database's own mode; an older file is tightened.
        private_files(path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        return cls(path, conn, mode)

    async def close(self) -> None:
        if self._closed:
            return
        try:
            writer = self._writer
            if writer is not None and not writer.done():
                await asyncio.wait([writer], timeout=30)
            if self._background:
                await asyncio.wait(list(self._background), timeout=30)
        finally:
            # Even when cancelled while queued writes finish, never leak the connection.
            self._closed = True
            await self._conn.close()

    def track(self, work: asyncio.Future[Any]) -> None:
        """Have :meth:`settled` and :meth:`close` wait for ``work`` (cleanup that outlives a
        cancelled caller)."""
        self._background.add(work)
        work.add_done_callback(self._background.discard)

    async def settled(self) -> None:
        """Wait until every queued write and every after-commit effect has finished."""
        while True:
            pending: list[asyncio.Future[Any]] = list(self._background)
            if self._writer is not None and not self._writer.done():
                pending.append(self._writer)
            if not pending:
                return
            await asyncio.wait(pending)

    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` on the database thread inside a read transaction (one snapshot)."""

        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(SqliteTx(conn))
            finally:
                conn.execute("COMMIT")

        return await self._call(run)

    async def write(self, fn: Callable[[Tx], T], *, exclusive: bool = True) -> T:
        """Run ``fn`` inside a ``BEGIN IMMEDIATE`` … ``COMMIT`` on the database thread.

        Writes that arrive while another is in flight are grouped into one commit (each in its
        own SAVEPOINT, so one failing write rolls back only itself): a commit costs an fsync,
        and a burst of completions then pays for one. An exception from ``fn`` rolls its own
        changes back and propagates to its caller. The writer task, not the caller, runs the
        after-commit effects, so they happen even when the caller was cancelled meanwhile; a
        write cancelled before its batch started never runs at all. ``exclusive`` matters only
        on PostgreSQL (SQLite serialises every writer).
        """
        if self._closed:
            raise StorageError(f"{_label(self.path)} is closed")
        loop = asyncio.get_running_loop()
        entry = _Write(fn, loop.create_future())
        self._queue.append(entry)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(),
                                            name=f"kanban-db-writer:{self.path.parent.name}")
        result, tx = await entry.future
        if tx._pending:
            # Thread effects (large file removals) finish before the caller hears back; a
            # cancelled caller leaves them running (close() waits for them).
            await asyncio.shield(asyncio.gather(*tx._pending))
        return cast(T, result)

    def _error(self, exc: BaseException) -> BaseException:
        error: BaseException
        if isinstance(exc, sqlite3.DatabaseError):
            error = StorageError(f"database error on {_label(self.path)}: {exc}")
        elif isinstance(exc, OverflowError | UnicodeEncodeError):
            error = _bad_value(exc)
        else:
            return exc
        error.__cause__ = exc
        return error

    async def _drain(self) -> None:
        """Write every queued entry, up to MAX_BATCH per commit, until the queue is empty."""
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = [e for e in self._queue[:MAX_BATCH] if not e.future.done()]
            del self._queue[:MAX_BATCH]
            if not batch:
                continue
            call = loop.create_task(
                self._call(functools.partial(_run_batch, fns=[e.fn for e in batch])))
            # Registered before anyone awaits `call`, so it runs first when the batch ends:
            # results and effects are settled even if this task is cancelled while waiting.
            call.add_done_callback(functools.partial(self._settle, batch))
            try:
                await asyncio.shield(call)
            except asyncio.CancelledError:
                # Only loop teardown cancels the writer: writes not yet started never will be.
                for e in self._queue:
                    if not e.future.done():
                        e.future.set_exception(StorageError(
                            f"{_label(self.path)}: the writer stopped before this write ran"))
                self._queue.clear()
                raise
            except BaseException:
                continue  # already handed to the callers by _settle

    def _settle(self, batch: list[_Write], call: asyncio.Task[list[tuple[bool, Any]]]) -> None:
        """Hand each write its outcome, wake watchers, run after-commit effects (on the loop)."""
        if call.cancelled():
            failure: BaseException | None = asyncio.CancelledError()
        else:
            failure = call.exception()
        if failure is not None:
            for e in batch:
                if not e.future.done():
                    e.future.set_exception(failure)
            return
        outcomes = call.result()
        done: list[Tx] = [value[1] for ok, value in outcomes if ok]
        if done:
            self.batches += 1
        committed(done, self.on_commit, call.get_loop(), self.track)
        for e, (ok, value) in zip(batch, outcomes, strict=True):
            if e.future.done():
                continue  # its caller was cancelled; the effects above ran regardless
            if ok:
                e.future.set_result(value)
            else:
                e.future.set_exception(self._error(value))

    async def data_version(self) -> int:
        """SQLite's per-connection counter that moves when ANOTHER connection commits."""

        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("PRAGMA data_version").fetchone()
            return int(row[0])

        return await self._call(run)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StorageError(f"{_label(self.path)} is closed")
        try:
            result: T = await _on_thread(self._conn, fn)
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"database error on {_label(self.path)}: {exc}") from exc
        except (OverflowError, UnicodeEncodeError) as exc:
            raise _bad_value(exc) from exc
        return result
