"""Checks of the boards: each SQLite file's integrity (``PRAGMA quick_check``) and schema,
staging folders left by killed processes, and on PostgreSQL the connection and each board's
schema version. Nothing is created or repaired here: the doctor only looks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.config import Config
from gateway.doctor.report import Check, fail, ok, one_line, warn
from kanban.backup import quick_check
from kanban.board.attachments import find_stale_staging
from kanban.home import DB_NAME
from kanban.storage.schema import MIGRATIONS

LATEST = MIGRATIONS[-1].name
KNOWN = {m.name for m in MIGRATIONS}


def board_folders(home: Path) -> list[Path]:
    """``<home>/boards/<slug>/`` of every board folder (archived and hidden ones left out)."""
    root = home / "boards"
    try:
        return sorted(p for p in root.iterdir()
                      if p.is_dir() and not p.name.startswith(("_", ".")))
    except OSError:
        return []


def integrity_checks(home: Path) -> list[Check]:
    checks = []
    for folder in board_folders(home):
        db = folder / DB_NAME
        if not db.is_file():
            continue
        checks.append(_integrity(folder.name, db))
    if not checks:
        checks.append(ok("boards", "no SQLite board yet (board default is made on first use)"))
    return checks


def _integrity(slug: str, db: Path) -> Check:
    name = f"board:{slug}"
    fix = (f"stop the gateway, move {db} aside and restore the board from a backup "
           f"(`relayboard kanban boards restore FILE --replace`); `sqlite3 {db.name} .recover` "
           "may save what a backup lacks")
    problem = quick_check(db)
    if problem is not None:
        return fail(name, f"quick_check: {problem}", fix)
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            names = {str(r[0]) for r in conn.execute("SELECT name FROM schema_migrations")}
            tasks = int(conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return fail(name, f"not a Relayboard board: {one_line(exc)}", fix)
    newer = sorted(names - KNOWN)
    if newer:
        return fail(name, f"written by a newer Relayboard (schema {newer[-1]})",
                    "upgrade relayboard on this host")
    size = db.stat().st_size / 1e6
    behind = "" if LATEST in names else f"; schema upgraded to {LATEST} when next opened"
    return ok(name, f"quick_check ok, {tasks} task(s), {size:.1f} MB{behind}")


def staging_checks(home: Path) -> list[Check]:
    checks = []
    for folder in board_folders(home):
        stale = find_stale_staging(folder / "attachments")
        if stale:
            checks.append(warn(f"staging:{folder.name}",
                               f"{len(stale)} staging folder(s) left by killed processes",
                               "`relayboard kanban --board "
                               f"{folder.name} gc` removes them (so does the next start)"))
    if not checks:
        checks.append(ok("staging", "no stale staging folders"))
    return checks


def postgres_check(config: Config) -> Check:
    """On PostgreSQL: the server answers, and every board's schema is one this version knows."""
    storage = config.storage
    if storage.backend != "postgresql" or not storage.dsn:
        return ok("storage", "SQLite, one file per board under <home>/boards/")
    from kanban.errors import StorageError
    from kanban.storage.pg import connect, describe_dsn, error_text, schema_name
    from kanban.storage.pg_schema import MIGRATIONS as PG_MIGRATIONS
    from kanban.storage.pg_schema import catalog_schema

    where = describe_dsn(storage.dsn)
    try:
        with connect(storage.dsn) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = str(row[0]) if row else "?"
            catalog = catalog_schema(storage.namespace)
            found = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema "
                                 "= %s AND table_name = 'boards'", (catalog,)).fetchone()
            slugs = ([str(r[0]) for r in conn.execute(
                f'SELECT slug FROM "{catalog}".boards ORDER BY slug')] if found else [])
            known = {m.name for m in PG_MIGRATIONS}
            newer: list[str] = []
            behind: list[str] = []
            for slug in slugs:
                schema = schema_name(slug, storage.namespace)
                names = {str(r[0]) for r in conn.execute(
                    f'SELECT name FROM "{schema}".schema_migrations')}
                if names - known:
                    newer.append(slug)
                elif not known <= names:
                    behind.append(slug)
    except StorageError as exc:
        return fail("postgresql", one_line(exc), f"check that the server runs and the DSN in "
                                                 f"${storage.dsn_env} (storage.dsn_env)")
    except Exception as exc:  # psycopg's errors: reported, never raised past the doctor
        return fail("postgresql", f"{where}: {error_text(exc)}",
                    "check the role's rights on the database (docs/postgres.md)")
    if newer:
        return fail("postgresql", f"board(s) {', '.join(newer)} written by a newer Relayboard",
                    "upgrade relayboard on this host")
    latest = PG_MIGRATIONS[-1].name
    detail = f"{where} (server {version}), {len(slugs)} board(s), schema {latest}"
    if behind:
        return warn("postgresql", detail + f"; behind: {', '.join(behind)}",
                    "they are upgraded when a gateway of this version opens them")
    return ok("postgresql", detail)
