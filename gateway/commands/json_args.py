"""A verb's arguments as JSON, derived from its declaration: the JSON Schema a model or a form is
given, and the request built from a JSON object with the very click types the CLI converts with
(so every limit is the CLI's)::

    json_schema(CreateRequest)                    # {"type": "object", "properties": {...}, ...}
    request_from_json(CreateRequest, {"title": "Chart the sales", "priority": 2})

A surface may ``fixed`` fields (set by it, never by the JSON: a worker's task and lease, a chat
thread), give ``defaults`` (used when the JSON leaves a field out) and ``names`` (field → its
public JSON name). Fields marked ``chat=False`` (host paths) are offered only with ``chat=False``.

JSON forms: a flag is a boolean; ``multiple`` and typed ``nargs=-1`` arguments are arrays; the
words of a title or a reason are one string; ``null``, and ``""`` for an optional text, mean
"not given". Refusals are one :class:`UsageError` line naming the field.
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
    ParamSpec,
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
    spec: ParamSpec
    default: Any

    @property
    def flag(self) -> bool:
        return isinstance(self.param, click.Option) and self.param.is_flag

    @property
    def words(self) -> bool:
        """Free words (a title, a reason): one string in JSON."""
        return self.param.nargs == -1 and isinstance(self.param.type, click.types.StringParamType)

    @property
    def many(self) -> bool:
        return (isinstance(self.param, click.Option) and self.param.multiple) or (
            self.param.nargs == -1 and not self.words)


def _args(cls: type[Request], chat: bool, fixed: Collection[str],
          names: Mapping[str, str] | None) -> list[_Arg]:
    return [_Arg(f.name, (names or {}).get(f.name, f.name), param_of(f, spec), spec, f.default)
            for f, spec in declared(cls)
            if (spec.chat or not chat) and f.name not in fixed]


def _type_schema(kind: click.ParamType[Any]) -> dict[str, Any]:
    if isinstance(kind, BoundedInt):
        return {"type": "integer", "minimum": kind.low, "maximum": kind.high}
    if isinstance(kind, FiniteFloat):
        bounds = {"maximum": kind.high} | ({} if kind.low is None else {"minimum": kind.low})
        return {"type": "number", **bounds}
    if isinstance(kind, click.Choice):
        return {"type": "string", "enum": [str(c) for c in kind.choices]}
    if isinstance(kind, JsonObjectText):
        return {"type": "object"}
    if isinstance(kind, click.types.IntParamType):
        return {"type": "integer"}
    if isinstance(kind, click.types.FloatParamType):
        return {"type": "number"}
    return {"type": "string"}


def json_schema(cls: type[Request], *, chat: bool = True, fixed: Collection[str] = (),
                defaults: Mapping[str, Any] | None = None,
                names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON Schema of ``cls``'s arguments as :func:`request_from_json` takes them."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg in _args(cls, chat, fixed, names):
        item = _type_schema(arg.param.type)
        prop = ({"type": "boolean"} if arg.flag
                else {"type": "array", "items": item} if arg.many else item)
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
    if required:
        schema["required"] = required
    return schema


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
        if arg.field in values:
            continue
        if defaults and arg.field in defaults:
            values[arg.field] = defaults[arg.field]
        elif arg.param.required:
            raise UsageError(f"{arg.name} is required")
    return cls(**values)


def _value(arg: _Arg, raw: Any) -> Any:
    if raw is None or (raw == "" and not arg.param.required and not arg.many):
        return _ABSENT
    try:
        if arg.flag:
            if not isinstance(raw, bool):
                arg.param.type.fail(f"{_shown(raw)} is not true or false")
            return raw
        if arg.many:
            if not isinstance(raw, list):
                arg.param.type.fail(f"{_shown(raw)} is not an array")
            return tuple(_scalar(arg, item) for item in raw)
        value = _scalar(arg, raw)
        return value if not arg.words or arg.spec.join else (value,)
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
