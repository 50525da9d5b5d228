"""The board facade and the values it works with (see :mod:`kanban.board.facade`)."""

from kanban.board.cards import Card
from kanban.board.facade import Board
from kanban.board.recovery import FailureOutcome
from kanban.board.schedules import Fired
from kanban.board.shared import BoardOptions, BoardPaths, ChangeSignal
from kanban.board.tasks import Created
from kanban.board.triage import ChildSpec, Decomposition

__all__ = [
    "Board",
    "BoardOptions",
    "BoardPaths",
    "Card",
    "ChangeSignal",
    "ChildSpec",
    "Created",
    "Decomposition",
    "FailureOutcome",
    "Fired",
]
