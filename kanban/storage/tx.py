"""What the board's transaction bodies see of a backend: :class:`Tx`, the rows and cursors it
returns, and the few places where SQLite and PostgreSQL must be asked differently.

The board's operations are plain functions ``fn(tx)`` run as ONE call on a database thread, so a
whole transaction crosses threads once. Both backends hand them a :class:`Tx`; the SQL they
write is the common subset (``?`` placeholders; ``INSERT … ON CONFLICT DO NOTHING`` and
``RETURNING id``, which SQLite has since 3.35), and what differs — row locks, advisory locks, a
list aggregate, the clock — is a method here, answered by each backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Row(Protocol):
    """A result row: by position or by column name (``sqlite3.Row`` and the PostgreSQL row)."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def keys(self) -> list[str]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx:
    """A transaction in progress on the database thread.

    ``after_commit`` callbacks run on the event loop once COMMIT succeeded (side effects such as
    deleting files never happen for a rolled-back change); ``in_thread=True`` runs one on a
    worker thread instead, for file work that can be large. Watchers are woken after every
    commit by the database's ``on_commit`` hooks, so no write has to ask for it.
    """

    __slots__ = ("_effects", "_pending")

    backend = ""
    """``sqlite`` or ``postgresql``."""

    def __init__(self) -> None:
        self._effects: list[tuple[Callable[[], None], bool]] = []
        self._pending: list[asyncio.Future[None]] = []

    def after_commit(self, effect: Callable[[], None], *, in_thread: bool = False) -> None:
        self._effects.append((effect, in_thread))

    # ---- statements -------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row (a :class:`Row`) or None."""
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row (each a :class:`Row`)."""
        return list(self.execute(sql, params).fetchall())

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row as a plain tuple (the fast path for wide listings)."""
        return [tuple(row) for row in self.all(sql, params)]

    def columns(self, table: str) -> list[str]:
        """The column names of ``table``, in order."""
        raise NotImplementedError

    def group_concat(self, expr: str) -> str:
        """An aggregate of ``expr``'s values as text, joined by commas."""
        return f"group_concat({expr})"

    # ---- concurrency ------------------------------------------------------------------------
    def lock(self, name: str) -> None:
        """Hold the board-wide lock ``name`` until the transaction ends. SQLite's writers are
        serialised already (``BEGIN IMMEDIATE``); PostgreSQL takes an advisory lock."""

    @property
    def for_update(self) -> str:
        """Appended to a ``SELECT`` that reads rows this transaction will change."""
        return ""

    @property
    def skip_locked(self) -> str:
        """Appended to a ``SELECT`` of candidates: rows another transaction holds are passed
        over instead of waited for (``FOR UPDATE SKIP LOCKED``)."""
        return ""

    def for_update_of(self, alias: str) -> str:
        """``for_update`` for a join: lock only the rows of ``alias``."""
        return ""

    def skip_locked_of(self, alias: str) -> str:
        """``skip_locked`` for a join: lock only the rows of ``alias``."""
        return ""

    @property
    def for_share(self) -> str:
        """Appended to a ``SELECT`` whose rows' state this transaction's decision rests on."""
        return ""


def committed(txs: Iterable[Tx], hooks: Iterable[Callable[[Tx], None]],
              loop: asyncio.AbstractEventLoop,
              track: Callable[[asyncio.Future[Any]], None]) -> None:
    """What follows a commit, on the event loop, for both backends: the ``on_commit`` hooks
    (once, with the last transaction) wake watchers, then each transaction's after-commit
    effects run — here, or on a worker thread (its future kept in ``tx._pending`` and handed
    to ``track``). A failing hook or effect is logged, never raised."""
    txs = list(txs)
    if not txs:
        return
    for hook in hooks:
        try:
            hook(txs[-1])
        except Exception:
            log.exception("on-commit hook failed")
    for tx in txs:
        for effect, in_thread in tx._effects:
            if in_thread:
                pending = loop.run_in_executor(None, _logged, effect)
                tx._pending.append(pending)
                track(pending)
            else:
                _logged(effect)


def _logged(effect: Callable[[], None]) -> None:
    try:
        effect()
    except Exception:
        log.exception("after-commit effect failed")
