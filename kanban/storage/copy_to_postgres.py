"""Copying one SQLite board file into its PostgreSQL schema: every table, ids kept, all or nothing.

The copy runs as one PostgreSQL transaction while the SQLite file's write lock is held
(``BEGIN IMMEDIATE``), so what lands in PostgreSQL is one consistent snapshot and nothing
commits on the old board meanwhile. Before that transaction commits, each table's row count and
largest id are compared with the source; any difference rolls everything back.

SQLite is loosely typed, so an old or hand-edited file can hold text where the schema says
integer. A value that converts without guessing (``'3'`` → 3, ``4.0`` → 4, an ISO time → epoch
seconds, an unreadable time → NULL, which is what the board's readers already make of it) is
converted and reported; anything else stops the copy with a line naming the table, the row id
and the column — before anything is committed.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql as pg_sql

from kanban.errors import Conflict, InvalidInput, StorageError
from kanban.storage.pg import (
    catalog_add,
    catalog_remove,
    connect,
    describe_dsn,
    error_text,
    lock_key,
    schema_name,
)
from kanban.storage.schema import migrate
from kanban.timeutil import to_epoch
from kanban.validation import INT64_MAX, INT64_MIN

# Parents before children (foreign keys); a table the SQLite file has beyond these is copied
# after them, provided PostgreSQL has it too.
TABLE_ORDER: tuple[str, ...] = ("tasks", "task_links", "task_comments", "task_events",
                                "task_runs", "notify_subs", "notify_outbox", "schedules",
                                "schedule_occurrences")
_SKIPPED = frozenset({"schema_migrations", "sqlite_sequence", "sqlite_stat1"})
_INTEGER = frozenset({"bigint", "integer", "smallint"})
_FLOAT = frozenset({"double precision", "real", "numeric"})
_CHUNK = 2000
_MAX_PROBLEMS = 50


@dataclass(frozen=True)
class TableCopy:
    """One table's figures: what the SQLite file held and what PostgreSQL holds now."""

    table: str
    source_rows: int
    target_rows: int
    source_max_id: int | None
    target_max_id: int | None

    @property
    def matches(self) -> bool:
        return (self.source_rows == self.target_rows
                and self.source_max_id == self.target_max_id)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "source_rows": self.source_rows,
                "target_rows": self.target_rows, "source_max_id": self.source_max_id,
                "target_max_id": self.target_max_id, "matches": self.matches}


@dataclass
class CopyReport:
    tables: list[TableCopy] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    """One line per value converted on the way (``tasks row 7: priority '3' → 3``)."""
    replaced_rows: int = 0
    """Rows the target board held and ``replace`` removed."""
    seconds: float = 0.0
    created: bool = False
    """The PostgreSQL board was created by this copy (rather than found empty)."""


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # "int" | "float" | "text" | "other"
    nullable: bool


