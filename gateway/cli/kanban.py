"""``relayboard kanban …``: every board verb, built from the command layer.

The verbs and their arguments are declared once in :mod:`gateway.commands.verbs`; this module
adds the terminal-only parts (``--json``, ``--body-file``, relative ``--artifact`` paths,
``events --follow``), turns the environment into the caller, and renders each result (rich
tables, or ``--json``). ``dispatch`` is loaded only when it is used.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import stat
from pathlib import Path
from typing import Any

import click

from gateway.cli.invocation import app_of, emit_json, emit_json_list
from gateway.commands import (
    CompleteRequest,
    CreateRequest,
    DecomposeRequest,
    EventsRequest,
    ListRequest,
    Request,
    VerbGroup,
    build,
    build_group,
    follow_events,
)
from gateway.commands import results as r
from kanban import InvalidInput, KanbanError
from kanban.validation import MAX_TEXT_BYTES

MAX_BODY_FILE_BYTES = MAX_TEXT_BYTES  # what the command layer accepts as a body


# Verbs that live outside the command layer, imported on first use (start-up stays fast).
_LAZY = {"dispatch": "gateway.cli.dispatch"}


class _KanbanGroup(VerbGroup):
    """The kanban verbs, and the ones imported on first use. (A usage error of any verb becomes
    one ``error:`` line in the root group, :class:`gateway.cli.invocation.OneLineUsageGroup`.)"""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _LAZY.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            command = getattr(importlib.import_module(module), cmd_name)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def _kanban_callback(board_slug: str | None) -> None:
    ctx = click.get_current_context()
    ctx.meta["board_slug"] = app_of(ctx).board_slug(board_slug)


def _extra_params(cls: type[Request]) -> list[click.Parameter]:
    params: list[click.Parameter] = []
    if cls is CreateRequest:
        params.append(click.Option(
            ["--body-file", "body_file"], type=click.Path(dir_okay=False), default=None,
            help="Read the description from a file ('-' for stdin)."))
    params.append(click.Option(["--json", "as_json"], is_flag=True, help="Print JSON."))
    return params


def _read_body_file(path: str) -> str:
    """The description from ``path`` ('-': stdin), read up to the command layer's text limit.

    Only a regular file is read: it is opened without blocking and judged on the handle, so a
    FIFO without a writer (or a device such as /dev/zero) is one ``error:`` line, not a hang."""
    if path == "-":
        # click.open_file gives stdin for "-" (click.get_*_stream are deprecated in 8.5).
        with click.open_file("-", "rb") as stdin:
            raw = bytes(stdin.read(MAX_BODY_FILE_BYTES + 1))
    else:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                         | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise InvalidInput(f"cannot read --body-file: {exc.strerror or exc}: {path}"
                               ) from None
        with os.fdopen(fd, "rb") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            if not stat.S_ISREG(mode):
                kind = "a folder" if stat.S_ISDIR(mode) else (
                    "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file")
                raise InvalidInput(f"--body-file must be a regular file ('-' for stdin); {path} "
                                   f"is {kind}")
            try:
                # One byte past the cap, so a huge file is refused, not loaded.
                raw = stream.read(MAX_BODY_FILE_BYTES + 1)
            except OSError as exc:
                raise InvalidInput(f"cannot read --body-file: {exc.strerror or exc}: {path}"
                                   ) from None
    if len(raw) > MAX_BODY_FILE_BYTES:
        raise InvalidInput(f"--body-file is larger than the {MAX_BODY_FILE_BYTES:,}-byte limit")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("cannot read --body-file: it is not UTF-8 text") from None


def _cli_callback(cls: type[Request]) -> Any:
    def callback(as_json: bool, **params: Any) -> None:
        ctx = click.get_current_context()
        app = app_of(ctx)
        if cls is CreateRequest:
            body_file = params.pop("body_file", None)
            if body_file is not None:
                if params.get("body") is not None:
                    raise InvalidInput("give --body or --body-file, not both")
                params["body"] = _read_body_file(body_file)
        if cls is CompleteRequest:
            # Relative paths are the worker's (its cwd is the workspace): made absolute here.
            params["artifacts"] = tuple(str(Path(a).expanduser().absolute())
                                        for a in params.get("artifacts", ()))
        request = build(cls, params, board=str(ctx.meta["board_slug"]))
        if isinstance(request, DecomposeRequest) and (request.task_id is None) == (
                not request.all):
            raise click.UsageError("give a task ID or --all (not both)")
        if isinstance(request, ListRequest) and not as_json:
            request = dataclasses.replace(request, with_bodies=False)
        if isinstance(request, EventsRequest) and request.follow:
            _follow(ctx, request, as_json)
            return
        _show(ctx, app.run(request), as_json,
              show_all=isinstance(request, ListRequest) and request.all)

    return callback


def _show(ctx: click.Context, result: r.Result, as_json: bool, *, show_all: bool) -> None:
    if isinstance(result, r.Decomposed):
        _show_decomposed(ctx, result, as_json)
        return
    if as_json:
        data = result.to_json()
        if isinstance(data, list) and isinstance(result, r.TaskList):
            emit_json_list(data)
        else:
            emit_json(data)
        return
    if isinstance(result, r.TaskCreated):
        # The common verb of scripts and workers: plain text, without loading rich.
        from gateway.commands import printable

        verb = "Created" if result.created else "Existing"
        t = result.task
        starts = (f"; starts {r.when(t.waiting_until, result.tz or 'UTC')} ({result.tz})"
                  if t.waiting_until is not None and result.tz else "")
        click.echo(f"{verb} task {t.id} ({t.status}{starts}): {printable(t.title)}")
        return
    if not isinstance(result, r.TABULAR):
        click.echo(result.text())
        return
    from gateway.cli import render  # rich: only for tables and detail views

    render.human(result, show_all=show_all)


def _show_decomposed(ctx: click.Context, result: r.Decomposed, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_json())
    elif result.single and not result.ok:
        o = result.outcomes[0]
        raise KanbanError(f"task {o.task_id}: {o.reason}")  # one "error:" line
    else:
        click.echo(result.text())
    if not result.ok:
        ctx.exit(1)


def _follow(ctx: click.Context, request: EventsRequest, as_json: bool) -> None:
    import json

    app = app_of(ctx)

    async def go() -> None:
        from gateway.cli import render

        services = app.services()
        try:
            async for batch in follow_events(request, app.caller, services):
                for event in batch:
                    if as_json:
                        click.echo(json.dumps(event.to_dict(), ensure_ascii=False, default=str))
                    else:
                        render.events([event])
        finally:
            await services.aclose()

    try:
        from gateway.cli.invocation import run_async

        run_async(go)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass


kanban = build_group(_cli_callback, chat=False, extra_params=_extra_params,
                     group_cls=_KanbanGroup, group_callback=_kanban_callback,
                     help="Work with the kanban board.")
