"""What a subscriber reads: one short notifying line per terminal event, then details.

    ✔ done · #12 Quarterly report · @reporter
    Revenue up 4 %, chart and tables attached.

The first line names the outcome, the task and its assignee; the second is the first line of the
summary (done), the reason (blocked) or the last error (gave up, crashed, timed out). Long result
text is never squeezed into a caption: it goes as its own message after the files.

Titles, assignees, file names and detail lines are written by others; each passes through
:func:`platforms.untrusted.clean_line`, so a newline or a bidi override in a title can never start
a line that looks like the gateway's own (``✔ done · #1``) or make a name read backwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kanban.models import Event, Task
from platforms.receipts import Receipt, ReceiptStatus
from platforms.untrusted import clean_file_name, clean_line, clean_text

HEADLINES: dict[str, str] = {
    "completed": "✔ done",
    "blocked": "⛔ blocked",
    "gave_up": "✖ gave up",
    "crashed": "✖ crashed",
    "timed_out": "⏱ timed out",
    "archived": "🗄 archived",
}
DETAIL_CHARS = 300  # the detail line is one line; the full text is in `kanban show`
LONG_RESULT_CHARS = 200  # a result longer than this (or of several lines) gets its own message


@dataclass(frozen=True)
class Rendered:
    """The headline message and, when the result is long, the result as a second message."""

    text: str
    result: str | None = None


def first_line(text: object, limit: int = DETAIL_CHARS) -> str:
    if not isinstance(text, str):
        return ""
    for raw in text.strip().splitlines():
        line = clean_line(raw)
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


def headline(kind: str, task: Task) -> str:
    parts = [HEADLINES.get(kind, kind.replace("_", " ")), f"#{task.id} {clean_line(task.title)}"]
    if task.assignee:
        parts.append(f"@{clean_line(task.assignee)}")
    return " · ".join(parts)


def detail(event: Event, task: Task) -> str:
    p: dict[str, Any] = event.payload
    if event.kind == "completed":
        return first_line(p.get("summary")) or first_line(p.get("result"))
    if event.kind == "blocked":
        return first_line(p.get("reason")) or first_line(task.blocked_reason)
    if event.kind in ("gave_up", "crashed", "timed_out"):
        return first_line(p.get("error")) or first_line(task.last_failure_error)
    return ""


def long_result(event: Event) -> str | None:
    """The completed result when it says more than the headline can: several lines or long."""
    if event.kind != "completed":
        return None
    result = event.payload.get("result")
    if not isinstance(result, str) or not result.strip():
        return None
    text = result.strip()
    summary = event.payload.get("summary")
    shown = first_line(summary) if isinstance(summary, str) else None
    if shown and shown == text:
        return None  # the headline already carried the whole result, word for word
    if "\n" in text or len(text) > LONG_RESULT_CHARS or shown:
        # With a summary in the headline the result has not been shown at all yet.
        return clean_text(text)
    return None


def render(event: Event, task: Task, refused: Sequence[Receipt] = ()) -> Rendered:
    lines = [headline(event.kind, task)]
    extra = detail(event, task)
    if extra:
        lines.append(extra)
    line = refusal_line(refused)
    if line:
        lines.append(line)
    return Rendered("\n".join(lines), long_result(event))


def _why(receipt: Receipt) -> str:
    reason = receipt.reason or receipt.status.value
    name = receipt.name or ""
    if name and reason.startswith(f"{name}: "):
        reason = reason[len(name) + 2:]
    if reason.startswith("refused (") and reason.endswith(")"):
        reason = reason[len("refused ("):-1]
    if receipt.status is ReceiptStatus.TOO_LARGE:
        return reason
    return {"file not found": "missing", "credential location": "credential folder"}.get(
        reason, reason)


def refusal_line(refused: Sequence[Receipt]) -> str:
    """One line per file that was not sent — ``key.pem — not sent: credential file`` — by file
    name only, never a path; empty when nothing was refused."""
    return "\n".join(
        clean_line(f"{clean_file_name(r.name or 'file')} — not sent: {clean_line(_why(r))}")
        for r in refused)
