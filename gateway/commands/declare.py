"""Declaring a verb once: a frozen dataclass whose fields carry their click parameter.

Each request class of :mod:`gateway.commands.verbs` is the single declaration of a verb's
arguments. :func:`params_of` turns its fields into click parameters, so the CLI and the chat
parser run the very same click parser over the same declarations; nothing is written twice.

A field marked ``chat=False`` (a host path such as ``--artifact``, ``--follow``) is left out of
the chat parser, so a chat user cannot even spell it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import click

from kanban.validation import INT64_MAX, INT64_MIN


class BoundedInt(click.ParamType[int]):
    """An integer within ``[low, high]``; the messages say "integer", not "integer range"."""

    name = "integer"

    def __init__(self, low: int = INT64_MIN, high: int = INT64_MAX) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip(), 10)
            except ValueError:
                self.fail(f"{str(value)[:40]!r} is not a valid integer", param, ctx)
        if not self.low <= number <= self.high:
            self.fail(f"{str(value)[:40]} is out of range ({self.low} to {self.high})", param,
                      ctx)
        return number


BIG_INT = BoundedInt()
TASK_ID = BoundedInt()


class FiniteFloat(click.ParamType[float]):
    """A finite float no larger than ``high`` (``nan``/``inf``/``1e308`` refused). With
    ``low`` (say 0 for a wait or a timeout) a smaller one is refused too; without it the lower
    bound is the kernel's to check (it says why, e.g. "ttl must be positive")."""

    name = "seconds"

    def __init__(self, high: float, low: float | None = None) -> None:
        self.high = high
        self.low = low

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        low = self.low
        if (not math.isfinite(number) or number > self.high
                or (low is not None and number < low)):
            span = f"from {low:g} to {self.high:g}" if low is not None else f"up to {self.high:g}"
            self.fail(f"{value!r} is not a finite number of seconds {span}", param, ctx)
        return number


class JsonObjectText(click.ParamType[str]):
    """A JSON object as text (``--metadata``). The command line's text goes on as it is (the
    layer parses it); a JSON surface may give the object itself."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        self.fail("must be a JSON object", param, ctx)


JSON_OBJECT = JsonObjectText()
MAX_WAIT_SECONDS = 10 * 366 * 86400.0  # ten years: longer is a typo, not a plan
WAIT_SECONDS = FiniteFloat(MAX_WAIT_SECONDS, low=0.0)


@dataclass(frozen=True)
class ParamSpec:
    kind: str  # "argument" | "option"
    decls: tuple[str, ...]
    attrs: dict[str, Any]
    chat: bool
    join: bool


def argument(*, default: Any = dataclasses.MISSING, chat: bool = True, join: bool = False,
             **attrs: Any) -> Any:
    """A positional parameter. ``join=True`` takes every word (``nargs=-1``) and joins them with
    spaces: chat titles need no quotes."""
    if join:
        attrs.setdefault("nargs", -1)
    spec = ParamSpec("argument", (), attrs, chat, join)
    if default is dataclasses.MISSING:
        return field(metadata={"param": spec})
    return field(default=default, metadata={"param": spec})


def option(*decls: str, default: Any = None, chat: bool = True, **attrs: Any) -> Any:
    """An option (``--name``); the field's default is click's default too."""
    if attrs.get("is_flag"):
        default = False
    if attrs.get("multiple"):
        default = ()
    spec = ParamSpec("option", decls, attrs, chat, False)
    return field(default=default, metadata={"param": spec})


@dataclass(frozen=True)
class Request:
    """Base of every verb's request. ``board`` is the group's ``--board`` (not a verb option)."""

    PATH: ClassVar[tuple[str, ...]] = ()
    HELP: ClassVar[str] = ""
    board: str | None = field(default=None, kw_only=True)

    @property
    def verb(self) -> str:
        return " ".join(self.PATH)


R = TypeVar("R", bound=Request)
REGISTRY: dict[tuple[str, ...], type[Request]] = {}


def verb(*path: str, help: str) -> Callable[[type[R]], type[R]]:
    """Register a request class as the verb ``path`` (e.g. ``("boards", "list")``)."""

    def register(cls: type[R]) -> type[R]:
        cls.PATH = path
        cls.HELP = help
        REGISTRY[path] = cls
        return cls

    return register


def declared(cls: type[Request]) -> Iterator[tuple[dataclasses.Field[Any], ParamSpec]]:
    """The fields of a request that are parameters, with their declarations."""
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("param")
        if isinstance(spec, ParamSpec):
            yield f, spec


def param_of(f: dataclasses.Field[Any], spec: ParamSpec) -> click.Parameter:
    """The click parameter of one declared field."""
    attrs = dict(spec.attrs)
    if spec.kind == "argument":
        required = f.default is dataclasses.MISSING
        attrs.setdefault("required", required)
        if not required and attrs.get("nargs", 1) == 1 and f.default is not None:
            attrs.setdefault("default", f.default)
        return click.Argument([f.name], **attrs)
    # click 8.2+ counts an explicit default=None as a value: only real defaults.
    if not attrs.get("is_flag") and not attrs.get("multiple") and f.default is not None:
        attrs.setdefault("default", f.default)
    return click.Option([*spec.decls, f.name], **attrs)


def params_of(cls: type[Request], *, chat: bool = False) -> list[click.Parameter]:
    """The click parameters of a verb (for chat: without the ``chat=False`` ones)."""
    return [param_of(f, spec) for f, spec in declared(cls) if spec.chat or not chat]


def build(cls: type[R], params: dict[str, Any], *, board: str | None = None) -> R:
    """The request from click's parsed ``params`` (unknown keys ignored; joined words joined)."""
    values: dict[str, Any] = {}
    for f, spec in declared(cls):
        if f.name not in params:
            continue
        value = params[f.name]
        if spec.join and isinstance(value, tuple):
            value = " ".join(value)
        values[f.name] = value
    return cls(**values, board=board)


def usage_of(cls: type[Request], *, chat: bool = True) -> str:
    """``create TITLE [--body TEXT] …`` — the one-line synopsis used in hints and help."""
    words = [" ".join(cls.PATH)]
    for f, spec in declared(cls):
        if chat and not spec.chat:
            continue
        if spec.kind == "argument":
            name = f.name.upper()
            many = spec.attrs.get("nargs") == -1 and not spec.join
            text = f"{name}…" if many else name
            words.append(text if f.default is dataclasses.MISSING else f"[{text}]")
        elif spec.attrs.get("is_flag"):
            words.append(f"[{spec.decls[0]}]")
        else:
            words.append(f"[{spec.decls[0]} {spec.attrs.get('metavar') or f.name.upper()}]")
    return " ".join(words)
