"""Input checks shared by every surface. Each failure is one clear :class:`InvalidInput`.

Documented limits (a user hitting one gets a line naming the field and the limit):

- title: 500 characters;
- body, comment, result, summary, block reason: 1 MB each (UTF-8 bytes);
- metadata: a JSON object, finite numbers only, nested at most 64 deep, 1 MB serialised;
- integers stored by SQLite (priority, max runtime, max retries, task ids): 64-bit signed;
- lease ttl (claim, heartbeat): finite, more than 0 and at most 30 days;
- ``events`` limit: 1 to 10,000.

Text must be valid Unicode that can be written as UTF-8 (a lone surrogate, which is how Python
carries undecodable bytes from a command line, cannot).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from kanban.errors import InvalidInput

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Model names as providers spell them (gpt-4o, llama3.1:8b, openai/gpt-4o, org/model@rev, x+y).
# No shell metacharacter, no leading '-' (never read as an option), no whitespace.
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_TITLE = 500
MAX_TEXT_BYTES = 1_000_000  # bodies, comments, results: the kernel and the commands (README)
MAX_METADATA_BYTES = 1_000_000
MAX_JSON_DEPTH = 64
MAX_TTL_SECONDS = 30 * 86400.0
MAX_EVENTS_LIMIT = 10_000
# SQLite integers are signed 64-bit: a bigger number is refused with one line wherever it enters
# (the kernel, the command parser, a board migration), never left to overflow in a driver.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Names of agent toolsets (capabilities switched on in a profile's `toolsets` list). People often
# pass them as skills; they are reported together in one error instead of one at a time.
TOOLSET_NAMES = frozenset({
    "web", "browser", "terminal", "file", "files", "code_execution", "vision", "image_gen",
    "search", "shell", "memory", "todo", "delegation", "mcp", "tts", "clarify", "cronjob",
    "homeassistant", "session_search", "moa", "rl", "kanban",
})


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise InvalidInput(
            f"invalid board slug {slug!r}: use 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return slug


def check_name(name: str, what: str = "profile") -> str:
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"invalid {what} name {name!r}: use 1-64 characters of letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_utf8(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid UTF-8 text") from None
    return value


def check_text(value: str, what: str, *, limit: int = MAX_TEXT_BYTES) -> str:
    """Valid UTF-8 text of at most ``limit`` bytes."""
    check_utf8(value, what)
    size = len(value.encode("utf-8")) if len(value) * 4 > limit else len(value)
    if size > limit:
        raise InvalidInput(f"{what} is {size:,} bytes; the limit is {limit:,}")
    return value


def check_opt_text(value: str | None, what: str, *, limit: int = MAX_TEXT_BYTES) -> str | None:
    return None if value is None else check_text(value, what, limit=limit)


def check_int64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number (got {value!r:.40})")
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"{what} {value} is out of range (at most {INT64_MAX})")
    return value


def in_int64(value: object) -> bool:
    """True for an int SQLite can store (task ids beyond it simply do not exist)."""
    return isinstance(value, int) and not isinstance(value, bool) and (
        INT64_MIN <= value <= INT64_MAX)


def check_ttl(value: float, what: str = "ttl") -> float:
    """A lease time: finite, more than 0, at most 30 days (a NaN or 1e308 would never expire)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number of seconds (got {value!r:.40})")
    if math.isfinite(value) and value <= 0:
        raise InvalidInput(f"{what} must be positive (got {value!r})")
    if not math.isfinite(value) or value > MAX_TTL_SECONDS:
        raise InvalidInput(
            f"{what} must be a finite number of seconds, at most {MAX_TTL_SECONDS:.0f} "
            f"(30 days); got {value!r}"
        )
    return float(value)


def check_events_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not (
            1 <= limit <= MAX_EVENTS_LIMIT):
        raise InvalidInput(f"events limit must be 1 to {MAX_EVENTS_LIMIT:,} (got {limit!r:.40})")
    return limit


