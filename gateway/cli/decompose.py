"""``relayboard kanban decompose ID|--all [--json]``: run the triage decomposer now.

Exit status: 0 when every task was decomposed or promoted, 1 when any failed (the reason is
recorded on the task and printed) or a named task is not in triage.
"""

from __future__ import annotations

import click

from gateway.cli.context import app_of, board_call, emit_json, json_option
from gateway.kernel_settings import decompose_settings
from kanban.agents.decomposer import (
    Outcome,
    decompose_all,
    decompose_task,
)
from kanban.board import Board
from kanban.errors import Conflict, KanbanError


def register(group: click.Group) -> None:
    """Add the decompose verb to the ``kanban`` group."""
    group.add_command(decompose)


@click.command("decompose")
@click.argument("task_id", type=int, required=False)
@click.option("--all", "all_tasks", is_flag=True, help="Every triage task on the board.")
@json_option
@click.pass_context
def decompose(ctx: click.Context, task_id: int | None, all_tasks: bool, as_json: bool) -> None:
    """Decompose triage task ID (or --all) into assigned sub-tasks."""
    if (task_id is None) == (not all_tasks):
        raise click.UsageError("give a task ID or --all (not both)")
    app = app_of(ctx)
    settings = decompose_settings(app.config)
    profiles = app.profiles()

    async def run(board: Board) -> list[Outcome]:
        if all_tasks:
            return await decompose_all(board, profiles, settings)
        assert task_id is not None
        task = await board.get_task(task_id)
        if task.status != "triage":
            raise Conflict(f"task {task_id} is {task.status}; only a triage task can be "
                           "decomposed")
        return [await decompose_task(board, task_id, profiles, settings)]

    outcomes = board_call(ctx, run)
    if as_json:
        emit_json(outcomes[0].to_dict() if task_id is not None else
                  [o.to_dict() for o in outcomes])
    elif task_id is not None and not outcomes[0].ok:
        raise KanbanError(f"task {task_id}: {outcomes[0].reason}")  # one "error:" line
    else:
        if not outcomes:
            click.echo("no triage tasks")
        for outcome in outcomes:
            click.echo(describe(outcome))
    if any(not o.ok for o in outcomes):
        ctx.exit(1)


def describe(o: Outcome) -> str:
    how = "offline decomposer" if o.decomposer == "offline" else "LLM decomposer"
    if o.action == "decomposed":
        pairs = ", ".join(f"#{c}→{a}" for c, a in zip(o.children, o.assignees, strict=True))
        line = f"#{o.task_id}: decomposed by the {how} into {len(o.children)} task(s): {pairs}"
    elif o.action == "promoted":
        line = f"#{o.task_id}: promoted as one task for {o.assignees[0]} ({how})"
    else:
        line = f"#{o.task_id}: {o.action}: {o.reason}"
    return line + (f"  [{o.note}]" if o.note else "")
