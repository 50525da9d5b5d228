"""Human output of the CLI (rich tables). JSON output never goes through here.

Untrusted text (titles, bodies, comments, names, event payloads) is shown literally: never parsed
as rich markup, and with control characters and escape sequences made visible
(:func:`gateway.commands.printable`), so a title cannot recolour or clear the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from gateway.cli.invocation import console
from gateway.commands import printable
from gateway.commands import results as r
from kanban import BoardInfo, Event, Schedule, Subscription, Task, TaskDetail
from kanban.timespec import describe
from kanban.timeutil import age_text, iso

STATUS_STYLE = {
    "triage": "magenta", "todo": "white", "ready": "cyan", "running": "yellow",
    "blocked": "red", "done": "green", "archived": "dim",
}
# The human table stops here unless --all: drawing 10,000 rows takes seconds and helps nobody.
TABLE_ROWS = 100


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


def _ids(ids: Iterable[int]) -> str:
    return ", ".join(map(str, ids)) or "-"


def _e(value: object, *, multiline: bool = False) -> str:
    """User text shown literally: control characters escaped, never parsed as markup (a "[/]"
    in a title must not crash the table nor "[bold]" vanish from a body)."""
    return escape(printable(value, multiline=multiline))


def human(result: r.Result, *, show_all: bool = False) -> None:
    """Print any command result for a person."""
    if isinstance(result, r.TaskList):
        task_table(result.tasks, result.board, show_all=show_all, tz=result.tz)
    elif isinstance(result, r.ScheduleList):
        schedule_table(result.schedules, result.board)
    elif isinstance(result, r.TaskShown):
        task_detail(result.detail, tz=result.tz)
    elif isinstance(result, r.TaskContext):
        # The worker's prompt, verbatim: what the worker will read.
        click.echo(result.markdown, nl=False)
    elif isinstance(result, r.BoardStats):
        stats(result.data)
    elif isinstance(result, r.EventList):
        events(result.events)
    elif isinstance(result, r.SubscriptionList):
        subscriptions(result.subscriptions)
    elif isinstance(result, r.BoardList):
        boards(result.boards)
    elif isinstance(result, r.Claimed):
        c = result.claim
        click.echo(f"Claimed task {c.task_id}: run {c.run_id}\nlease: {c.lease}\n"
                   f"workspace: {c.workspace}")
    else:
        click.echo(result.text())


def _starts(task: Task, tz: str | None) -> str:
    until = task.waiting_until
    if until is None or task.status not in ("ready", "todo"):
        return ""
    return f"[dim]starts {escape(r.when(until, tz or 'UTC'))}[/]"


def task_table(tasks: Sequence[Task], board: str, *, show_all: bool = False,
               tz: str | None = None) -> None:
    if not tasks:
        console().print(f"No tasks on board {_e(board)}.")
        return
    shown = tasks if show_all else tasks[:TABLE_ROWS]
    table = Table(title=f"board {_e(board)}", title_justify="left")
    for column in ("id", "status", "pri", "assignee", "title", "parents", "age"):
        table.add_column(column, no_wrap=column != "title")
    for t in shown:
        title = _e(t.title) if t.corrupt is None else f"{_e(t.title)} [red]({_e(t.corrupt)})[/]"
        starts = _starts(t, tz)
        table.add_row(str(t.id), _status(t.status) + (f"\n{starts}" if starts else ""),
                      str(t.priority), _e(t.assignee or "-"), title, _ids(t.parents),
                      age_text(t.created_at))
    out = console()
    out.print(table)
    if len(tasks) > len(shown):
        out.print(f"… {len(tasks) - len(shown)} more, --all to show", markup=False)


def schedule_table(schedules: Sequence[Schedule], board: str) -> None:
    if not schedules:
        console().print(f"No schedules on board {_e(board)}.")
        return
    table = Table(title=f"schedules of board {_e(board)}", title_justify="left")
    for column in ("id", "title", "every", "next run", "assignee", "catch-up", "runs"):
        table.add_column(column, no_wrap=column != "title",
                         min_width=10 if column == "title" else None)
    for s in schedules:
        nxt = (escape(r.when(s.next_run_at, s.timezone))
               if s.state == "active" and s.next_run_at is not None else f"[dim]{s.state}[/]")
        table.add_row(s.ref, _e(s.title), f"{_e(describe(s.cron))}\n[dim]{_e(s.timezone)}[/]",
                      nxt, _e(s.assignee or "-"),
                      s.catch_up + (" +overlap" if s.overlap else ""), str(s.occurrences))
    console().print(table)


def task_detail(detail: TaskDetail, *, tz: str | None = None) -> None:
    t = detail.task
    out = console()
    out.print(f"[bold]Task {t.id}[/]: {_e(t.title)}  {_status(t.status)}")
    rows: list[tuple[str, Any]] = [
        ("assignee", t.assignee or "-"), ("priority", t.priority),
        ("parents", _ids(t.parents)), ("children", _ids(t.children)),
        ("created", iso(t.created_at) or "unknown"),
        ("started", iso(t.started_at) or "-"), ("completed", iso(t.completed_at) or "-"),
        ("failures", f"{t.consecutive_failures}"
         + (f" (last: {t.last_failure_error})" if t.last_failure_error else "")),
        ("max runtime", "-" if t.max_runtime_seconds is None else f"{t.max_runtime_seconds}s"),
        ("max retries", t.max_retries if t.max_retries is not None else "board default"),
        ("model", t.model_override or "-"), ("skills", ", ".join(t.skills) or "-"),
        ("workspace", t.workspace_spec), ("host", t.host_label or "any"),
    ]
    if t.status == "blocked":
        rows.append(("blocked", f"by {t.blocked_by or '?'}: {t.blocked_reason or ''}"))
    if t.waiting_until is not None and t.status in ("ready", "todo"):
        rows.append(("starts", f"{r.when(t.waiting_until, tz or 'UTC')} ({tz or 'UTC'})"))
    if t.schedule_id is not None:
        rows.append(("schedule", f"S{t.schedule_id}"))
    if t.result:
        rows.append(("result", t.result))
    if t.summary:
        rows.append(("summary", t.summary))
    if t.artifacts:
        rows.append(("artifacts", "\n".join(t.artifacts)))
    for key, value in rows:
        out.print(f"  [dim]{key:>12}[/]  {_e(value, multiline=key == 'artifacts')}")
    if t.body:
        out.print("\n" + _e(t.body, multiline=True))
    if detail.comments:
        out.print("\n[bold]Comments[/]")
        for c in detail.comments:
            out.print(f"  [dim]{iso(c.created_at) or '?'} {_e(c.author)} ({c.author_kind})[/]")
            out.print("    " + _e(c.body, multiline=True).replace("\n", "\n    "))
    if detail.runs:
        out.print("\n[bold]Runs[/]")
        for run in detail.runs:
            extra = f" exit {run.exit_code}" if run.exit_code is not None else ""
            error = f" — {_e(run.error)}" if run.error else ""
            out.print(f"  run {run.id}: {run.status}{extra} claimed "
                      f"{iso(run.claimed_at) or '?'}{error}")
            # Runs carry their own outcome once the kernel records it per run.
            for key in ("summary", "result"):
                value = getattr(run, key, None)
                if value:
                    out.print(f"      [dim]{key}[/] {_e(value)}")
            metadata = getattr(run, "metadata", None)
            if metadata:
                out.print(f"      [dim]metadata[/] {_e(metadata)}")
    if detail.events:
        out.print("\n[bold]Recent events[/]")
        events(detail.events)


def events(batch: Sequence[Event]) -> None:
    out = console()
    for e in batch:
        payload = ", ".join(f"{k}={v}" for k, v in e.payload.items() if v not in (None, "", []))
        task = f"task {e.task_id}" if e.task_id is not None else "board"
        out.print(printable(f"{e.id:>6}  {iso(e.created_at) or '?'}  {task:<10} {e.kind:<16} "
                            f"{payload}"), markup=False)


def stats(data: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]Board {_e(data['board'])}[/]: {data['total']} tasks, "
              f"{data['active_runs']} active run(s), journal {data['journal_mode']}")
    for status, count in sorted(data["by_status"].items()):
        out.print(f"  [{STATUS_STYLE.get(status, 'white')}]{escape(status):<10}[/] {count}")
    if data["open_by_assignee"]:
        out.print("[bold]Open by assignee[/]")
        for who, count in sorted(data["open_by_assignee"].items()):
            out.print(printable(f"  {who:<20} {count}"), markup=False)


def boards(infos: Sequence[BoardInfo]) -> None:
    table = Table()
    for column in ("slug", "name", "created"):
        table.add_column(column)
    for info in infos:
        table.add_row(info.slug, _e(info.name), iso(info.created_at) or "-")
    console().print(table)


def subscriptions(subs: Sequence[Subscription]) -> None:
    if not subs:
        console().print("No subscriptions.")
        return
    table = Table()
    for column in ("task", "platform", "chat", "thread", "since event"):
        table.add_column(column)
    for s in subs:
        table.add_row(str(s.task_id), _e(s.platform), _e(s.chat), _e(s.thread or "-"),
                      str(s.last_event_id))
    console().print(table)
