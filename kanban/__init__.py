"""The board kernel: storage, the ``Board`` facade, the process runtime and the LLM parts.

Layers, one subpackage each::

    kanban/storage/   the SQLite connection and transactions, the schema, transaction blocks
    kanban/board/     the Board facade, its methods grouped by noun
    kanban/runtime/   the dispatcher, worker spawning, workspaces
    kanban/agents/    the auxiliary LLM client, profiles, decomposer, describer

This module exports the public surface a caller needs to open boards and read or change them;
the runtime and agents export theirs from their own packages. Layering: this package imports only
the standard library, aiosqlite, pyyaml, anyio, psutil and the LLM client library, never
``gateway`` or ``platforms``.
"""

from kanban.board import (
    Board,
    BoardOptions,
    BoardPaths,
    Card,
    ChangeSignal,
    ChildSpec,
    Created,
    Decomposition,
    FailureOutcome,
)
from kanban.errors import (
    AuxiliaryError,
    BoardNotFound,
    CapReached,
    Conflict,
    CycleError,
    InvalidInput,
    KanbanError,
    LeaseError,
    LLMTimeout,
    LLMUnavailable,
    NotClaimable,
    NotConfigured,
    NotFound,
    PlanError,
    ProfileNotFound,
    ScheduleNotFound,
    SpawnError,
    StorageError,
    TaskNotFound,
    WorkspaceError,
)
from kanban.home import DEFAULT_BOARD, BoardInfo, Boards
from kanban.models import (
    STATUSES,
    Claim,
    Comment,
    Event,
    Run,
    Schedule,
    Subscription,
    Task,
    TaskDetail,
)
from kanban.storage.backend import Storage

__all__ = [
    "DEFAULT_BOARD",
    "STATUSES",
    "AuxiliaryError",
    "Board",
    "BoardInfo",
    "BoardNotFound",
    "BoardOptions",
    "BoardPaths",
    "Boards",
    "CapReached",
    "Card",
    "ChangeSignal",
    "ChildSpec",
    "Claim",
    "Comment",
    "Conflict",
    "Created",
    "CycleError",
    "Decomposition",
    "Event",
    "FailureOutcome",
    "InvalidInput",
    "KanbanError",
    "LLMTimeout",
    "LLMUnavailable",
    "LeaseError",
    "NotClaimable",
    "NotConfigured",
    "NotFound",
    "PlanError",
    "ProfileNotFound",
    "Run",
    "Schedule",
    "ScheduleNotFound",
    "SpawnError",
    "Storage",
    "StorageError",
    "Subscription",
    "Task",
    "TaskDetail",
    "TaskNotFound",
    "WorkspaceError",
]
