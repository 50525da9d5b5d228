"""A board on PostgreSQL: one schema per board, a connection pool its process's boards share
(:mod:`kanban.storage.pg_pool`), and the same transaction-body contract as SQLite (``fn(tx)``
run as one call on a database thread).

What PostgreSQL does here that SQLite cannot, and how:

* **Concurrent writers.** Every write transaction takes the board's ``write`` advisory lock
  unless the caller declares it independent (``exclusive=False``: claims, completions,
  heartbeats, outbox claims), so the kernel's graph rules hold exactly as under SQLite's single
  writer, while the hot paths run side by side under row locks (claims pick rows with
  ``FOR UPDATE SKIP LOCKED``; a completion locks its task, then each child before reading the
  child's parents — see :mod:`kanban.storage.store`).
* **Wake-ups.** Each write ends with ``pg_notify`` on the board's channel before ``COMMIT``; a
  listener connection (started by the first :meth:`PgDatabase.data_version`) bumps the
  ``on_external`` hooks within milliseconds of a commit on any host.
* **One clock.** Inside a transaction :func:`kanban.timeutil.now` reads the database server's
  clock, so leases, back-off and due times are judged by one clock whatever the hosts' say.

The driver is psycopg 3 with ``psycopg_pool``: the transaction bodies are synchronous (one
thread hop per transaction, never per statement), so they run on the pool's connections, one
thread per connection; the listener (one connection per watched board) and the leader locks
(:mod:`kanban.storage.leader`) use psycopg's asyncio connections of their own.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from psycopg.conninfo import conninfo_to_dict

from kanban.errors import InvalidInput, StorageError
from kanban.storage.modes import private_dir
from kanban.storage.pg_dialect import PgCursor, adapt, placeholders
from kanban.storage.pg_pool import CONNECT_TIMEOUT, SharedPool, acquire, release
from kanban.storage.pg_schema import COMPAT_FUNCTIONS, MIGRATIONS, catalog_ddl, catalog_schema
from kanban.storage.tx import Tx, committed
from kanban.timeutil import clock_source, now

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIES = 8  # a write that hit a deadlock or a serialisation failure runs again, up to this
MIGRATE_LOCK = "relayboard:migrate"


# ---- names and keys -------------------------------------------------------------------------

def schema_name(slug: str, namespace: str = "") -> str:
    """The board's schema: ``rb_<slug>`` (``rb_<namespace>_<slug>``). An identifier is at most
    63 bytes: a long slug keeps its head and a hash."""
    prefix = f"rb_{namespace}_" if namespace else "rb_"
    name = prefix + slug
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(slug.encode()).hexdigest()[:12]
    return f"{prefix}{slug[:50 - len(prefix)]}_{digest}"


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for a name."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def describe_dsn(dsn: str) -> str:
    """``host:port/dbname`` — names the server without echoing the password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "PostgreSQL (unreadable DSN)"
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or "5432")
    return f"PostgreSQL {host}:{port}/{parts.get('dbname') or parts.get('user') or ''}"


def error_text(exc: BaseException) -> str:
    """The server's message without any DSN (psycopg's connection errors can quote it)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"password=\S+", "password=***", text)


class PgTx(Tx):
    """A transaction on one pooled PostgreSQL connection."""

    __slots__ = ("_clock", "_db", "conn")

    backend = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any], db: PgDatabase,
                 clock: float | None = None) -> None:
        super().__init__()
        self.conn = conn
        self._db = db
        self._clock = clock

    def _run(self, cursor: psycopg.Cursor[Any], query: str, params: Sequence[Any]
             ) -> psycopg.Cursor[Any]:
        """Run one statement; a value PostgreSQL refuses is the caller's bad
        input (:class:`InvalidInput`), not a storage failure."""
        try:
            return cursor.execute(cast(Any, query), params or None)
        except pg_errors.DataError as exc:
            raise _data_error(exc) from exc
        except UnicodeEncodeError as exc:
            raise InvalidInput("a text value is not valid UTF-8 text") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        query = self._db.tag + placeholders(sql, bool(params))
        return PgCursor(self._run(self.conn.cursor(), query, params))

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        query = self._db.tag + placeholders(sql, bool(params))
        with self.conn.cursor(row_factory=psycopg.rows.tuple_row) as cursor:
            return list(self._run(cursor, query, params).fetchall())

    def columns(self, table: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s ORDER BY ordinal_position", (table,))
        return [str(r[0]) for r in rows]

    def lock(self, name: str) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)",
                          (lock_key(self._db.schema, name),))

    @property
    def for_update(self) -> str:
        return " FOR UPDATE"

    @property
    def skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED"

    def for_update_of(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias}"

    def skip_locked_of(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"

    @property
    def for_share(self) -> str:
        return " FOR SHARE"

    def group_concat(self, expr: str) -> str:
        return f"string_agg(({expr})::text, ',')"

    def db_now(self) -> float:
        """The database server's clock, read once per transaction."""
        if self._clock is None:
            row = self.conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8"
                                    ).fetchone()
            self._clock = float(row[0]) if row else now()
        return self._clock


