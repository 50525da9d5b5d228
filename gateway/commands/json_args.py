"""A verb's arguments as JSON, from its declaration: :func:`json_schema` for a model or a form,
and :func:`request_from_json`, which converts with the very click types of the CLI (so every
limit is the CLI's) and refuses with one :class:`UsageError` line naming the field.

A surface may fix fields (``fixed``: a worker's task and lease, a chat thread), give
``defaults`` and public ``names`` (field → JSON name); ``chat=False`` fields (host paths) are
offered only with ``chat=False``. A flag is a boolean, ``multiple`` and typed ``nargs=-1`` are
arrays, the words of a title or a reason one string (a reason also as the array of words the
command line split: the worker API sends it so); ``null`` (``""`` for an optional text) means
"not given".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from gateway.commands.declare import (
    BoundedInt,
    FiniteFloat,
    JsonObjectText,
    Request,
    declared,
    param_of,
)
from gateway.commands.errors import UsageError

R = TypeVar("R", bound=Request)
_ABSENT = object()


@dataclass(frozen=True)
class _Arg:
    field: str
    name: str  # the JSON name
    param: click.Parameter
    form: str  # "flag", "many" (an array), "word" (one string, kept whole), "one"
    default: Any


@dataclass(frozen=True)
class _Declared(_Arg):
    chat: bool  # offered to chat surfaces


_OFFERED: dict[tuple[Any, ...], tuple[_Arg, ...]] = {}


def _args(cls: type[Request], chat: bool, fixed: Collection[str],
          names: Mapping[str, str] | None) -> tuple[_Arg, ...]:
    """The fields a surface may give, under their JSON names (built once per surface's
    combination: the worker API asks for the same few on every request)."""
    key = (cls, chat, frozenset(fixed), tuple(sorted(names.items())) if names else ())
    offered = _OFFERED.get(key)
    if offered is None:
        named = (names or {}).get
        offered = _OFFERED[key] = tuple(
            _Arg(a.field, named(a.field, a.field), a.param, a.form, a.default)
            for a in _declared_args(cls) if not ((chat and not a.chat) or a.field in fixed))
    return offered


_DECLARED: dict[type[Request], tuple[_Declared, ...]] = {}


def _declared_args(cls: type[Request]) -> tuple[_Declared, ...]:
    """Every declared field of ``cls`` with its click parameter, built once per verb (a worker
    API serves one request after another with the same few verbs)."""
    known = _DECLARED.get(cls)
    if known is not None:
        return known
    out = []
    for f, spec in declared(cls):
        param = param_of(f, spec)
        # Free words (a title, a reason) are one string; a title is joined, a reason kept whole.
        words = param.nargs == -1 and isinstance(param.type, click.types.StringParamType)
        form = ("flag" if isinstance(param, click.Option) and param.is_flag
                else "many" if param.multiple or (param.nargs == -1 and not words)
                else "word" if words and not spec.join else "one")
        out.append(_Declared(f.name, f.name, param, form, f.default, spec.chat))
    _DECLARED[cls] = tuple(out)
    return _DECLARED[cls]


def _type_schema(kind: click.ParamType[Any]) -> dict[str, Any]:
    if isinstance(kind, BoundedInt):
        return {"type": "integer", "minimum": kind.low, "maximum": kind.high}
    if isinstance(kind, FiniteFloat):
        low = {} if kind.low is None else {"minimum": kind.low}
        return {"type": "number", "maximum": kind.high, **low}
    if isinstance(kind, click.Choice):
        return {"type": "string", "enum": [str(c) for c in kind.choices]}
    return {"type": "object" if isinstance(kind, JsonObjectText) else "string"}


def json_schema(cls: type[Request], *, chat: bool = True, fixed: Collection[str] = (),
                defaults: Mapping[str, Any] | None = None,
                names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON Schema of ``cls``'s arguments as :func:`request_from_json` takes them."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg in _args(cls, chat, fixed, names):
        item = _type_schema(arg.param.type)
        prop = ({"type": "boolean"} if arg.form == "flag"
                else {"type": "array", "items": item} if arg.form == "many" else item)
        help_text = getattr(arg.param, "help", None)
        if help_text:
            prop["description"] = help_text
        if defaults and arg.field in defaults:
            prop["default"] = defaults[arg.field]
        elif arg.param.required:
            required.append(arg.name)
        elif not (arg.default is None or arg.default is False or arg.default == ()
                  or arg.default is dataclasses.MISSING):
            prop["default"] = arg.default
        properties[arg.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}
    return schema | ({"required": required} if required else {})


def request_from_json(cls: type[R], args: Any, *, chat: bool = True,
                      fixed: Mapping[str, Any] | None = None,
                      defaults: Mapping[str, Any] | None = None,
                      names: Mapping[str, str] | None = None) -> R:
    """``cls`` from a JSON object: unknown fields refused, every value converted by its click
    type; ``fixed`` values (any field, ``board`` too) are set as given."""
    if not isinstance(args, Mapping):
        raise UsageError("the arguments must be a JSON object")
    fixed = fixed or {}
    offered = {a.name: a for a in _args(cls, chat, fixed, names)}
    values: dict[str, Any] = dict(fixed)
    for key, raw in args.items():
        arg = offered.get(key)
        if arg is None:
            if key in {(names or {}).get(f, f) for f in fixed}:
                raise UsageError(f"{key} is set here and cannot be given")
            raise UsageError(f"unknown field {str(key)[:40]!r} (fields: "
                             f"{', '.join(offered) or 'none'})")
        value = _value(arg, raw)
        if value is not _ABSENT:
            values[arg.field] = value
    for arg in offered.values():
        if arg.field not in values and defaults and arg.field in defaults:
            values[arg.field] = defaults[arg.field]
        elif arg.field not in values and arg.param.required:
            raise UsageError(f"{arg.name} is required")
    return cls(**values)


def _value(arg: _Arg, raw: Any) -> Any:
    if raw is None or (raw == "" and not arg.param.required and arg.form != "many"):
        return _ABSENT
    kind = arg.param.type
    try:
        if arg.form == "flag":
            if not isinstance(raw, bool):
                kind.fail(f"{_shown(raw)} is not true or false")
            return raw
        if arg.form == "many":
            if not isinstance(raw, list):
                kind.fail(f"{_shown(raw)} is not an array")
            return tuple(_scalar(arg, item) for item in raw)
        if arg.form == "word" and isinstance(raw, list):
            return tuple(_scalar(arg, item) for item in raw)  # the words as the CLI split them
        value = _scalar(arg, raw)
        return (value,) if arg.form == "word" else value
    except click.BadParameter as exc:
        raise UsageError(f"{arg.name}: {exc.message}") from None


def _scalar(arg: _Arg, raw: Any) -> Any:
    kind = arg.param.type
    if isinstance(kind, click.types.StringParamType) and not isinstance(raw, str):
        kind.fail(f"{_shown(raw)} is not a string")
    if isinstance(kind, FiniteFloat) and isinstance(raw, bool):
        kind.fail(f"{_shown(raw)} is not a number")
    return kind.convert(raw, arg.param, None)


def _shown(raw: Any) -> str:
    return json.dumps(raw, ensure_ascii=False, default=str)[:40]
