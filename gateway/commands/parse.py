"""One click command tree built from the verb declarations, for the CLI and for chat text.

:func:`build_group` makes the ``kanban`` group (``--board`` plus every verb of
:data:`gateway.commands.declare.REGISTRY`); the CLI adds its own callbacks and ``--json``, the chat
parser's callbacks just return the request. :func:`parse_command` turns chat text such as
``create Quarterly report --assignee reporter`` into a typed request, or one short
:class:`UsageError` line with a hint — never a usage dump.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from gateway.commands import verbs  # noqa: F401  (registers every verb)
from gateway.commands.declare import REGISTRY, Request, build, params_of
from gateway.commands.errors import UsageError
from gateway.commands.escaping import split_words

CHAT_PREFIX = "/kanban"

# A corrected example for each verb's usage error (chat users copy these).
EXAMPLES: dict[tuple[str, ...], str] = {
    ("create",): "create Chart the sales --assignee charts",
    ("list",): "list --status ready",
    ("show",): "show 12",
    ("context",): "context 12",
    ("stats",): "stats",
    ("link",): "link 11 12",
    ("unlink",): "unlink 11 12",
    ("assign",): "assign 12 reporter",
    ("set-model",): "set-model 12 gpt-4o",
    ("claim",): "claim 12",
    ("complete",): "complete 12 --summary done",
    ("block",): "block 12 waiting for the data",
    ("unblock",): "unblock 12",
    ("comment",): "comment 12 looks good",
    ("heartbeat",): "heartbeat 12 --lease TOKEN",
    ("archive",): "archive 12",
    ("recompute",): "recompute",
    ("events",): "events 12",
    ("subscribe",): "subscribe 12 --platform slack --chat C123",
    ("unsubscribe",): "unsubscribe 12 --platform slack --chat C123",
    ("subscriptions",): "subscriptions 12",
    ("boards", "list"): "boards list",
    ("boards", "create"): "boards create ops",
    ("boards", "remove"): "boards remove ops",
    ("boards", "migrate"): "boards migrate ops --to postgresql",
    ("decompose",): "decompose 12",
    ("schedules",): "schedules",
    ("schedule", "show"): "schedule show S3",
    ("schedule", "pause"): "schedule pause S3",
    ("schedule", "resume"): "schedule resume S3",
    ("schedule", "remove"): "schedule remove S3",
    ("schedule", "subscribe"): "schedule subscribe S3 --platform slack --chat C123",
    ("schedule", "unsubscribe"): "schedule unsubscribe S3 --platform slack --chat C123",
    ("run-now",): "run-now 12",
}

Callback = Callable[..., Any]


class VerbGroup(click.Group):
    """A group whose verbs are built from their declarations when first used: ``kanban create``
    builds one click command, not thirty (start-up time)."""

    def __init__(self, name: str, *, prefix: tuple[str, ...], make: Callable[
                     [tuple[str, ...]], click.Command | None], **attrs: Any) -> None:
        super().__init__(name, **attrs)
        self.prefix = prefix
        self.make = make

    def list_commands(self, ctx: click.Context) -> list[str]:
        depth = len(self.prefix)
        names = {path[depth] for path in REGISTRY
                 if len(path) > depth and path[:depth] == self.prefix}
        return sorted({*names, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            made = self.make((*self.prefix, cmd_name))
            if made is not None:
                self.add_command(made, cmd_name)
        return super().get_command(ctx, cmd_name)


def build_group(callback_for: Callable[[type[Request]], Callback], *, chat: bool,
                extra_params: Callable[[type[Request]], list[click.Parameter]] | None = None,
                group_cls: type[VerbGroup] = VerbGroup,
                group_callback: Callback | None = None, name: str = "kanban",
                help: str | None = None) -> VerbGroup:
    """The ``kanban`` group with one command per declared verb (built on first use).
    ``extra_params`` adds transport-only options (the CLI's ``--json``, ``--body-file``)."""

    def remember_board(board_slug: str | None) -> None:
        click.get_current_context().meta["board_slug"] = board_slug

    def make(path: tuple[str, ...]) -> click.Command | None:
        cls = REGISTRY.get(path)
        if cls is not None:
            params = params_of(cls, chat=chat) + (extra_params(cls) if extra_params else [])
            return click.Command(path[-1], params=params, callback=callback_for(cls),
                                 help=cls.HELP, short_help=cls.HELP.split(". ")[0],
                                 add_help_option=not chat)
        if any(p[:len(path)] == path for p in REGISTRY):
            return VerbGroup(path[-1], prefix=path, make=make, add_help_option=not chat,
                             help=f"{path[-1].capitalize()}: "
                                  + ", ".join(p[-1] for p in REGISTRY if p[:-1] == path) + ".")
        return None

    return group_cls(name, prefix=(), make=make, help=help,
                     callback=group_callback or remember_board, add_help_option=not chat,
                     params=[click.Option(["--board", "board_slug"], default=None,
                                          help="Board slug (default: the worker's board, "
                                               "else kanban.default_board).")])


def _chat_callback(cls: type[Request]) -> Callback:
    def callback(**params: Any) -> Request:
        ctx = click.get_current_context()
        return build(cls, params, board=ctx.find_root().meta.get("board_slug"))

    return callback


@functools.cache
def chat_group() -> VerbGroup:
    return build_group(_chat_callback, chat=True, name=CHAT_PREFIX)


def parse_command(text: str) -> Request:
    """Chat text after ``/kanban`` (the prefix itself is accepted too) → a typed request.

    Unquoted words before the first flag form the title (or the text of ``block``/``comment``);
    typographic quotes count as quotes. A usage error is one :class:`UsageError` line with a
    corrected example as its hint."""
    words = split_words(text)
    if words and words[0].lower() in (CHAT_PREFIX, "!kanban", "kanban"):
        words = words[1:]
    if not words:
        raise UsageError("which verb?", f"try: {CHAT_PREFIX} list")
    try:
        request = chat_group().main(words, prog_name=CHAT_PREFIX, standalone_mode=False)
    except click.UsageError as exc:
        raise _usage_line(exc) from None
    except click.ClickException as exc:
        raise UsageError(" ".join(exc.format_message().split())) from None
    if not isinstance(request, Request):  # pragma: no cover - every leaf returns a request
        raise UsageError("which verb?", f"try: {CHAT_PREFIX} list")
    return request


def verb_path(ctx: click.Context | None) -> tuple[str, ...]:
    """The verb words of a context (``("boards", "create")``), without the group itself."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def example_for(path: tuple[str, ...]) -> str | None:
    example = EXAMPLES.get(path)
    return f"try: {CHAT_PREFIX} {example}" if example else None


def _usage_line(exc: click.UsageError) -> UsageError:
    path = verb_path(exc.ctx)
    verb = " ".join(path)
    hint = example_for(path)
    if isinstance(exc, click.MissingParameter) and exc.param is not None:
        param = exc.param
        if isinstance(param, click.Argument):
            what = (param.metavar or param.name or "value").lower().replace("_", " ")
            what = what.replace("[id] ", "")
            article = "an" if what[:1] in "aeiou" else "a"
            return UsageError(f"{verb} needs {article} {what}", hint)
        return UsageError(f"{verb} needs {param.opts[0]}", hint)
    message = " ".join(exc.format_message().split())
    if not path or (len(path) == 1 and path[0] in ("boards",)):
        names = ", ".join(sorted({p[0] for p in REGISTRY}))
        return UsageError(message.rstrip("."), f"verbs: {names}")
    return UsageError(f"{verb}: {message}", hint)