def _data_error(exc: pg_errors.DataError) -> InvalidInput:
    if isinstance(exc, pg_errors.NumericValueOutOfRange):
        return InvalidInput("a number is out of range (integers are 64-bit)")
    if "0x00" in str(exc) or isinstance(exc, pg_errors.UntranslatableCharacter):
        return InvalidInput("a text value contains a NUL character, which PostgreSQL text "
                            "cannot hold")
    return InvalidInput(f"a value was refused by PostgreSQL: {error_text(exc)}")


def _schema_current(conn: psycopg.Connection[Any], schema: str) -> bool:
    """True when the board's schema has every migration (one read; the common case for every
    process that opens an existing board)."""
    try:
        rows = conn.execute(pg_sql.SQL("SELECT name FROM {}.schema_migrations").format(
            pg_sql.Identifier(schema))).fetchall()
    except pg_errors.UndefinedTable:
        return False
    return {str(r[0]) for r in rows} >= {m.name for m in MIGRATIONS}


def _ensure_schema(conn: psycopg.Connection[Any], schema: str, namespace: str) -> list[str]:
    """Create the catalog and the board's schema, and apply its missing migrations (under one
    advisory lock, so racing openers on several hosts apply each migration once)."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(MIGRATE_LOCK),))
        for statement in catalog_ddl(catalog_schema(namespace)):
            conn.execute(cast(Any, statement))
        conn.execute(pg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            pg_sql.Identifier(schema)))
        conn.execute(pg_sql.SQL("SET search_path TO {}, public").format(
            pg_sql.Identifier(schema)))
        conn.execute(COMPAT_FUNCTIONS)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(name text PRIMARY KEY, applied_at double precision)")
        done = {str(r[0]) for r in conn.execute("SELECT name FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.name in done:
                continue
            if migration.sql.strip():
                conn.execute(cast(Any, migration.sql))
            conn.execute("INSERT INTO schema_migrations (name, applied_at) "
                         "VALUES (%s, extract(epoch FROM clock_timestamp()))", (migration.name,))
            applied.append(migration.name)
    return applied


def connect(dsn: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """One short-lived connection (catalog work, migrations, copies)."""
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=int(CONNECT_TIMEOUT))
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to {describe_dsn(dsn)}: {error_text(exc)}"
                           ) from exc
    adapt(conn)
    return conn


# ---- the board catalog ---------------------------------------------------------------------

def _has_catalog(conn: psycopg.Connection[Any], catalog: str) -> bool:
    return conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_name = 'boards'", (catalog,)).fetchone() is not None


def catalog_list(dsn: str, namespace: str = "") -> list[tuple[str, str, float]]:
    """(slug, name, created_at) of every board in the database."""
    catalog = catalog_schema(namespace)
    with connect(dsn) as conn:
        if not _has_catalog(conn, catalog):
            return []
        rows = conn.execute(f'SELECT slug, name, created_at FROM "{catalog}".boards '
                            "ORDER BY slug").fetchall()
    return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]


def catalog_worker_runs(dsn: str, namespace: str, pids: list[int], host: str
                        ) -> list[tuple[str, int, int, str, str | None, int, float | None]]:
    """(slug, task id, run id, lease, profile, worker pid, worker start) of every active run,
    on any board of the database, whose worker on ``host`` has one of ``pids``: one connection
    for all the boards."""
    catalog = catalog_schema(namespace)
    out: list[tuple[str, int, int, str, str | None, int, float | None]] = []
    with connect(dsn) as conn:
        if not _has_catalog(conn, catalog):
            return out
        boards = conn.execute(f'SELECT slug, schema_name FROM "{catalog}".boards').fetchall()
        for slug, schema in boards:
            rows = conn.execute(
                f'SELECT task_id, id, lease, profile, worker_pid, worker_started_at '
                f'FROM "{schema}".task_runs WHERE status = %s AND host = %s '
                "AND worker_pid = ANY(%s)", ("active", host, pids)).fetchall()
            out.extend((str(slug), int(r[0]), int(r[1]), str(r[2]),
                        None if r[3] is None else str(r[3]), int(r[4]),
                        None if r[5] is None else float(r[5])) for r in rows)
    return out


def catalog_add(dsn: str, slug: str, name: str, namespace: str = "") -> bool:
    """Record a board (and create its schema); False when it was there already."""
    schema = schema_name(slug, namespace)
    with connect(dsn) as conn:
        _ensure_schema(conn, schema, namespace)
        row = conn.execute(
            f'INSERT INTO "{catalog_schema(namespace)}".boards '
            "(slug, name, schema_name, created_at) "
            "VALUES (%s, %s, %s, extract(epoch FROM clock_timestamp())) "
            "ON CONFLICT (slug) DO NOTHING RETURNING slug",
            (slug, name, schema)).fetchone()
    return row is not None


def catalog_remove(dsn: str, slug: str, *, delete: bool, suffix: str, namespace: str = ""
                   ) -> str | None:
    """Drop a board's schema (``delete``) or rename it ``rbx_<suffix>``; returns the archive
    schema's name."""
    schema = schema_name(slug, namespace)
    target = None if delete else f"rbx_{namespace + '_' if namespace else ''}{suffix}"[:63]
    with connect(dsn) as conn, conn.transaction():
        conn.execute(f'DELETE FROM "{catalog_schema(namespace)}".boards WHERE slug = %s',
                     (slug,))
        if target is None:
            conn.execute(pg_sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                pg_sql.Identifier(schema)))
        else:
            conn.execute(pg_sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                pg_sql.Identifier(schema), pg_sql.Identifier(target)))
    return target


