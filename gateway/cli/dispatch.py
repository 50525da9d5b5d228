"""``relayboard kanban dispatch [--max N] [--dry-run] [--wait SECONDS] [--loop] [--json]``.

One cycle by default, then up to ``--wait`` seconds (default 2) for the workers it started, so
fast failures are recorded by this run (spawned workers still running after that keep running;
the next dispatcher adopts them). ``--loop`` runs the event-driven dispatcher until
SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import Any

import click

from gateway.cli.invocation import app_of, console, emit_json, json_option
from gateway.commands.declare import WAIT_SECONDS
from gateway.kernel_settings import dispatch_settings
from gateway.worker_api import serving, socket_path
from kanban.runtime import CycleReport, Dispatcher
from kanban.runtime.sandbox import forbid_dumping


def _print_report(report: CycleReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, default=str))
        return
    out = console()
    verb = "would spawn" if report.dry_run else "spawned"
    items = report.planned if report.dry_run else report.spawned
    out.print(f"board {report.board}: {report.running} running, budget {report.budget}, "
              f"{verb} {len(items)}")
    for item in items:
        out.print(f"  task {item['task_id']}" + (f" pid {item['pid']}" if "pid" in item else ""))
    for name in ("blocked", "spawn_failed", "crashed"):
        for item in getattr(report, name):
            out.print(f"  {name}: task {item['task_id']}: {item.get('reason') or item['error']}",
                      markup=False)
    for name in ("requeued", "protocol_violations", "timed_out", "extended", "reclaimed",
                 "terminated", "adopted"):
        ids = getattr(report, name)
        if ids:
            out.print(f"  {name}: {', '.join(map(str, ids))}")


@click.command("dispatch")
@click.option("--max", "max_new", type=click.IntRange(min=0), default=None,
              help="Spawn at most N workers this cycle (within the caps).")
@click.option("--dry-run", is_flag=True, help="Show what would be spawned; change nothing.")
@click.option("--wait", "wait", type=WAIT_SECONDS, default=2.0,
              show_default=True, metavar="SECONDS",
              help="One-shot only: wait up to SECONDS for the workers this run started, "
              "and record those that exit (crashes with exit status and log tail).")
@click.option("--loop", is_flag=True,
              help="Keep dispatching (event-driven) until interrupted.")
@json_option
@click.pass_context
def dispatch(ctx: click.Context, max_new: int | None, dry_run: bool, wait: float, loop: bool,
             as_json: bool) -> None:
    """Spawn workers for ready tasks and supervise running ones."""
    forbid_dumping()  # no process of this user reads our environment (keys) through /proc
    app = app_of(ctx)
    slug = str(ctx.meta.get("board_slug") or app.board_slug(None))
    api = socket_path(app.home)
    settings = dispatch_settings(app.config.kanban, app.config.workers, worker_api=api)
    if loop and dry_run:
        raise click.UsageError("--loop and --dry-run cannot be combined")
    app.require_operator("dispatch tasks")

    async def once() -> dict[str, Any]:
        services = app.services()
        dispatcher = Dispatcher(services.boards, services.profiles or app.profiles(), settings,
                                base_env=dict(app.environ), slugs=[slug])
        try:
            board = await services.boards.open(slug)
            if dry_run:
                report = await dispatcher.run_once(board, max_new=max_new, dry_run=True)
            else:
                # The workers report through the API while this run waits for them; the ones
                # still running after --wait keep running, and reach the next dispatcher.
                async with serving(services, api):
                    report = await dispatcher.run_once(board, max_new=max_new, wait=wait)
            return report.to_dict()
        finally:
            await dispatcher.aclose()
            await services.aclose()

    async def forever() -> None:
        services = app.services()
        boards = services.boards
        dispatcher = Dispatcher(boards, services.profiles or app.profiles(), settings,
                                base_env=dict(app.environ), slugs=[slug])
        stop = asyncio.Event()
        loop_ = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop_.add_signal_handler(sig, stop.set)
        click.echo(f"relayboard: dispatching board {slug!r} of {app.home} "
                   "(Ctrl-C to stop)", err=True)
        try:
            async with serving(services, api):
                await dispatcher.run(stop)
        finally:
            await dispatcher.aclose()
            await services.aclose()

    if loop:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        asyncio.run(forever())
        return
    data = asyncio.run(once())
    if as_json:
        emit_json(data)
    else:
        _print_report(CycleReport(**data), False)
