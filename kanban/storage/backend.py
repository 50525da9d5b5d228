"""Which database a board lives in: the storage seam.

:class:`Storage` is the one value that knows the backend. Everything above it — the
:class:`~kanban.board.Board` API, the command layer, the dispatcher, the notifier, the dashboard —
opens boards through it and runs unchanged on either:

* ``sqlite`` (the default): ``<home>/boards/<slug>/kanban.db``, one host.
* ``postgresql``: the board is the schema ``rb_<slug>`` in the database the DSN names; every host
  keeps its own ``<home>/boards/<slug>/`` folder for workspaces, logs and staged files.

Three variables describe a storage to another process (:meth:`Storage.as_environ`,
:meth:`Storage.from_environ`; the config loader honours them too). A worker is never given them:
it reaches its board through the worker API of the process that started it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from kanban.errors import InvalidInput, StorageError
from kanban.storage.tx import Tx

T = TypeVar("T")

Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[str, ...] = ("sqlite", "postgresql")

STORAGE_ENV = "RELAYBOARD_STORAGE"
"""A process's board backend (``postgresql``; absent means SQLite)."""
NAMESPACE_ENV = "RELAYBOARD_PG_NAMESPACE"
"""Its board namespace (see :attr:`Storage.namespace`)."""
DSN_ENV = "RELAYBOARD_PG_DSN"
"""The default variable holding the PostgreSQL DSN (``storage.dsn_env``)."""


_NAMESPACE = re.compile(r"[a-z0-9_]{1,16}")


class Store(Protocol):
    """An open board database (SQLite's :class:`~kanban.storage.db.Database` or
    :class:`~kanban.storage.pg.PgDatabase`)."""

    backend: str
    path: Path
    journal_mode: str
    batches: int
    on_commit: list[Callable[[Tx], None]]

    @property
    def closed(self) -> bool: ...

    async def read(self, fn: Callable[[Tx], T]) -> T: ...

    async def write(self, fn: Callable[[Tx], T], *, exclusive: bool = True) -> T: ...

    async def data_version(self) -> int: ...

    def track(self, work: asyncio.Future[Any]) -> None: ...

    async def settled(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Storage:
    """Where boards live. ``dsn`` (PostgreSQL only) holds a password: never printed."""

    backend: Backend = "sqlite"
    dsn: str | None = field(default=None, repr=False)
    pool_size: int = 4
    """PostgreSQL: connections (a thread each) to the database, shared by a process's boards."""
    namespace: str = ""
    """PostgreSQL: a prefix that keeps several independent installations (or test runs) apart
    in one database — boards are ``rb_<namespace>_<slug>``, the catalog
    ``relayboard_<namespace>``. Empty by default."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidInput(f"unknown storage backend {self.backend!r}; use sqlite or "
                               "postgresql")
        if self.backend == "postgresql" and not self.dsn:
            raise InvalidInput("the postgresql storage backend needs a DSN")
        if self.namespace and not _NAMESPACE.fullmatch(self.namespace):
            raise InvalidInput(f"invalid storage namespace {self.namespace!r}: use 1-16 of "
                               "a-z, 0-9 and '_'")

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    @property
    def shared(self) -> bool:
        """Boards here may be served by several hosts at once (gateways, dispatchers)."""
        return self.is_postgres

    @classmethod
    def postgres(cls, dsn: str, *, pool_size: int = 4, namespace: str = "") -> Storage:
        return cls("postgresql", dsn, pool_size, namespace)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Storage | None:
        """The storage ``environ`` describes (:meth:`as_environ`); None when it describes none."""
        if environ.get(STORAGE_ENV, "") != "postgresql":
            return None
        dsn = environ.get(DSN_ENV, "")
        if not dsn:
            raise StorageError(f"{STORAGE_ENV}=postgresql but {DSN_ENV} is not set")
        return cls.postgres(dsn, namespace=environ.get(NAMESPACE_ENV, ""))

    def as_environ(self) -> dict[str, str]:
        """The variables that describe this storage to another process (a test's or a
        benchmark's; never a worker's)."""
        if self.backend == "postgresql" and self.dsn:
            env = {STORAGE_ENV: "postgresql", DSN_ENV: self.dsn}
            if self.namespace:
                env[NAMESPACE_ENV] = self.namespace
            return env
        return {}

    def describe(self) -> str:
        if self.is_postgres and self.dsn:
            from kanban.storage.pg import describe_dsn

            return describe_dsn(self.dsn)
        return "SQLite"

    async def open(self, path: Path, slug: str) -> Store:
        """Open (creating if needed) the board ``slug`` whose local folder is ``path.parent``."""
        if self.is_postgres and self.dsn:
            from kanban.storage.pg import PgDatabase

            return await PgDatabase.open(path, self.dsn, slug, pool_size=self.pool_size,
                                         namespace=self.namespace)
        from kanban.storage.db import Database

        return await Database.open(path)


SQLITE = Storage()

_default: list[Storage] = [SQLITE]


def default_storage() -> Storage:
    """The storage of a board or a :class:`~kanban.home.Boards` opened without one: SQLite,
    unless :func:`set_default_storage` chose another (the test suite runs the kernel on both)."""
    return _default[0]


def set_default_storage(storage: Storage | None) -> None:
    _default[0] = storage or SQLITE
