"""The board schema as data: named, recorded, transactional migrations.

A fresh board runs every migration in order; an old board runs the ones it lacks. Either way the
result is the same schema, which ``tests/kanban/test_migrations.py`` checks table by table.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from kanban.timeutil import now

log = logging.getLogger(__name__)

BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    title                TEXT    NOT NULL,
    body                 TEXT    NOT NULL DEFAULT '',
    status               TEXT    NOT NULL,
    assignee             TEXT,
    priority             INTEGER NOT NULL DEFAULT 0,
    created_at           REAL,
    updated_at           REAL,
    started_at           REAL,
    completed_at         REAL,
    created_by           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_failure_error   TEXT,
    protocol_violations  INTEGER NOT NULL DEFAULT 0,
    max_runtime_seconds  INTEGER,
    max_retries          INTEGER,
    skills               TEXT    NOT NULL DEFAULT '[]',
    workspace_kind       TEXT    NOT NULL DEFAULT 'scratch',
    workspace_path       TEXT,
    result               TEXT,
    summary              TEXT,
    metadata             TEXT    NOT NULL DEFAULT '{}',
    idempotency_key      TEXT,
    blocked_by           TEXT,
    blocked_reason       TEXT,
    current_run_id       INTEGER,
    decomposed_at        REAL,
    decompose_failed_at  REAL,
    decompose_error      TEXT
);

-- Claim candidates: ready tasks by priority (high first), then age (oldest first).
CREATE INDEX IF NOT EXISTS idx_tasks_status_priority
    ON tasks (status, priority DESC, created_at, id);
CREATE INDEX IF NOT EXISTS idx_tasks_assignee ON tasks (assignee);
-- An idempotency key names at most one live (non-archived) task; enforced by the database.
CREATE UNIQUE INDEX IF NOT EXISTS idx_tasks_idempotency
    ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status != 'archived';

CREATE TABLE IF NOT EXISTS task_links (
    parent_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    child_id  INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    created_at REAL,
    PRIMARY KEY (parent_id, child_id),
    CHECK (parent_id != child_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_links_child ON task_links (child_id, parent_id);

CREATE TABLE IF NOT EXISTS task_comments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    author      TEXT    NOT NULL,
    author_kind TEXT    NOT NULL DEFAULT 'human',
    body        TEXT    NOT NULL,
    created_at  REAL
);
CREATE INDEX IF NOT EXISTS idx_comments_task ON task_comments (task_id, id);

-- Events and runs use plain rowids (no AUTOINCREMENT): it saves a sqlite_sequence write per
-- commit. Event ids are never reused (a deletion always appends a newer `deleted` event), and a
-- run id reused after its task was deleted carries a fresh lease token.
CREATE TABLE IF NOT EXISTS task_events (
    id         INTEGER PRIMARY KEY,
    task_id    INTEGER REFERENCES tasks (id) ON DELETE CASCADE,
    run_id     INTEGER,
    kind       TEXT    NOT NULL,
    payload    TEXT    NOT NULL DEFAULT '{}',
    created_at REAL
);
CREATE INDEX IF NOT EXISTS idx_events_task ON task_events (task_id, id);

CREATE TABLE IF NOT EXISTS task_runs (
    id              INTEGER PRIMARY KEY,
    task_id         INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    lease           TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'active',
    claimed_by      TEXT,
    profile         TEXT,
    claimed_at      REAL,
    expires_at      REAL,
    last_heartbeat_at REAL,
    ended_at        REAL,
    worker_pid      INTEGER,
    worker_started_at REAL,
    host            TEXT,
    exit_code       INTEGER,
    error           TEXT,
    workspace       TEXT
);
CREATE INDEX IF NOT EXISTS idx_runs_task ON task_runs (task_id, id);

CREATE TABLE IF NOT EXISTS notify_subs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id       INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    platform      TEXT    NOT NULL,
    chat          TEXT    NOT NULL,
    thread        TEXT    NOT NULL DEFAULT '',
    created_by    TEXT,
    created_at    REAL,
    last_event_id INTEGER NOT NULL DEFAULT 0,
    UNIQUE (task_id, platform, chat, thread)
);
"""

