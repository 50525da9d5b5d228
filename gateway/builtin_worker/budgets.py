"""The built-in worker's limits (and its model client), read from its profile's ``profile.yaml``.

Keys (all optional, top level of ``profile.yaml``)::

    max_iterations: 40            model requests per run
    max_seconds: 1800             wall time per run
    max_tokens: 200000            tokens per run (prompt + completion, as the endpoint reports)
    max_nudges: 2                 "you have not finished" reminders before the task is blocked
    shell_timeout_seconds: 120    one run_shell call
    shell_output_bytes: 16000     run_shell output kept for the model (head; the rest is counted)
    request_timeout_seconds: 120  one chat-completions request
    request_retries: 2            SDK retries of transient failures (5xx, connection errors)
    heartbeat_seconds: 30         at most one lease heartbeat per this many seconds of activity
    client: httpx                 the chat-completions client: httpx (lean, the default) or
                                  openai (the official SDK; ~0.5 s more start-up)

Exhausting max_iterations, max_seconds or max_tokens blocks the task with a reason naming the key.
A value of the wrong type is refused with one line (:class:`~kanban.errors.InvalidInput`); the
worker then blocks its task with that line, since only a person can fix the profile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kanban.errors import InvalidInput

PROFILE_FILE = "profile.yaml"


@dataclass(frozen=True)
class Budgets:
    max_iterations: int = 40
    max_seconds: float = 1800.0
    max_tokens: int | None = 200_000
    max_nudges: int = 2
    shell_timeout_seconds: float = 120.0
    shell_output_bytes: int = 16_000
    request_timeout_seconds: float = 120.0
    request_retries: int = 2
    heartbeat_seconds: float = 30.0
    client: str = "httpx"


CLIENTS = ("httpx", "openai")
_INTS = {"max_iterations", "max_tokens", "max_nudges", "shell_output_bytes", "request_retries"}
_ZERO_OK = {"max_nudges", "request_retries", "heartbeat_seconds"}
KEYS = tuple(f.name for f in dataclasses.fields(Budgets) if f.name != "client")


def budgets_from_mapping(data: dict[str, Any], *, where: str = PROFILE_FILE) -> Budgets:
    """Budgets from the keys of ``data`` that name one (other keys are ignored: the profile has
    more than budgets). ``max_tokens: null`` means no token budget."""
    values: dict[str, Any] = {}
    if "client" in data:
        client = data["client"]
        if client not in CLIENTS:
            raise InvalidInput(f"{where}: client must be one of {', '.join(CLIENTS)} "
                               f"(got {client!r})")
        values["client"] = client
    for key in KEYS:
        if key not in data:
            continue
        raw = data[key]
        if raw is None and key == "max_tokens":
            values[key] = None
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise InvalidInput(f"{where}: {key} must be a number (got {raw!r})")
        if key in _INTS and raw != int(raw):
            raise InvalidInput(f"{where}: {key} must be a whole number (got {raw!r})")
        if raw < 0 or (raw == 0 and key not in _ZERO_OK):
            raise InvalidInput(f"{where}: {key} must be positive (got {raw!r})")
        values[key] = int(raw) if key in _INTS else float(raw)
    return Budgets(**values)


def load_budgets(profile_home: Path) -> Budgets:
    """The budgets of the profile living in ``profile_home`` (defaults when it has none)."""
    file = profile_home / PROFILE_FILE
    where = f"profile {profile_home.name}: {PROFILE_FILE}"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Budgets()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{where}: unreadable ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if data is None:
        return Budgets()
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: not a mapping")
    return budgets_from_mapping(data, where=where)
