"""``relayboard profile …``."""

from __future__ import annotations

import click


@click.group()
def profile() -> None:
    """Manage worker profiles (the roster of agents)."""
