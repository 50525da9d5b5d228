"""Input checks shared by every surface. Each failure is one clear :class:`InvalidInput`."""

from __future__ import annotations

import re
from pathlib import Path

from kanban.errors import InvalidInput

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Model names as providers spell them (gpt-4o, llama3.1:8b, openai/gpt-4o, org/model@rev, x+y).
# No shell metacharacter, no leading '-' (never read as an option), no whitespace.
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_TITLE = 500

# Names of agent toolsets (capabilities switched on in a profile's `toolsets` list). People often
# pass them as skills; they are reported together in one error instead of one at a time (S24).
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
    cleaned = title.strip()
    if not cleaned:
        raise InvalidInput("a task needs a non-empty title")
    if len(cleaned) > MAX_TITLE:
        raise InvalidInput(f"title is {len(cleaned)} characters; the limit is {MAX_TITLE}")
    return cleaned


def check_priority(priority: int) -> int:
    if priority < 0:
        raise InvalidInput(f"priority must be 0 or more (got {priority})")
    return priority


def check_max_runtime(seconds: int | None) -> int | None:
    # 0 is a real value: "time out at once" (S8). Only None means "no limit".
    if seconds is not None and seconds < 0:
        raise InvalidInput(f"max runtime must be 0 or more seconds (got {seconds})")
    return seconds


def check_max_retries(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise InvalidInput(f"max retries must be 1 or more (got {value})")
    return value


def check_skills(skills: list[str]) -> list[str]:
    """Reject toolset names passed as skills, all of them in ONE error (S24)."""
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
        return "dir", rest
    if sep and kind == "worktree" and rest:
        return "worktree", rest
    raise InvalidInput(
        f"invalid workspace {spec!r}: use scratch, dir:/absolute/path, worktree or worktree:PATH"
    )
