"""Exceptions raised by the board kernel.

Every error a caller can react to derives from :class:`KanbanError`; the CLI maps it to a
non-zero exit and one line, the dashboard to a 4xx JSON body::

    KanbanError
    ├── NotFound
    │   ├── TaskNotFound(task_id)
    │   ├── BoardNotFound(slug)
    │   ├── ScheduleNotFound(schedule_id)
    │   └── ProfileNotFound(name)
    ├── InvalidInput             bad values, unknown parents, toolset-shaped skills
    │   ├── CycleError(path)     a link or a decomposition would close a cycle
    │   └── PlanError            an LLM reply (or a body) that cannot become a plan
    ├── Conflict                 the task is not in a state that allows the operation
    │   └── NotClaimable(task_id, status)
    │       └── CapReached       the board already runs ``max_running`` tasks
    ├── LeaseError(task_id, run_id)   stale, finished or wrong lease token
    ├── StorageError             the database could not be opened, set up or migrated
    ├── AuxiliaryError(slot)     an auxiliary LLM call failed
    │   ├── NotConfigured(slot)  no endpoint configured for the slot
    │   ├── LLMTimeout(slot, seconds)
    │   └── LLMUnavailable(slot, status)
    ├── SpawnError               a worker process could not be started
    │   └── TemplateRefused(placeholder, env_var, reason)   a value the template rule refuses
    ├── WorkspaceError           a task's workspace could not be prepared
    └── UnsafeFile               a file that must not be copied (a link, a hard link, a device);
                                 also an ``OSError``, the way the file functions fail otherwise
"""

from __future__ import annotations


class KanbanError(Exception):
    """Base class of every kernel error; ``str(err)`` is one line meant for a person."""


class NotFound(KanbanError):
    pass


class TaskNotFound(NotFound):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class BoardNotFound(NotFound):
    def __init__(self, slug: str) -> None:
        super().__init__(
            f"board {slug!r} does not exist "
            f"(create it with `relayboard kanban boards create {slug}`)"
        )
        self.slug = slug


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: int) -> None:
        super().__init__(f"schedule S{schedule_id} not found (see `relayboard kanban schedules`)")
        self.schedule_id = schedule_id


class ProfileNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"profile {name!r} does not exist")
        self.name = name


class InvalidInput(KanbanError):
    pass


class CycleError(InvalidInput):
    def __init__(self, message: str, path: list[int] | None = None) -> None:
        super().__init__(message)
        self.path = path or []


class Conflict(KanbanError):
    pass


class NotClaimable(Conflict):
    def __init__(self, task_id: int, status: str, reason: str | None = None) -> None:
        detail = reason or f"it is {status}, not ready"
        super().__init__(f"task {task_id} cannot be claimed: {detail}")
        self.task_id = task_id
        self.status = status


class CapReached(NotClaimable):
    """A claim refused because the board's concurrency cap (``max_spawn``) is reached: no other
    ready task can be claimed either until one finishes."""


class LeaseError(KanbanError):
    def __init__(self, message: str, task_id: int, run_id: int | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.run_id = run_id


class StorageError(KanbanError):
    pass


class PlanError(InvalidInput):
    """A reply (or a body) that cannot become a plan; the message is the recorded reason."""


class AuxiliaryError(KanbanError):
    def __init__(self, message: str, slot: str) -> None:
        super().__init__(message)
        self.slot = slot


def not_configured_message(slot: str) -> str:
    return f"no auxiliary client configured for {slot}"


class NotConfigured(AuxiliaryError):
    def __init__(self, slot: str) -> None:
        super().__init__(not_configured_message(slot), slot)


class LLMTimeout(AuxiliaryError):
    def __init__(self, slot: str, seconds: float) -> None:
        super().__init__(f"{slot}: the LLM did not answer within {seconds:g}s", slot)
        self.seconds = seconds


class LLMUnavailable(AuxiliaryError):
    def __init__(self, message: str, slot: str, status: int | None = None) -> None:
        super().__init__(message, slot)
        self.status = status


class SpawnError(KanbanError):
    """The worker process could not be started (command not found, bad cwd, …)."""


class TemplateRefused(SpawnError):
    """A value that the command-template rule (:mod:`kanban.runtime.template`) will not put
    where the template places it. ``placeholder`` (``{workspace}``) and ``env_var`` (the
    variable carrying the same value) name it; ``reason`` says why: ``"code"`` (a word a program
    runs as code), ``"embedded"`` (inside a larger word), ``"option"`` (it would begin an argv
    word and could be read as an option) or ``"nul"``. Only the message quotes the value, so a
    caller that must not log the value logs the attributes instead."""

    def __init__(self, message: str, *, placeholder: str, env_var: str, reason: str) -> None:
        super().__init__(message)
        self.placeholder = placeholder
        self.env_var = env_var
        self.reason = reason


class WorkspaceError(KanbanError):
    """A workspace could not be prepared; the spawn fails (and is counted)."""


class UnsafeFile(KanbanError, OSError):
    """A declared file that must not be copied (a link, a hard link, a device, …).

    It is raised by :mod:`kanban.fsutil` from inside file operations whose callers handle
    ``OSError`` (skip the entry, report the copy as failed), so it stays one: those handlers keep
    working, and a caller that knows the kernel's tree sees a ``KanbanError``."""