class _Problems:
    """Values that cannot be converted safely: collected so one run names them all."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0

    def add(self, line: str) -> None:
        self.count += 1
        if len(self.lines) < _MAX_PROBLEMS:
            self.lines.append(line)


def copy_board(db_path: Path, dsn: str, slug: str, *, name: str, namespace: str = "",
               replace: bool = False) -> CopyReport:
    """Copy the SQLite board at ``db_path`` into the PostgreSQL board ``slug`` (created when
    missing). Refuses a source with active runs, and a target that holds rows unless
    ``replace``. Blocking: run it on a thread."""
    started = time.perf_counter()
    report = CopyReport()
    try:
        source = _open_source(db_path)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read board {slug!r}'s SQLite file: {exc}") from exc
    try:
        source.execute("BEGIN IMMEDIATE")  # nothing commits on the old board while we copy
        _refuse_active_runs(source, slug)
        _refuse_orphans(source, slug)
        tables = _source_tables(source)
        report.created = catalog_add(dsn, slug, name, namespace)
        try:
            with connect(dsn) as conn:
                _copy(source, conn, schema_name(slug, namespace), slug, tables, replace, report)
        except BaseException:
            if report.created:  # all or nothing: not even an empty board stays behind
                catalog_remove(dsn, slug, delete=True, suffix="", namespace=namespace)
            raise
    except psycopg.Error as exc:
        raise StorageError(f"moving board {slug!r} to {describe_dsn(dsn)} failed, nothing was "
                           f"written: {error_text(exc)}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read board {slug!r}'s SQLite file: {exc}") from exc
    finally:
        if source.in_transaction:
            source.execute("ROLLBACK")
        source.close()
    report.seconds = time.perf_counter() - started
    return report


# ---- the SQLite side -------------------------------------------------------------------------

def _open_source(db_path: Path) -> sqlite3.Connection:
    try:
        size = db_path.stat().st_size
    except FileNotFoundError:
        raise StorageError(f"board database {db_path.name} is missing") from None
    if size == 0:
        raise StorageError(f"board database {db_path.name} is empty (0 bytes)")
    conn = sqlite3.connect(db_path.resolve().as_uri() + "?mode=rw", uri=True,
                           isolation_level=None, timeout=15.0)
    # Bytes, decoded per value below: text that is not UTF-8 is then a row we can name, not
    # an exception out of the middle of a fetch.
    conn.text_factory = bytes
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)  # an old file first reaches the schema PostgreSQL mirrors
    except BaseException:
        conn.close()
        raise
    return conn


def _refuse_active_runs(source: sqlite3.Connection, slug: str) -> None:
    rows = source.execute("SELECT task_id FROM task_runs WHERE status = 'active' "
                          "ORDER BY task_id").fetchall()
    if rows:
        ids = [str(r[0]) for r in rows]
        named = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        raise Conflict(f"board {slug!r} has {len(ids)} active run(s) (task {named}): workers "
                       "are writing to it; let them finish (or release the runs) and stop the "
                       "gateway and dispatchers before moving it")


def _refuse_orphans(source: sqlite3.Connection, slug: str) -> None:
    """Rows pointing at a missing parent (a file written with foreign keys off) would fail
    PostgreSQL's constraints mid-copy; name them instead."""
    rows = source.execute("PRAGMA foreign_key_check").fetchall()
    if not rows:
        return
    table, rowid, parent = _text(rows[0][0]), rows[0][1], _text(rows[0][2])
    where = f"row {rowid}" if rowid is not None else "a row"
    more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
    raise InvalidInput(f"cannot move board {slug!r}: {table} {where} refers to a {parent} row "
                       f"that does not exist{more}; delete such rows from kanban.db first — "
                       "nothing was written to PostgreSQL")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _source_tables(source: sqlite3.Connection) -> list[str]:
    names = {_text(r[0]) for r in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    names = {n for n in names if n not in _SKIPPED and not n.startswith("sqlite_")}
    return [t for t in TABLE_ORDER if t in names] + sorted(names - set(TABLE_ORDER))


def _source_columns(source: sqlite3.Connection, table: str) -> list[str]:
    return [_text(r[1]) for r in source.execute(f'PRAGMA table_info("{table}")')]


def _source_figures(source: sqlite3.Connection, table: str, has_id: bool
                    ) -> tuple[int, int | None]:
    if has_id:
        row = source.execute(f'SELECT count(*), max(id) FROM "{table}"').fetchone()
        return int(row[0]), (None if row[1] is None else int(row[1]))
    row = source.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    return int(row[0]), None


def _sequence_floor(source: sqlite3.Connection, table: str) -> int:
    """AUTOINCREMENT's high-water mark: ids of deleted rows are never handed out again."""
    try:
        row = source.execute("SELECT seq FROM sqlite_sequence WHERE name = ?",
                             (table,)).fetchone()
    except sqlite3.OperationalError:  # no AUTOINCREMENT table in this file
        return 0
    return int(row[0]) if row and isinstance(row[0], int) else 0


def _rows(source: sqlite3.Connection, table: str, columns: Sequence[str],
          order: str) -> Iterator[tuple[Any, ...]]:
    listed = ", ".join(f'"{c}"' for c in columns)
    cursor = source.execute(f'SELECT {listed} FROM "{table}" ORDER BY {order}')
    while True:
        chunk = cursor.fetchmany(_CHUNK)
        if not chunk:
            return
        yield from chunk


# ---- the PostgreSQL side ---------------------------------------------------------------------

def _target_columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[_Column]:
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table)).fetchall()
    out = []
    for name, data_type, nullable in rows:
        kind = ("int" if data_type in _INTEGER else "float" if data_type in _FLOAT
                else "text" if data_type in ("text", "character varying") else "other")
        out.append(_Column(str(name), kind, nullable == "YES"))
    return out


