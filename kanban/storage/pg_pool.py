"""One connection pool per PostgreSQL database in a process, shared by every board open in it,
opened by the first board and closed by the last.

A board is a schema, and its statements name their tables unqualified: each transaction starts
with ``BEGIN; SET LOCAL search_path TO <board schema>, public`` (one round trip), which ends
with the transaction, committed or rolled back — nothing is tracked per connection. Each
statement begins with a comment naming the schema (``PgDatabase.tag``), so the statements
psycopg prepares (keyed by their text) are each board's own: shared, every switch of board
would re-plan them (a third to a half more per transaction, measured) and a ``SELECT *`` would
fail on a board whose table a newer version has migrated further.
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any, cast

import psycopg
import psycopg_pool

from kanban.storage.pg_dialect import adapt, row_factory

CONNECT_TIMEOUT = 10.0


def _configure(conn: psycopg.Connection[Any]) -> None:
    adapt(conn)
    conn.row_factory = cast(Any, row_factory)
    conn.prepared_max = 400  # room for several busy boards' statements (psycopg's default: 100)


class SharedPool:
    """A connection pool and the threads that run transactions on it (one per connection).
    It connects in the background: a board's opener has already reached the server."""

    def __init__(self, key: tuple[str, str, int]) -> None:  # DSN, namespace, size
        dsn, namespace, size = key
        name = f"relayboard:{namespace}" if namespace else "relayboard"
        self.key = key
        self.users = 0
        self.pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            dsn, min_size=1, max_size=size, open=True, configure=_configure,
            kwargs={"autocommit": True, "application_name": name[:63]}, name=name,
            timeout=CONNECT_TIMEOUT)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=size, thread_name_prefix="kanban-pg")

    def close(self) -> None:
        self.pool.close(5)
        self.executor.shutdown(wait=False)


_pools: dict[tuple[str, str, int], SharedPool] = {}
_lock = threading.Lock()


def acquire(dsn: str, namespace: str, size: int) -> SharedPool:
    """The pool for a board of this database; :func:`release` it when the board closes."""
    key = (dsn, namespace, max(1, size))
    with _lock:
        shared = _pools.get(key)
        if shared is None:
            shared = _pools[key] = SharedPool(key)
        shared.users += 1
        return shared


def release(shared: SharedPool) -> bool:
    """One board fewer; True when it was the last, and the caller closes the pool."""
    with _lock:
        shared.users -= 1
        if shared.users > 0:
            return False
        del _pools[shared.key]
        return True
