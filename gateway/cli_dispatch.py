"""``relayboard kanban dispatch`` (owned by the dispatcher work; registered on the kanban group)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add the dispatch verbs to the ``kanban`` group."""
