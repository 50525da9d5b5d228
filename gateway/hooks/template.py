"""Task templates of inbound hooks: ``{json.PATH}`` fields filled from the request's JSON body.

A field is a plain dotted path of keys and list indices (``{json.alert.labels.0}``); anything
else between ``{json.`` and ``}`` is refused when the config is loaded. Filling is one pass over
the template, looking each path up as a whole in the body: a value is never read as a template
itself, so a body that sends ``"{json.secret}"`` gets exactly that text. Each value is escaped
(control and bidirectional characters shown as ``\\x1b``-style escapes, a title's line breaks
folded to spaces) and capped; a path the body lacks fills in as nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

FIELD = re.compile(r"\{json\.([^{}]*)\}")
PLAIN_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
ELLIPSIS = "…"


class TemplateError(ValueError):
    """A template whose fields are not all plain dotted paths (one line)."""


def fields_of(template: str) -> list[str]:
    """The paths of ``template``'s fields; :class:`TemplateError` for any that is not plain."""
    paths = FIELD.findall(template)
    for path in paths:
        if not PLAIN_PATH.fullmatch(path):
            raise TemplateError(f"{{json.{path}}} is not a plain dotted path (keys and list "
                                "indices, such as {json.alert.labels.0})")
    return paths


def check_path(path: str) -> str:
    """``path`` when it is a plain dotted path (an idempotency field, say)."""
    if not PLAIN_PATH.fullmatch(path):
        raise TemplateError(f"{path} is not a plain dotted path (such as check_suite.id)")
    return path


def lookup(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data`` (keys of objects, indices of lists), or None."""
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def as_text(value: Any) -> str:
    """A JSON value as text: strings as they are, null as nothing, the rest as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(template: str, data: Any, *, cap: int, single_line: bool) -> str:
    """``template`` with each field replaced by its value from ``data``, escaped and cut to
    ``cap`` characters (the result is capped by the command layer's own limits)."""
    # Imported here: the config schema checks templates with this module, before the command
    # layer (which needs the config) can be imported.
    from gateway.commands.escaping import printable

    def fill(match: re.Match[str]) -> str:
        text = as_text(lookup(data, match.group(1)))
        if single_line:
            text = " ".join(text.split())
        if len(text) > cap:
            text = text[: max(cap - 1, 0)] + ELLIPSIS
        return printable(text, multiline=not single_line)

    return FIELD.sub(fill, template)  # one pass: what a value contains is never filled in
