"""The common SQL subset in PostgreSQL's spelling, and rows that read like ``sqlite3.Row``.

The board's transaction bodies are written once, with ``?`` placeholders and SQLite's few
idioms; :func:`translate` turns each statement into psycopg's form (cached), and the adapters
here make values round-trip as they do in SQLite (flags bind as integers, sums load as floats).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.types.numeric import FloatLoader

# Tables whose rows have an ``id`` an INSERT hands back (``lastrowid``).
_ID_TABLES = frozenset({"tasks", "task_comments", "task_events", "task_runs", "notify_subs",
                        "notify_outbox"})

# ---- SQL: the common subset, in PostgreSQL's spelling -----------------------------------------

_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")
_INSERT = re.compile(r"\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)
_GROUP_CONCAT = re.compile(r"group_concat\(([^()]*)\)", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def translate(sql: str, with_params: bool) -> tuple[str, bool]:
    """The statement for psycopg, and whether it returns the new row's id.

    ``?`` becomes ``%s`` (and a literal ``%`` is doubled when parameters are passed);
    ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``; an INSERT into a table with an
    ``id`` gets ``RETURNING id`` (SQLite's ``lastrowid``); ``group_concat(x)`` is
    ``string_agg(x::text, ',')``.
    """

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if not with_params:
            return text
        return text.replace("%", "%%")

    out = _TOKENS.sub(token, sql)
    out = _GROUP_CONCAT.sub(lambda m: f"string_agg(({m.group(1)})::text, ',')", out)
    returning = False
    insert = _INSERT.match(out)
    if insert is not None:
        if insert.group(1):
            out = out[:insert.start(1)] + out[insert.end(1):]
            out = out.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
        if insert.group(2).lower() in _ID_TABLES and "RETURNING" not in out.upper():
            out = out.rstrip().rstrip(";") + " RETURNING id"
            returning = True
    return out, returning


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
    """What a statement left: rows, ``rowcount``, and the new id of an INSERT."""

    __slots__ = ("_cursor", "_rows", "lastrowid", "rowcount")

    def __init__(self, cursor: psycopg.Cursor[Any], returning: bool) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        self._rows: list[Any] | None = None
        if returning:
            rows = cursor.fetchall()
            self.lastrowid = int(rows[-1][0]) if rows else None
            self._rows = []

    def fetchone(self) -> Any:
        if self._rows is not None or self._cursor.description is None:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        if self._rows is not None or self._cursor.description is None:
            return []
        return list(self._cursor.fetchall())