OUTBOX_SCHEMA = """
-- One row per (subscription, event) to deliver; the notifier marks rows delivered or failed and
-- retries with backoff, so a notification survives a crash between commit and send.
CREATE TABLE IF NOT EXISTS notify_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sub_id          INTEGER NOT NULL REFERENCES notify_subs (id) ON DELETE CASCADE,
    task_id         INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_error      TEXT,
    created_at      REAL,
    delivered_at    REAL,
    UNIQUE (sub_id, event_id)
);
CREATE INDEX IF NOT EXISTS idx_outbox_due ON notify_outbox (state, next_attempt_at);
"""

# What the notifier needs beyond the bare outbox: the event kind on each row (so a claim needs no
# join on task_events), per-attachment receipts, and per-subscription health — a subscription
# whose sends keep failing permanently is disabled with its reason instead of retrying forever.
DELIVERY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("notify_outbox", "kind", "TEXT NOT NULL DEFAULT ''"),
    ("notify_outbox", "receipts", "TEXT NOT NULL DEFAULT '[]'"),
    ("notify_subs", "silent", "INTEGER NOT NULL DEFAULT 0"),
    ("notify_subs", "consecutive_failures", "INTEGER NOT NULL DEFAULT 0"),
    ("notify_subs", "disabled_at", "REAL"),
    ("notify_subs", "disabled_reason", "TEXT"),
    ("notify_subs", "carried_from", "INTEGER"),
)


# The bytes of a task's artifacts, for boards several hosts serve (PostgreSQL): a worker's files
# reach a gateway on another host through the database (kanban/storage/artifact_rows.py). On
# SQLite every reader shares the worker's disk, so these stay empty there; they exist on both
# backends so the two schemas stay one (a board can move between them).
ARTIFACT_BLOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifact_files (
    task_id   INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    name      TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    sha256    TEXT    NOT NULL,
    chunks    INTEGER NOT NULL,
    stored_at REAL,
    PRIMARY KEY (task_id, name)
);
CREATE TABLE IF NOT EXISTS artifact_blobs (
    task_id INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    chunk   INTEGER NOT NULL,
    data    BLOB    NOT NULL,
    PRIMARY KEY (task_id, name, chunk),
    FOREIGN KEY (task_id, name) REFERENCES artifact_files (task_id, name) ON DELETE CASCADE
);
"""

# Recurring schedules (kanban/board/schedules.py): each row is a task template with its
# recurrence; each occurrence is recorded once per (schedule, due time) — the primary key is
# what makes a second attempt (another gateway, a retried transaction) a no-op.
SCHEDULES_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    title               TEXT    NOT NULL,
    body                TEXT    NOT NULL DEFAULT '',
    assignee            TEXT,
    priority            INTEGER NOT NULL DEFAULT 0,
    every               TEXT    NOT NULL,
    cron                TEXT    NOT NULL,
    timezone            TEXT    NOT NULL,
    catch_up            TEXT    NOT NULL DEFAULT 'last',
    overlap             INTEGER NOT NULL DEFAULT 0,
    state               TEXT    NOT NULL DEFAULT 'active',
    next_run_at         REAL,
    last_run_at         REAL,
    max_runtime_seconds INTEGER,
    max_retries         INTEGER,
    model_override      TEXT,
    skills              TEXT    NOT NULL DEFAULT '[]',
    workspace_kind      TEXT    NOT NULL DEFAULT 'scratch',
    workspace_path      TEXT,
    host_label          TEXT,
    subscriptions       TEXT    NOT NULL DEFAULT '[]',
    created_by          TEXT,
    created_at          REAL,
    updated_at          REAL
);
CREATE INDEX IF NOT EXISTS idx_schedules_due ON schedules (state, next_run_at);
CREATE TABLE IF NOT EXISTS schedule_occurrences (
    schedule_id INTEGER NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    due_at      REAL    NOT NULL,
    task_id     INTEGER,
    outcome     TEXT    NOT NULL,
    created_at  REAL,
    PRIMARY KEY (schedule_id, due_at)
);
"""


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in _statements(sql):
            conn.execute(statement)

    return run


