"""The board's SQL handed to psycopg, and rows that read like ``sqlite3.Row``.

The board's statements are written once, in SQL both backends accept, with ``?`` placeholders;
:func:`placeholders` turns those into psycopg's ``%s`` (cached), and the adapters here make
values round-trip as they do in SQLite (flags bind as integers, sums load as floats). What the
two dialects spell differently is asked of the :class:`~kanban.storage.tx.Tx`, never rewritten.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.types.numeric import FloatLoader

_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")


@functools.lru_cache(maxsize=1024)
def placeholders(sql: str, with_params: bool) -> str:
    """``sql`` with psycopg's parameter style: ``?`` becomes ``%s`` and, when parameters are
    passed, a literal ``%`` is doubled; a ``?`` inside a quoted string stays text."""

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        return text.replace("%", "%%") if with_params else text

    return _TOKENS.sub(token, sql)


class PgRow:
    """A row readable by position and by column name, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_names", "_values")

    def __init__(self, values: Sequence[Any], names: list[str], index: dict[str, int]) -> None:
        self._values = values
        self._names = names
        self._index = index

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._names, self._values, strict=True))!r})"


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    names = [column.name for column in cursor.description or ()]
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name, position)

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, names, index)

    return make


class _BoolAsInt(Dumper):
    """Flags are integers in the schema (as in SQLite): True binds as 1."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def adapt(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_dumper(bool, _BoolAsInt)
    conn.adapters.register_loader("numeric", FloatLoader)  # SUM/AVG: float, as in SQLite


class PgCursor:
    """What a statement left: its rows (none without a result) and ``rowcount``."""

    __slots__ = ("_cursor", "rowcount")

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return None if self._cursor.description is None else self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return [] if self._cursor.description is None else list(self._cursor.fetchall())
