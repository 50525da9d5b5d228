"""Cards: the few fields a board view shows of every task, read in one query.

A board of 10,000 tasks is drawn from this, not from :meth:`list_tasks`: building a full
:class:`~kanban.models.Task` per row (thirty fields, JSON metadata and skills parsed, links
gathered in Python) costs more than the rest of the page together. Here SQLite does the work it
is good at — children's progress is an aggregate over ``task_links`` joined to each child's
status, the number of files is read from the metadata's ``artifacts`` array by SQLite's own JSON
functions, the blocked reason is cut before it leaves the database — and Python only checks
types. Timestamps go through :func:`~kanban.timeutil.to_epoch`, so an ISO string or garbage in an
old row reads as a time or as unknown, never as an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kanban.board.shared import BoardCore
from kanban.storage.schema import FINISHED_ORDER
from kanban.storage.tx import Tx
from kanban.timeutil import to_epoch

log = logging.getLogger(__name__)

REASON_CHARS = 90
"""A card's reason is cut to about this many characters, at a word boundary."""

# Children, finished children and parents are counted per row by subqueries that each walk one
# index (task_links' primary key, idx_links_child): measured faster on 10,000 tasks than grouping
# the whole link table first and joining the groups. The child's status comes from the tasks
# table itself, so an archived child counts as finished whether or not archived tasks are listed.
_SELECT = f"""
SELECT t.id, t.title, t.status, t.assignee, t.priority,
       t.created_at, t.updated_at, t.completed_at, t.consecutive_failures,
       CASE WHEN t.status = 'blocked'
            THEN substr(coalesce(nullif(t.blocked_reason, ''), t.last_failure_error),
                        1, {REASON_CHARS + 1}) END,
       CASE WHEN t.metadata LIKE '%"artifacts"%' AND json_valid(t.metadata)
            THEN json_array_length(t.metadata, '$.artifacts') END,
       (SELECT count(*) FROM task_links AS l WHERE l.parent_id = t.id),
       (SELECT count(*) FROM task_links AS l JOIN tasks AS c ON c.id = l.child_id
        WHERE l.parent_id = t.id AND c.status IN ('done', 'archived')),
       (SELECT count(*) FROM task_links AS l WHERE l.child_id = t.id),
       CASE WHEN t.status IN ('ready', 'todo') AND t.consecutive_failures = 0
            AND t.consecutive_requeues = 0 THEN t.not_before END,
       t.schedule_id
FROM tasks AS t
"""


@dataclass(slots=True)
class Card:
    """What a board column shows of one task."""

    id: int
    title: str
    status: str
    assignee: str | None
    priority: int
    created_at: float | None
    updated_at: float | None
    completed_at: float | None
    failures: int
    """``consecutive_failures``."""
    reason: str | None
    """Blocked tasks only: the first words of the blocked reason, else of the last error."""
    files: int
    """How many files the task declared (``metadata.artifacts``)."""
    children: int
    children_done: int
    """Children that are done or archived."""
    parents: int
    corrupt: str | None = None
    """Set when the row could not be read; the card is then a placeholder with its id."""
    starts_at: float | None = None
    """A ready or todo task made with a start time (``--at``/``--in``): when it may run."""
    schedule_id: int | None = None
    """The schedule whose occurrence made the task."""


FINISHED = ("done", "archived")
# Open columns by priority then age (idx_tasks_status_priority); finished ones most recently
# finished first (idx_tasks_finished). Either way a column's window is read from its index.
_OPEN_ORDER = "priority DESC, created_at, id"


@dataclass
class CardWindow:
    """A board view's read: each column's first cards, and what the whole board holds."""

    columns: dict[str, list[Card]]
    counts: dict[str, int]
    """Tasks per status (every status asked for, 0 when none)."""
    assignees: list[str] = field(default_factory=list)
    """Every assignee of a task in the statuses asked for, sorted."""


