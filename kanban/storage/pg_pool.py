"""One connection pool per PostgreSQL database in a process, shared by every board open in it.

A board is a schema, and its statements name their tables unqualified: each transaction starts
with ``BEGIN; SET LOCAL search_path TO <board schema>, public`` (one round trip). ``SET LOCAL``
ends with the transaction, committed or rolled back, so a connection never carries one board's
schema into another's transaction and nothing is tracked per connection.

psycopg prepares a statement run often on a connection, keyed by its text. Each statement
therefore begins with a comment naming its board's schema (``PgDatabase.tag``): a board's
prepared statements are its own, planned for its tables. Shared by text, each switch of board
would make the server plan them again (measured: a third to a half more per transaction when
boards take turns), and a ``SELECT *`` prepared on one board would fail on a board whose table
another version has migrated further.

The pool and its threads belong to the boards using them: the first opens them, the last to
close closes them.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, cast

import psycopg
import psycopg_pool

from kanban.storage.pg_dialect import adapt, row_factory

CONNECT_TIMEOUT = 10.0

PoolKey = tuple[str, str, int]
"""DSN, namespace, size."""


def _configure(conn: psycopg.Connection[Any]) -> None:
    adapt(conn)
    conn.row_factory = cast(Any, row_factory)
    conn.prepared_max = 400  # room for several busy boards' statements (psycopg's default: 100)


class SharedPool:
    """A connection pool and the threads that run transactions on it (one per connection)."""

    def __init__(self, key: PoolKey) -> None:
        dsn, namespace, size = key
        name = f"relayboard:{namespace}" if namespace else "relayboard"
        self.key = key
        self.pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            dsn, min_size=1, max_size=size, open=False, configure=_configure,
            kwargs={"autocommit": True, "application_name": name[:63]}, name=name,
            timeout=CONNECT_TIMEOUT)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="kanban-pg")
        self.users = 0
        self._opening = threading.Lock()
        self._opened = False
        self._failed: BaseException | None = None

    def open(self) -> None:
        """Open the pool once and wait for its first connection (on a worker thread); a board
        opening meanwhile waits for the same outcome."""
        with self._opening:
            if self._failed is not None:
                raise self._failed
            if not self._opened:
                try:
                    self.pool.open(wait=True, timeout=CONNECT_TIMEOUT)
                except BaseException as exc:
                    self._failed = exc
                    raise
                self._opened = True

    def close(self) -> None:
        self.pool.close(5)
        self.executor.shutdown(wait=False)


_pools: dict[PoolKey, SharedPool] = {}
_lock = threading.Lock()


def acquire(dsn: str, namespace: str, size: int) -> SharedPool:
    """The pool for a board of this database; :func:`release` it when the board closes."""
    key = (dsn, namespace, max(1, size))
    with _lock:
        shared = _pools.get(key)
        if shared is None or shared._failed is not None:
            shared = _pools[key] = SharedPool(key)
        shared.users += 1
        return shared


def release(shared: SharedPool) -> bool:
    """One board fewer; True when it was the last, and the caller closes the pool."""
    with _lock:
        shared.users -= 1
        if shared.users > 0:
            return False
        if _pools.get(shared.key) is shared:
            del _pools[shared.key]
        return True