def _copy(source: sqlite3.Connection, conn: psycopg.Connection[Any], schema: str, slug: str,
          tables: list[str], replace: bool, report: CopyReport) -> None:
    with conn.transaction():
        # Exclusive writers of this board (other hosts' gateways, a CLI) wait for the copy.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema, "write"),))
        target_cols = {t: _target_columns(conn, schema, t) for t in tables}
        missing = [t for t in tables if not target_cols[t]]
        if missing:
            raise StorageError(f"PostgreSQL board {slug!r} has no table {missing[0]!r}; "
                               "update relayboard on this host and the database's schema first")
        held = {t: _count(conn, schema, t) for t in tables}
        if any(held.values()):
            if not replace:
                raise Conflict(
                    f"the PostgreSQL board {slug!r} already holds data ({held.get('tasks', 0)} "
                    "task(s)); nothing was copied (use --replace to overwrite it with this "
                    "board's SQLite data)")
            report.replaced_rows = sum(held.values())
            conn.execute(pg_sql.SQL("TRUNCATE {} CASCADE").format(pg_sql.SQL(", ").join(
                pg_sql.Identifier(schema, t) for t in tables)))
        problems = _Problems()
        for table in tables:
            _copy_table(source, conn, schema, table, target_cols[table], problems, report)
        if problems.count:
            more = (f" (and {problems.count - 1} more value(s) like it)"
                    if problems.count > 1 else "")
            raise InvalidInput(f"cannot move board {slug!r}: {problems.lines[0]}{more}; fix or "
                               "delete such rows in kanban.db and run the move again — nothing "
                               "was written to PostgreSQL")
        for table in tables:
            report.tables.append(_verify(source, conn, schema, table, target_cols[table]))
        bad = [t for t in report.tables if not t.matches]
        if bad:
            t = bad[0]
            raise StorageError(
                f"moving board {slug!r}: {t.table} has {t.target_rows} row(s) (max id "
                f"{t.target_max_id}) on PostgreSQL but {t.source_rows} (max id "
                f"{t.source_max_id}) in SQLite; nothing was committed")


def _count(conn: psycopg.Connection[Any], schema: str, table: str) -> int:
    row = conn.execute(pg_sql.SQL("SELECT count(*) FROM {}").format(
        pg_sql.Identifier(schema, table))).fetchone()
    return int(row[0]) if row else 0


