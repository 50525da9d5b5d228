"""``relayboard kanban decompose`` (owned by the decomposition work; registered on the kanban group)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add the decompose verb to the ``kanban`` group."""
