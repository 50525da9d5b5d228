"""Who is asking: an explicit argument of every command, never read from the environment here.

Each transport builds its caller from what it knows for certain, not from what the asker says:

* the CLI, at its edge (:mod:`gateway.identity`): an :class:`Operator`, unless the process
  descends from a worker the dispatcher started — then it is that run's :class:`Worker`, whatever
  variables the process was left with;
* the chat router: a :class:`ChatUser` whose role comes from the platform's ``admins`` list;
* the dashboard: an :class:`Operator` that may not name host paths outside
  ``kanban.workspace_roots``;
* an inbound webhook (:mod:`gateway.hooks`): a :class:`Webhook`, once its token matched.

The rights of each are the role table in docs/chat.md, enforced by :mod:`gateway.commands.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "member"]


@dataclass(frozen=True)
class Operator:
    """The person who runs the host: may change any task (``as_operator=True``).

    ``host_paths`` is true only for the operator's own command line, which may point a ``dir:``
    or ``worktree:`` workspace anywhere; every other operator surface (the dashboard) is held to
    ``kanban.workspace_roots``.
    """

    name: str = "operator"
    host_paths: bool = True

    @property
    def display(self) -> str:
        return self.name


@dataclass(frozen=True)
class Worker:
    """A worker process: the run the dispatcher started it for.

    It presents its run's lease for its own task and may not change other tasks; it may create
    tasks only when the dispatcher gave its run that right (the orchestrator profile).
    """

    task_id: int
    run_id: int | None
    lease: str
    board: str | None = None
    profile: str | None = None

    @property
    def display(self) -> str:
        return self.profile or f"worker of task {self.task_id}"


@dataclass(frozen=True)
class ChatUser:
    """An allow-listed chat user (the router checked ``allowed_users`` before calling).

    ``role`` is ``admin`` for users in the platform's ``admins`` list, else ``member``. ``chat``
    and ``thread`` are where the message came from: a member subscribes only that thread.
    """

    platform: str
    user_id: str
    name: str | None = None
    role: Role = "member"
    chat: str | None = None
    thread: str | None = None

    @property
    def display(self) -> str:
        return f"{self.name or self.user_id} ({self.platform})"


@dataclass(frozen=True)
class Webhook:
    """An inbound webhook (``hooks.<name>``) whose token matched: it may create tasks on its
    own board and subscribe them to the threads its config names; nothing else.

    ``threads`` are ``(platform, chat, thread)`` as ``kanban subscribe`` names them.
    """

    name: str
    board: str
    threads: tuple[tuple[str, str, str | None], ...] = ()

    @property
    def display(self) -> str:
        return f"hook {self.name}"


Caller = Operator | Worker | ChatUser | Webhook
