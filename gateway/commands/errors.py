"""Refusals of the command layer; every one is a :class:`kanban.KanbanError` with one line::

    KanbanError
    ├── InvalidInput
    │   ├── UsageError(message, hint)   the words do not form a valid command
    │   └── NotAllowed                  the caller may not do this (a worker on another task)
    └── NotFound
        └── ProfileNotFound
            └── UnknownProfile(name, suggestion)   an assignee that is no profile
"""

from __future__ import annotations

import difflib

from kanban import InvalidInput, KanbanError, ProfileNotFound


class UsageError(InvalidInput):
    """Words that do not form a command. ``hint`` is a corrected example ("try: …")."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} — {hint}" if hint else message)


class UnknownProfile(ProfileNotFound):
    """An assignee that names no profile: refused at once instead of waiting forever."""

    def __init__(self, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        self.suggestion = close[0] if close else None
        if self.suggestion:
            message = f"no profile {name!r} — did you mean {self.suggestion!r}?"
        elif known:
            message = f"no profile {name!r} (profiles: {', '.join(known[:8])}" + (
                ", …)" if len(known) > 8 else ")")
        else:
            message = (f"no profile {name!r}: there are no profiles yet "
                       f"(create one with `relayboard profile create {name}`)")
        KanbanError.__init__(self, message)
        self.name = name


class NotAllowed(InvalidInput):
    """The caller may not do this (e.g. a worker changing another task)."""
