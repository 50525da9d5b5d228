"""Who is asking: an explicit argument of every command, never read from the environment here.

The CLI builds its caller from the process environment at its edge
(:func:`gateway.cli.context.caller_from_environ`); the chat router builds a :class:`ChatUser` from
the platform message; the dashboard an :class:`Operator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kanban import Storage


@dataclass(frozen=True)
class Operator:
    """A person at a terminal or the dashboard: may change any task (``as_operator=True``)."""

    name: str = "operator"

    @property
    def display(self) -> str:
        return self.name


@dataclass(frozen=True)
class Worker:
    """A worker process, identified by the ARCHITECTURE §6 variables it was started with.

    It presents its run's lease for its own task and may not change other tasks.
    """

    task_id: int
    run_id: int | None
    lease: str
    board: str | None = None
    profile: str | None = None
    db: Path | None = None
    storage: Storage | None = field(default=None, repr=False)
    """The board's storage as the dispatcher described it (None: SQLite)."""

    @property
    def display(self) -> str:
        return self.profile or f"worker of task {self.task_id}"


@dataclass(frozen=True)
class ChatUser:
    """An allow-listed chat user (the router checked ``allowed_users`` before calling)."""

    platform: str
    user_id: str
    name: str | None = None

    @property
    def display(self) -> str:
        return f"{self.name or self.user_id} ({self.platform})"


Caller = Operator | Worker | ChatUser
