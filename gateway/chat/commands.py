"""Chat commands: ``/kanban …``, ``/subscribe ID``, ``/unsubscribe ID``, ``/status``, ``/help``.

On Slack the same work with ``!`` (Slack does not deliver slash commands typed in threads).
Telegram's ``/kanban@relay_bot`` form (commands addressed to one bot in a group) is accepted.
Replies are short chat text; a usage error is one line with a hint, never a usage dump.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.chat.agents import help_text
from gateway.chat.tools import ThreadTools
from gateway.commands.callers import Role

COMMANDS = ("kanban", "subscribe", "unsubscribe", "status", "help", "start")
_COMMAND = re.compile(r"^([/!])([A-Za-z][\w-]{0,31})(?:@\w+)?(?=\s|$)(.*)$", re.S)

StatusSource = Callable[[], Awaitable[Mapping[str, Any]]]


def split_command(text: str, platform: str) -> tuple[str, str] | None:
    """``("kanban", "create x")`` for a command message, else None (free text).

    ``!`` counts on Slack only; ``/tmp/data.csv`` is not a command (a second slash)."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    sigil, name, rest = match.groups()
    if sigil == "!" and platform != "slack":
        return None
    return name.lower(), rest.strip()


async def run_command(name: str, rest: str, tools: ThreadTools, platform: str,
                      status: StatusSource | None) -> str:
    prefix = "!" if platform == "slack" and name != "help" else "/"
    if name == "kanban":
        if not rest:
            return f"Which verb? try: {prefix}kanban list — or {prefix}help"
        return await tools.kanban(rest)
    if name in ("subscribe", "unsubscribe"):
        task_id = _task_id(rest)
        if task_id is None:
            return f"{name} needs a task id — try: {prefix}{name} 12"
        if name == "subscribe":
            return await tools.subscribe(task_id)
        return await tools.unsubscribe(task_id)
    if name == "status":
        if status is None:
            return "Status is not available here."
        return render_status(await status(), role=tools.caller.role)
    if name in ("help", "start"):
        return help_text(platform)
    return f"Unknown command {prefix}{name} — try {prefix}help"


def _task_id(text: str) -> int | None:
    word = text.strip().lstrip("#")
    return int(word) if word.isdigit() and len(word) < 19 else None


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


STATUS_ORDER = ("triage", "todo", "ready", "running", "blocked", "done", "archived")


def render_status(status: Mapping[str, Any], *, role: Role = "member") -> str:
    """``Daemon.status()`` as a few short lines for a person of ``role``: everyone sees their
    role, the adapters, the boards and the workers; admins also see the worker sandbox and the
    queue (tasks ready for a worker, notifications waiting to go out)."""
    lines = [f"Up {_duration(float(status.get('uptime_seconds') or 0))} · "
             f"pid {status.get('pid')} · your role: {role}"]
    leadership = status.get("leadership") or {}
    if leadership.get("shared"):  # several gateways may serve the boards: say which this is
        lines.append("Role: leader" if status.get("leader") else
                     "Role: standby (another gateway receives chat)")
    adapters = status.get("adapters") or {}
    parts = []
    for name, a in sorted(adapters.items()):
        state = a.get("state", "?")
        detail = a.get("detail")
        parts.append(f"{name} {state}" + (f" ({detail})" if detail and state != "connected"
                                            else ""))
    lines.append("Adapters: " + (", ".join(parts) if parts else "none"))
    for slug, board in sorted((status.get("boards") or {}).items()):
        if "error" in board:
            lines.append(f"Board {slug}: unreadable ({board['error']})")
            continue
        counts = board.get("by_status") or {}
        shown = [f"{counts[s]} {s}" for s in STATUS_ORDER if counts.get(s)]
        lines.append(f"Board {slug}: " + (", ".join(shown) if shown else "empty"))
    workers = status.get("workers") or []
    if workers:
        lines.append("Workers: " + ", ".join(
            f"#{w['task_id']} on {w['board']} (pid {w['pid']})" for w in workers[:10])
            + (f" … {len(workers) - 10} more" if len(workers) > 10 else ""))
    else:
        lines.append("Workers: none running")
    if role == "admin":
        lines.append(_queue_line(status.get("boards") or {}))
        if status.get("sandbox"):
            lines.append(f"Worker sandbox: {status['sandbox']}")
    return "\n".join(lines)


def _queue_line(boards: Mapping[str, Any]) -> str:
    readable = [b for b in boards.values() if "error" not in b]
    ready = sum(int((b.get("by_status") or {}).get("ready") or 0) for b in readable)
    waiting = sum(int(b.get("outbox_pending") or 0) for b in readable)
    return (f"Queue: {ready} task{'' if ready == 1 else 's'} ready for a worker · "
            f"{waiting} notification{'' if waiting == 1 else 's'} waiting")