def _copy_table(source: sqlite3.Connection, conn: psycopg.Connection[Any], schema: str,
                table: str, target: list[_Column], problems: _Problems,
                report: CopyReport) -> None:
    by_name = {c.name: c for c in target}
    columns = _source_columns(source, table)
    unknown = [c for c in columns if c not in by_name]
    if unknown:
        raise StorageError(f"{table}.{unknown[0]} exists in the SQLite file but not on "
                           "PostgreSQL; update relayboard on this host first")
    has_id = "id" in columns
    order = "id" if has_id else ", ".join(f'"{c}"' for c in columns)

    def key_of(row: Sequence[Any]) -> str:
        if has_id:
            return f"row {_text(row[columns.index('id')])}"
        return "row (" + ", ".join(f"{c}={_text(v)}" for c, v in zip(columns, row, strict=True)
                                   if c.endswith("_id")) + ")"

    statement = pg_sql.SQL("COPY {} ({}) FROM STDIN").format(
        pg_sql.Identifier(schema, table),
        pg_sql.SQL(", ").join(pg_sql.Identifier(c) for c in columns))
    specs = [by_name[c] for c in columns]
    with conn.cursor() as cursor, cursor.copy(cast(Any, statement)) as copy:
        for row in _rows(source, table, columns, order):
            values = []
            clean = True
            for spec, value in zip(specs, row, strict=True):
                try:
                    values.append(_convert(spec, value, table, key_of, row, report))
                except _Unconvertible as exc:
                    problems.add(f"{table} {key_of(row)}: {spec.name} {exc}")
                    clean = False
            if clean and not problems.count:
                copy.write_row(values)
    if has_id:
        floor = max(_sequence_floor(source, table),
                    _source_figures(source, table, True)[1] or 0)
        # Explicit ids do not move an identity's sequence: set it past every id the board
        # has handed out, so the next task, event or run gets a fresh one.
        qualified = pg_sql.Identifier(schema, table).as_string(conn)
        if floor > 0:
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s::bigint)",
                         (qualified, floor))
        else:
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 1, false)",
                         (qualified,))


def _verify(source: sqlite3.Connection, conn: psycopg.Connection[Any], schema: str,
            table: str, target: list[_Column]) -> TableCopy:
    has_id = any(c.name == "id" for c in target)
    rows, max_id = _source_figures(source, table, has_id)
    ident = pg_sql.Identifier(schema, table)
    query = (pg_sql.SQL("SELECT count(*), max(id) FROM {}") if has_id
             else pg_sql.SQL("SELECT count(*), NULL FROM {}")).format(ident)
    got = conn.execute(query).fetchone()
    assert got is not None
    return TableCopy(table, rows, int(got[0]), max_id,
                     None if got[1] is None else int(got[1]))


# ---- values ------------------------------------------------------------------------------------

class _Unconvertible(Exception):
    pass


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _convert(spec: _Column, value: Any, table: str,
             key_of: Callable[[Sequence[Any]], str], row: Sequence[Any],
             report: CopyReport) -> Any:
    if value is None:
        if not spec.nullable:
            raise _Unconvertible("is NULL but must have a value")
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unconvertible(f"holds {_show(value)}, which is not UTF-8 text") from None
    converted = _as(spec, value)
    if _changed(value, converted):
        report.converted.append(f"{table} {key_of(row)}: {spec.name} {_show(value)} → "
                                f"{_show(converted)}")
    return converted


def _changed(value: Any, converted: Any) -> bool:
    if isinstance(value, int) and isinstance(converted, float):
        return float(value) != converted  # an integer in a REAL column is SQLite's normal
    return type(value) is not type(converted) or bool(value != converted)


def _as(spec: _Column, value: str | int | float) -> Any:
    if spec.kind == "int":
        return _as_int(value)
    if spec.kind == "float":
        return _as_float(spec, value)
    if spec.kind == "text":
        text = value if isinstance(value, str) else repr(value) if isinstance(
            value, float) else str(value)
        if "\x00" in text:
            raise _Unconvertible("contains a NUL character, which PostgreSQL text cannot hold")
        return text
    return value


def _as_int(value: str | int | float) -> int:
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if math.isfinite(value) and value.is_integer() else None
    else:
        text = value.strip()
        try:
            number = int(text, 10)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                f = math.nan
            number = int(f) if math.isfinite(f) and f.is_integer() else None
    if number is None or not INT64_MIN <= number <= INT64_MAX:
        raise _Unconvertible(f"holds {_show(value)} where a whole number belongs")
    return number


def _as_float(spec: _Column, value: str | int | float) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    # Every REAL column of the board is a time, which readers take through to_epoch: ISO text
    # becomes epoch seconds, and what they cannot read they treat as unknown (NULL).
    epoch = to_epoch(value)
    if epoch is None and not spec.nullable:
        raise _Unconvertible(f"holds {_show(value)} where a number belongs")
    return epoch
