"""``relayboard kanban …``: every kernel verb of ARCHITECTURE section 5."""

from __future__ import annotations

import click

from gateway.cli_context import AppContext


@click.group()
@click.option("--board", "board_slug", default=None, help="Board slug (default: kanban.default_board).")
@click.pass_context
def kanban(ctx: click.Context, board_slug: str | None) -> None:
    """Work with the kanban board."""
    app: AppContext = ctx.ensure_object(AppContext)
    ctx.meta["board_slug"] = app.board_slug(board_slug)