def drop_namespace(dsn: str, namespace: str) -> None:
    """Drop every board schema and the catalog of ``namespace`` (tests, uninstall)."""
    with connect(dsn) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s "
                            "OR nspname LIKE %s OR nspname = %s",
                            (f"rb\\_{namespace}\\_%", f"rbx\\_{namespace}\\_%",
                             catalog_schema(namespace))).fetchall()
        for (name,) in rows:
            conn.execute(pg_sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                pg_sql.Identifier(str(name))))


# ---- the open board ----------------------------------------------------------------------------

class PgDatabase:
    """An open board on PostgreSQL. Use :meth:`open`; always :meth:`close`.

    The same surface as :class:`kanban.storage.db.Database`: ``read``/``write`` run a
    transaction body on a database thread, writes are cancel-safe (a write handed over finishes,
    with its effects and hooks, whether or not its caller still waits), ``on_commit`` hooks run
    after each commit of this process, ``on_external`` hooks when another connection committed.
    """

    backend = "postgresql"
    journal_mode = "postgresql"

    def __init__(self, path: Path, dsn: str, slug: str, shared: SharedPool,
                 namespace: str = "") -> None:
        self.path = path
        self.dsn = dsn
        self.slug = slug
        self.namespace = namespace
        self.schema = schema_name(slug, namespace)
        self.channel = self.schema
        self.shared = shared
        # Each transaction starts in the board's schema; each statement names it (pg_pool).
        schema = f"SET LOCAL search_path TO {pg_sql.Identifier(self.schema).as_string()}, public"
        self._begin_read = f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {schema}"
        self._begin_write = f"BEGIN; {schema}"
        self.tag = f"/* {self.schema} */ "
        self._closed = False
        self._background: set[asyncio.Future[Any]] = set()
        self._token = secrets.token_hex(8)  # our own NOTIFYs carry it; the listener skips them
        self._listener: asyncio.Task[None] | None = None
        self.batches = 0
        self.on_commit: list[Callable[[Tx], None]] = []
        self.on_external: list[Callable[[], None]] = []
        self.write_lock_key = lock_key(self.schema, "write")

    @property
    def label(self) -> str:
        return f"board {self.slug!r} on {describe_dsn(self.dsn)}"

    @classmethod
    async def open(cls, path: Path, dsn: str, slug: str, *, pool_size: int = 4,
                   namespace: str = "") -> PgDatabase:
        schema = schema_name(slug, namespace)

        def setup() -> None:
            private_dir(path.parent)  # this host's folder: workspaces, logs, staged files
            with connect(dsn) as conn:
                if not _schema_current(conn, schema):
                    _ensure_schema(conn, schema, namespace)

        try:
            await asyncio.to_thread(setup)
        except psycopg.Error as exc:
            raise StorageError(f"cannot open board {slug!r} on {describe_dsn(dsn)}: "
                               f"{error_text(exc)}") from exc
        return cls(path, dsn, slug, acquire(dsn, namespace, pool_size), namespace)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        try:
            if self._background:
                await asyncio.wait(list(self._background), timeout=30)
        finally:
            self._closed = True
            if self._listener is not None:
                self._listener.cancel()
                await asyncio.gather(self._listener, return_exceptions=True)
            if release(self.shared):  # the last board of this process on the pool
                await asyncio.to_thread(self.shared.close)

    def track(self, work: asyncio.Future[Any]) -> None:
        self._background.add(work)
        work.add_done_callback(self._background.discard)

    async def settled(self) -> None:
        while self._background:
            await asyncio.wait(list(self._background))

    # ---- transactions ----------------------------------------------------------------------
    async def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in a read-only transaction with one snapshot (REPEATABLE READ)."""

        def run() -> T:
            with self.shared.pool.connection() as conn:
                conn.execute(self._begin_read)
                tx = PgTx(conn, self)
                try:
                    with clock_source(tx.db_now):
                        return fn(tx)
                finally:
                    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                        _rollback_quietly(conn)
                    else:
                        conn.execute("COMMIT")

        return await self._call(run)

    async def write(self, fn: Callable[[Tx], T], *, exclusive: bool = True) -> T:
        """Run ``fn`` in one transaction; see the module docstring for ``exclusive``.

        A deadlock or serialisation failure runs ``fn`` again on a fresh transaction (its
        effects are collected anew), so a body must not act outside the database except
        through ``after_commit``.
        """
        if self._closed:
            raise StorageError(f"{self.label} is closed")
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._write(fn, exclusive))
        self.track(task)
        result, tx = await asyncio.shield(task)
        if tx._pending:
            await asyncio.shield(asyncio.gather(*tx._pending))
        return result

    async def _write(self, fn: Callable[[Tx], T], exclusive: bool) -> tuple[T, Tx]:
        result, tx = await self._call(functools.partial(self._run_write, fn, exclusive))
        self.batches += 1
        committed([tx], self.on_commit, asyncio.get_running_loop(), self.track)
        return result, tx

    def _run_write(self, fn: Callable[[Tx], T], exclusive: bool) -> tuple[T, Tx]:
        attempt = 0
        while True:
            attempt += 1
            with self.shared.pool.connection() as conn:
                try:
                    conn.execute(self._begin_write)
                    clock = None
                    if exclusive:
                        row = conn.execute(
                            "SELECT pg_advisory_xact_lock(%s), "
                            "extract(epoch FROM clock_timestamp())::float8",
                            (self.write_lock_key,)).fetchone()
                        clock = float(row[1]) if row else None
                    tx = PgTx(conn, self, clock)
                    with clock_source(tx.db_now):
                        result = fn(tx)
                    conn.execute("SELECT pg_notify(%s, %s)", (self.channel, self._token))
                    conn.execute("COMMIT")
                    return result, tx
                except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                    conn.execute("ROLLBACK")
                    if attempt >= RETRIES:
                        raise
                    log.debug("%s: write retried after a deadlock/serialisation failure",
                              self.label)
                except BaseException:
                    _rollback_quietly(conn)
                    raise

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StorageError(f"{self.label} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.shared.executor, fn)
        except psycopg_pool.PoolTimeout as exc:
            raise StorageError(f"{self.label}: no database connection available "
                               f"({error_text(exc)})") from exc
        except psycopg.OperationalError as exc:
            raise StorageError(f"{self.label}: {error_text(exc)}") from exc
        except psycopg.DataError as exc:
            raise _data_error(exc) from exc
        except UnicodeEncodeError as exc:
            raise InvalidInput("a text value is not valid UTF-8 text") from exc
        except OverflowError as exc:
            raise InvalidInput("a number is out of range (integers are 64-bit)") from exc
        except psycopg.Error as exc:
            raise StorageError(f"database error on {self.label}: {error_text(exc)}") from exc

    # ---- other hosts' commits ----------------------------------------------------------------
    async def data_version(self) -> int:
        """Always 0: on PostgreSQL another connection's commit is not polled for — it arrives
        by LISTEN/NOTIFY and runs the ``on_external`` hooks at once. The first call starts the
        listener (a process that never watches, like a one-shot CLI command, never opens it)."""
        if self._listener is None and not self._closed:
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            self._listener = loop.create_task(self._listen(ready),
                                              name=f"kanban-pg-listen:{self.slug}")
            await asyncio.wait([ready, self._listener], timeout=CONNECT_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)
        return 0

    def _heard(self) -> None:
        for hook in self.on_external:
            try:
                hook()
            except Exception:
                log.exception("on-external hook failed")

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """LISTEN on the board's channel for as long as the board is open; reconnects with
        back-off, and counts a reconnect as a change (notifications may have been missed)."""
        delay = 0.5
        first = True
        while not self._closed:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT))
                async with conn:
                    await conn.execute(pg_sql.SQL("LISTEN {}").format(
                        pg_sql.Identifier(self.channel)))
                    if not ready.done():
                        ready.set_result(None)
                    if not first:
                        self._heard()
                    first = False
                    delay = 0.5
                    async for note in conn.notifies():
                        if note.payload != self._token:
                            self._heard()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                log.warning("%s: change listener lost (%s); reconnecting in %.1f s",
                            self.label, error_text(exc), delay)
            if not ready.done():
                ready.set_result(None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    """Roll back after a failed transaction body; a connection that broke meanwhile is the
    pool's to discard, and the body's own error is the one worth reporting."""
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    except psycopg.Error:
        log.debug("rollback failed on a broken connection", exc_info=True)