def check_metadata(value: object, what: str = "metadata") -> dict[str, Any]:
    """A JSON object with finite numbers, nested at most 64 deep, at most 1 MB serialised."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    # Iterative walk: a 5,000-deep value must not exhaust the interpreter's recursion limit.
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidInput(f"{what} keys must be strings (got {key!r:.40})")
                    check_utf8(key, f"{what} key")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{what} holds {item!r}; only finite numbers are JSON")
        elif isinstance(item, str):
            check_utf8(item, f"{what} text")
        elif isinstance(item, int) and not isinstance(item, bool) and not (
                INT64_MIN <= item <= INT64_MAX):
            raise InvalidInput(f"{what} holds the integer {item}, beyond 64 bits")
        elif item is not None and not isinstance(item, bool | int | float):
            raise InvalidInput(f"{what} holds a {type(item).__name__}, which is not JSON")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"{what} is {size:,} bytes serialised; the limit is {MAX_METADATA_BYTES:,}"
        )
    return value


def parse_json_object(text: str, what: str = "metadata") -> dict[str, Any]:
    """Parse text that must be a JSON object (for surfaces reading metadata from a user).

    NaN/Infinity literals and nesting deep enough to exhaust the parser are one clear line.
    """
    check_utf8(text, what)

    def refuse(literal: str) -> Any:
        raise InvalidInput(f"{what} holds {literal}; only finite numbers are JSON")

    try:
        loaded = json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise InvalidInput(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    return check_metadata(loaded, what)


def describe_chain(path: list[int], *, head: int = 5) -> str:
    """``1 → 2 → 3`` for a short chain; the first few and the count for a long one."""
    if len(path) <= head + 2:
        return " → ".join(map(str, path))
    return (" → ".join(map(str, path[:head])) + f" → … → {path[-1]} "
            f"({len(path)} tasks)")


def check_model(model: str | None) -> str | None:
    """A task's or profile's model name; None (or "") means "no override"."""
    if model is None or model == "":
        return None
    if not MODEL_RE.match(model):
        raise InvalidInput(
            f"invalid model name {model!r}: use up to 200 letters, digits and . _ : / @ + -, "
            "starting with a letter or digit"
        )
    return model


def check_title(title: str) -> str:
    check_utf8(title, "title")
    cleaned = title.strip()
    if not cleaned:
        raise InvalidInput("a task needs a non-empty title")
    if len(cleaned) > MAX_TITLE:
        raise InvalidInput(f"title is {len(cleaned)} characters; the limit is {MAX_TITLE}")
    return cleaned


def check_priority(priority: int) -> int:
    check_int64(priority, "priority")
    if priority < 0:
        raise InvalidInput(f"priority must be 0 or more (got {priority})")
    return priority


def check_max_runtime(seconds: int | None) -> int | None:
    # 0 is a real value: "time out at once". Only None means "no limit".
    if seconds is not None and check_int64(seconds, "max runtime") < 0:
        raise InvalidInput(f"max runtime must be 0 or more seconds (got {seconds})")
    return seconds


def check_max_retries(value: int | None) -> int | None:
    if value is not None and check_int64(value, "max retries") < 1:
        raise InvalidInput(f"max retries must be 1 or more (got {value})")
    return value


def check_skills(skills: list[str]) -> list[str]:
    """Reject toolset names passed as skills, all of them in ONE error."""
    cleaned = [s.strip() for s in skills if s.strip()]
    toolsets = sorted({s for s in cleaned if s.lower() in TOOLSET_NAMES})
    if toolsets:
        names = ", ".join(toolsets)
        raise InvalidInput(
            f"not skills but toolsets: {names}. A skill is a folder of instructions under the "
            "profile's skills/ directory (e.g. kanban-worker); a toolset (web, browser, terminal, "
            "file, code_execution, ...) is a capability switched on in the profile's `toolsets` "
            "list. Remove these from --skill and enable them on the profile instead."
        )
    bad = [s for s in cleaned if not NAME_RE.match(s)]
    if bad:
        raise InvalidInput(f"invalid skill name(s): {', '.join(map(repr, bad))}")
    return list(dict.fromkeys(cleaned))


# A dir:/worktree: path is handed to the worker's command template as {workspace}; made of these
# characters only, it means the same thing to every shell and interpreter, wherever a template
# puts it (kanban.runtime.template).
WORKSPACE_PATH_RE = re.compile(r"[A-Za-z0-9_./-]+\Z")


def check_workspace_path(path: str, kind: str) -> str:
    """An absolute ``dir:``/``worktree:`` path of letters, digits and ``_ . / -``, without
    ``..`` components (the path a worker runs in is the one that was checked)."""
    if not WORKSPACE_PATH_RE.match(path):
        raise InvalidInput(f"a {kind}: workspace path may only contain letters, digits and "
                           f"_ . / - (got {path!r:.200})")
    if ".." in path.split("/"):
        raise InvalidInput(f"a {kind}: workspace path may not contain .. components "
                           f"(got {path!r:.200})")
    return path


def parse_workspace(spec: str) -> tuple[str, str | None]:
    """``scratch`` | ``dir:/abs/path`` | ``worktree`` | ``worktree:PATH`` → (kind, path)."""
    if spec == "scratch":
        return "scratch", None
    if spec == "worktree":
        return "worktree", None
    if any(c in spec for c in "\x00\n\r"):
        raise InvalidInput("invalid workspace: a path cannot contain NUL or newline characters")
    kind, sep, rest = spec.partition(":")
    if sep and kind == "dir":
        if not rest or not Path(rest).is_absolute():
            raise InvalidInput(f"workspace dir: needs an absolute path (got {rest!r})")
        return "dir", check_workspace_path(rest, kind)
    if sep and kind == "worktree" and rest:
        if not Path(rest).is_absolute():
            raise InvalidInput(f"workspace worktree: needs an absolute path (got {rest!r})")
        return "worktree", check_workspace_path(rest, kind)
    raise InvalidInput(
        f"invalid workspace {spec!r}: use scratch, dir:/absolute/path, worktree or worktree:PATH"
    )


# System folders a worker's dir: workspace must never be, nor lie inside: a worker runs there
# with the user's rights, writes its files there, and cleanup treats it as the task's own.
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys",
               "/usr")


def check_workspace_dir(path: str, *, home: Path) -> None:
    """Refuse a ``dir:``/``worktree:`` workspace that is the file-system root, a system folder
    (or inside one), the Relayboard home, a folder inside it (boards, profiles), or a folder
    that contains it."""
    try:
        target = Path(os.path.realpath(path))
        base = Path(os.path.realpath(home))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"workspace {path!r} cannot be resolved: {exc}") from exc
    if target == Path(target.anchor):
        raise InvalidInput(f"workspace {path!r} is the file-system root; give a folder of its "
                           "own (e.g. dir:/home/me/work/task)")
    for system in SYSTEM_DIRS:
        if target == Path(system) or target.is_relative_to(system):
            raise InvalidInput(f"workspace {path!r} is a system folder ({system}); give a "
                               "folder of its own")
    if target == base or target.is_relative_to(base):
        raise InvalidInput(f"workspace {path!r} is inside the Relayboard home (its boards and "
                           "profiles); use scratch, or a folder outside it")
    if base.is_relative_to(target):
        raise InvalidInput(f"workspace {path!r} contains the Relayboard home; give a folder "
                           "of its own")
