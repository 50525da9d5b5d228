"""The kernel's public surface is what ``kanban/__init__.py`` exports; nothing drifts silently."""

from __future__ import annotations

import kanban
from kanban import errors

PINNED = [
    "AuxiliaryError", "Board", "BoardInfo", "BoardNotFound", "BoardOptions", "BoardPaths",
    "Boards", "Card", "CapReached", "ChangeSignal", "ChildSpec", "Claim", "Comment", "Conflict",
    "Created",
    "CycleError", "DEFAULT_BOARD", "Decomposition", "Event", "FailureOutcome", "InvalidInput",
    "KanbanError", "LLMTimeout", "LLMUnavailable", "LeaseError", "NotClaimable", "NotConfigured",
    "NotFound", "PlanError", "ProfileNotFound", "Run", "STATUSES", "Schedule", "ScheduleNotFound",
    "SpawnError", "Storage",
    "StorageError", "Subscription", "Task", "TaskDetail", "TaskNotFound", "WorkspaceError",
]


def test_all_is_sorted_and_pinned() -> None:
    # Sorted the way ruff's RUF022 sorts: constants first, then classes, each alphabetically.
    assert kanban.__all__ == sorted(kanban.__all__, key=lambda n: (not n.isupper(), n))
    assert sorted(kanban.__all__) == sorted(PINNED)
    for name in kanban.__all__:
        assert getattr(kanban, name) is not None


def test_every_kernel_exception_is_a_kanban_error() -> None:
    classes = [v for v in vars(errors).values()
               if isinstance(v, type) and issubclass(v, BaseException)]
    assert len(classes) >= 17
    assert all(issubclass(c, errors.KanbanError) for c in classes)


def test_every_exception_is_drawn_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.KanbanError):
            assert value.__name__ in tree, f"{value.__name__} missing from the errors docstring"
