"""The :class:`Board` facade: the one writer of a board's SQLite file, used by every surface.

Its methods are grouped by noun in the sibling modules; this class only puts them together.
"""

from __future__ import annotations

from kanban.board.cards import CardsMixin
from kanban.board.events import EventsMixin
from kanban.board.links import LinksMixin
from kanban.board.outbox import OutboxMixin
from kanban.board.recovery import RecoveryMixin
from kanban.board.runs import RunsMixin
from kanban.board.schedules import SchedulesMixin
from kanban.board.subscriptions import SubscriptionsMixin
from kanban.board.tasks import TasksMixin
from kanban.board.triage import TriageMixin
from kanban.board.writeback import BlobsMixin


class Board(TasksMixin, LinksMixin, RunsMixin, RecoveryMixin, TriageMixin, EventsMixin,
            SubscriptionsMixin, OutboxMixin, CardsMixin, BlobsMixin, SchedulesMixin):
    """Open with ``await Board.open(path)`` or ``async with Board.open(path) as board``
    (or through :class:`kanban.home.Boards`); close when done."""
