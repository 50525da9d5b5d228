"""Running the kernel and command-layer suites on both storage backends.

A test module whose source names a board (``open_board``, ``Boards(``, the ``board`` fixture, …)
runs once on SQLite and once on PostgreSQL: the autouse ``storage_backend`` fixture sets the
kernel's default storage, so every board the test opens — directly or through ``Boards`` — lives
in that backend. Each PostgreSQL test gets its own namespace (schemas ``rb_<ns>_<slug>``), dropped
afterwards.

PostgreSQL comes from ``RELAYBOARD_TEST_PG_DSN`` when it is set (``.ci/run`` starts a server and
sets it). Otherwise the first PostgreSQL test starts a throwaway server from the installed server
binaries (``tests/pg_server.py``) that the rest of the session shares and that is stopped and
removed when the session ends; a run that never reaches a PostgreSQL test never starts one. With
neither, the PostgreSQL half is skipped with the reason — except under ``CI``, where it fails: CI
must never pass by skipping.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanban.storage.backend import Storage, set_default_storage
from tests.pg_server import NoServer, ThrowawayPostgres

PG_DSN_ENV = "RELAYBOARD_TEST_PG_DSN"
BACKENDS = ("sqlite", "postgresql")
_BOARD_WORDS = ("open_board", "Boards(", "board:", "board_home", "Board.open")


# The session's throwaway server, or why there is none: decided once, by the first PostgreSQL test.
_throwaway: ThrowawayPostgres | None = None
_no_throwaway: str | None = None
_throwaway_lock = threading.Lock()


def pg_dsn() -> str:
    dsn = os.environ.get(PG_DSN_ENV, "")
    if dsn:
        return dsn
    server = throwaway_server()
    if server is not None:
        return server.dsn
    reason = (f"no throwaway PostgreSQL server ({_no_throwaway}): set {PG_DSN_ENV} "
              "to run this on PostgreSQL")
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI runs the PostgreSQL half of the suite (.ci/run starts the "
                    "server)")
    pytest.skip(reason)


def throwaway_server() -> ThrowawayPostgres | None:
    """The session's throwaway server, started on first use; None if it cannot run here."""
    global _throwaway, _no_throwaway
    with _throwaway_lock:
        if _throwaway is None and _no_throwaway is None:
            try:
                _throwaway = ThrowawayPostgres.start()
            except NoServer as exc:
                _no_throwaway = str(exc)
            else:
                # The session fixture stops it; atexit covers a session that never tears down.
                atexit.register(_throwaway.stop)
        return _throwaway


def started_throwaway() -> ThrowawayPostgres | None:
    """The throwaway server if this session started one (running or already stopped)."""
    return _throwaway


def stop_throwaway() -> None:
    if _throwaway is not None:
        _throwaway.stop()


def uses_boards(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return any(word in text for word in _BOARD_WORDS)


def generate(metafunc: pytest.Metafunc, folders: tuple[str, ...]) -> None:
    if "storage_backend" not in metafunc.fixturenames:
        return
    path = Path(str(metafunc.definition.fspath))
    if not any(f"/{folder}/" in str(path) for folder in folders) or not uses_boards(path):
        return
    if any(metafunc.definition.get_closest_marker(m) is not None
           for m in ("sqlite_only", "postgres_only")):
        return
    metafunc.parametrize("storage_backend", BACKENDS, indirect=True)


def storage_for(request: pytest.FixtureRequest) -> Iterator[Storage]:
    backend = getattr(request, "param", "sqlite")
    if backend != "postgresql":
        set_default_storage(None)
        yield Storage()
        return
    from kanban.storage.pg import drop_namespace

    dsn = pg_dsn()
    namespace = "t" + secrets.token_hex(5)
    storage = Storage.postgres(dsn, namespace=namespace, pool_size=3)
    set_default_storage(storage)
    # Processes the test starts (`relayboard kanban dispatch`, …) find the board the way a
    # worker does: from the environment.
    saved = {name: os.environ.get(name) for name in storage.as_environ()}
    os.environ.update(storage.as_environ())
    try:
        yield storage
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        set_default_storage(None)
        drop_namespace(dsn, namespace)