def _statements(sql: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on ';' instead (no ';' in literals).
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def add_column(table: str, column: str, decl: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        except sqlite3.OperationalError as exc:
            # Another process may have added it between our check and our ALTER.
            if "duplicate column name" not in str(exc).lower():
                raise
            log.info("column %s.%s already present; migration continues", table, column)

    return run


FINISHED_ORDER = ("coalesce(nullif(completed_at, 0), nullif(updated_at, 0), 0) DESC, "
                  "priority DESC, created_at, id")
FINISHED_INDEX = (f"CREATE INDEX IF NOT EXISTS idx_tasks_finished ON tasks "
                  f"(status, {FINISHED_ORDER});")


def _steps(*steps: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for step in steps:
            step(conn)

    return run


def _delivery_columns(conn: sqlite3.Connection) -> None:
    for table, column, decl in DELIVERY_COLUMNS:
        add_column(table, column, decl)(conn)
    conn.execute("CREATE INDEX IF NOT EXISTS idx_outbox_sub ON notify_outbox (sub_id, id)")


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_base", _script(BASE_SCHEMA)),
    Migration("0002_task_model_override", add_column("tasks", "model_override", "TEXT")),
    Migration("0003_notify_outbox", _script(OUTBOX_SCHEMA)),
    # Retry back-off: a task is not claimable before `not_before` (epoch seconds); requeues
    # (exit 75) count their own streak, apart from the failures the breaker counts.
    Migration("0004_task_backoff", _steps(
        add_column("tasks", "not_before", "REAL"),
        add_column("tasks", "consecutive_requeues", "INTEGER NOT NULL DEFAULT 0"),
    )),
    # Each run keeps what its worker said when it completed or blocked.
    Migration("0005_run_outcomes", _steps(
        add_column("task_runs", "summary", "TEXT"),
        add_column("task_runs", "result", "TEXT"),
        add_column("task_runs", "metadata", "TEXT"),
    )),
    Migration("0006_notify_delivery", _delivery_columns),
    # Declared in the first schema but never used: files live in attachments/<id>/ and board
    # metadata in board.json.
    Migration("0007_drop_unused_tables", _script(
        "DROP INDEX IF EXISTS idx_attachments_task; DROP TABLE IF EXISTS attachments; "
        "DROP TABLE IF EXISTS board_meta")),
    Migration("0008_artifact_blobs", _script(ARTIFACT_BLOBS_SCHEMA)),
    # The host label a task needs (`--host LABEL`): only dispatchers with that label claim it.
    Migration("0009_task_host_label", add_column("tasks", "host_label", "TEXT")),
    # What the dispatcher let a run do beyond its own task: create tasks (the orchestrator).
    Migration("0010_run_may_create",
              add_column("task_runs", "may_create", "INTEGER NOT NULL DEFAULT 0")),
    # Recurring schedules and their occurrences; a task made by one names its schedule.
    Migration("0011_schedules", _steps(_script(SCHEDULES_SCHEMA),
                                       add_column("tasks", "schedule_id", "INTEGER"))),
    # The board view's done and archived columns, most recently finished first: read as a
    # window of this index, not by sorting every finished task (kanban/board/cards.py).
    Migration("0012_finished_order", _script(FINISHED_INDEX)),
)


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every missing migration, each in its own ``BEGIN IMMEDIATE`` transaction.

    Safe to run from several processes at once: the applied set is re-read inside the write lock.
    Returns the names applied by this call.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
    )
    applied_now: list[str] = []
    for migration in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE name = ?", (migration.name,)
            ).fetchone()
            if done is None:
                migration.apply(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, now()),
                )
                applied_now.append(migration.name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied_now