class CardsMixin(BoardCore):
    """The board view's reads: :meth:`card_window` (the columns) and :meth:`list_cards`."""

    async def card_window(self, statuses: Sequence[str], *, limit: int) -> CardWindow:
        """The first ``limit`` cards of each status in ``statuses`` (open ones by priority then
        age, done and archived most recently finished first), the count of each, and the
        assignees. Rows read grow with ``limit``, the number of statuses and of assignees, not
        with the board: each window walks an index; only the counts walk the whole status
        index (entries, not rows)."""
        wanted = tuple(dict.fromkeys(statuses))
        marks = ", ".join("?" for _ in wanted)
        counted = f"SELECT status, count(*) FROM tasks WHERE status IN ({marks}) GROUP BY status"
        # The distinct assignees, each found by one step along their index (a skip scan: as
        # many steps as there are people, not tasks); each kept if one of its tasks is in
        # `wanted`.
        people = (f"WITH RECURSIVE d(a) AS (SELECT min(assignee) FROM tasks "
                  f"WHERE assignee IS NOT NULL UNION ALL SELECT (SELECT min(assignee) "
                  f"FROM tasks WHERE assignee > d.a) FROM d WHERE d.a IS NOT NULL) "
                  f"SELECT a FROM d WHERE a IS NOT NULL AND EXISTS (SELECT 1 FROM tasks AS x "
                  f"WHERE x.assignee = d.a AND x.status IN ({marks})) ORDER BY a")

        def run(tx: Tx) -> CardWindow:
            counts = dict.fromkeys(wanted, 0)
            for status, count in tx.tuples(counted, wanted):
                counts[str(status)] = int(count)
            columns = {}
            for status in wanted:
                order = FINISHED_ORDER if status in FINISHED else _OPEN_ORDER
                columns[status] = [_card(row) for row in tx.tuples(
                    f"{_SELECT} WHERE t.status = ? ORDER BY {order} LIMIT ?", (status, limit))
                    ] if counts[status] else []
            assignees = [str(a) for (a,) in tx.tuples(people, wanted)]
            return CardWindow(columns, counts, assignees)

        return await self.db.read(run)

    async def list_cards(self, *, include_archived: bool = False) -> list[Card]:
        """Every task's card, by priority (high first), then age (oldest first) — the order of
        :meth:`list_tasks`. Archived tasks only with ``include_archived``. A row that cannot be
        read still appears, as a placeholder card saying why."""
        where = "" if include_archived else "WHERE t.status != 'archived'"
        sql = f"{_SELECT} {where} ORDER BY t.priority DESC, t.created_at, t.id"

        def run(tx: Tx) -> list[Card]:
            return [_card(row) for row in tx.tuples(sql)]

        return await self.db.read(run)


def _card(row: tuple[Any, ...]) -> Card:
    (task_id, title, status, assignee, priority, created, updated, completed, failures,
     reason, files, children, finished, parents, starts_at, schedule_id) = row
    try:
        # Rows written by this version hold exactly these types; anything else is an old or
        # hand-edited row, converted the tolerant way.
        if type(title) is not str:
            title = "" if title is None else str(title)
        if type(status) is not str:
            status = str(status)
        if assignee is not None and type(assignee) is not str:
            assignee = str(assignee)
        if type(created) is not float:
            created = to_epoch(created)
        if type(updated) is not float:
            updated = to_epoch(updated)
        if completed is not None and type(completed) is not float:
            completed = to_epoch(completed)
        if type(reason) is str and len(reason) > REASON_CHARS:
            reason = _first_words(reason)
        elif reason is not None and type(reason) is not str:
            reason = str(reason)[:REASON_CHARS]
        return Card(int(task_id), title, status, assignee, _count(priority), created, updated,
                    completed, _count(failures), reason, _count(files), _count(children),
                    _count(finished), _count(parents), starts_at=to_epoch(starts_at),
                    schedule_id=None if schedule_id is None else _count(schedule_id))
    except Exception as exc:  # one bad row must never fail a board view
        log.warning("task row %r is unreadable as a card: %s", task_id, exc)
        return Card(_count(task_id, -1), "(unreadable task)", "blocked", None, 0, None, None,
                    None, 0, None, 0, 0, 0, 0, corrupt=f"unreadable row: {exc}")


def _count(value: object, default: int = 0) -> int:
    if type(value) is int:
        return value
    if value is None:
        return default
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _first_words(text: str) -> str:
    cut = text[:REASON_CHARS - 1]
    space = cut.rfind(" ")
    if space > REASON_CHARS // 2:  # cut between words unless that would lose half the text
        cut = cut[:space]
    return cut.rstrip() + "…"
