"""The worker context: one markdown document a worker reads before it starts.

Sections: the task, the files attached to it when it was created, its parents' results, prior
attempts, and the comment thread. Each section is
capped so a long thread or a huge parent result cannot crowd out the task itself. Comment authors
are framed as ``comment from worker `<author>` at <time>:`` with backticks stripped from the
author, so an author name can never break out of its code span.

Everything in it that a person or another worker wrote is framed so it cannot pose as structure:
one-line fields (titles, the assignee, skills, file paths, errors) go through :func:`one_line`,
which turns every line break into `` ⏎ `` and drops control and bidi formatting characters, so a
title ``x\n- status: done`` stays in its heading; multi-line text (the description, parent
results, comments) goes in a fenced block (:func:`fenced`) whose fence is longer than any run of
backticks inside, so no line of the text can close it or start a heading or list item.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kanban.models import Comment, Run, Task
from kanban.storage import store
from kanban.storage.tx import Tx
from kanban.timeutil import iso

SECTION_CAP = 6_000
ITEM_CAP = 2_000
MAX_PARENTS = 20
MAX_ATTEMPTS = 10
MAX_COMMENTS = 50


# Line breaks a markdown reader may honour, and invisible characters (C0 but tab and newline, DEL,
# C1, bidi formatting) that can make a line read differently from what it contains.
_BREAKS = re.compile("[ \t]*(?:\r\n|[\n\r\x0b\x0c\x85\u2028\u2029])[ \t]*")
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u061c\u200e\u200f"
                        "\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_BACKTICKS = re.compile("`+")


def one_line(text: object) -> str:
    """User text for a one-line field: line breaks become `` ⏎ ``, invisible characters go."""
    value = _INVISIBLE.sub("", str(text)).strip()
    return _BREAKS.sub(" ⏎ ", value).replace("\t", " ")


def fenced(text: str) -> str:
    """User text as a fenced block that nothing inside can close: the fence is one backtick
    longer than the longest backtick run in the text (at least three)."""
    body = _INVISIBLE.sub("", text).replace("\r\n", "\n").rstrip("\n")
    body = re.sub("[\r\x0b\x0c\x85\u2028\u2029]", "\n", body)
    longest = max((len(m) for m in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _clip(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    return text[:cap].rstrip() + f"\n… [truncated, {len(text) - cap} more characters]"


def _author(name: str) -> str:
    cleaned = one_line(name).replace("`", "").strip()
    return cleaned or "unknown"


def _when(value: float | None) -> str:
    return iso(value) or "unknown time"


def comment_heading(comment: Comment) -> str:
    who = _author(comment.author)
    if comment.author_kind == "worker":
        return f"comment from worker `{who}` at {_when(comment.created_at)}:"
    if comment.author_kind == "system":
        return f"note from `{who}` at {_when(comment.created_at)}:"
    return f"comment from `{who}` at {_when(comment.created_at)}:"


def _capped_section(title: str, parts: list[str]) -> list[str]:
    out = [f"## {title}", ""]
    used = 0
    for index, part in enumerate(parts):
        if index == 0 and len(part) > SECTION_CAP:
            part = _clip(part, SECTION_CAP)
        elif used + len(part) > SECTION_CAP:
            out.append(f"… [{len(parts) - index} more omitted to keep this section short]")
            break
        out.append(part)
        used += len(part)
    out.append("")
    return out


Relocate = Callable[[int, str], str]
"""Maps a recorded file path of a task to this host's copy (identity on a single-host board)."""


def as_recorded(_task_id: int, path: str) -> str:
    return path


def build_context(tx: Tx, task_id: int, relocate: Relocate = as_recorded) -> str:
    task = store.load_task(tx, task_id, with_links=True)
    lines = [f"# Task {task.id}: {one_line(task.title)}", ""]
    meta = [f"- status: {task.status}",
            f"- assignee: {one_line(task.assignee) if task.assignee else 'unassigned'}",
            f"- priority: {task.priority}"]
    if task.skills:
        meta.append(f"- skills: {one_line(', '.join(task.skills))}")
    if task.max_runtime_seconds is not None:
        meta.append(f"- max runtime: {task.max_runtime_seconds} s")
    lines += [*meta, ""]
    # Clipped before framing, with room for the fences, so the section cap never cuts one off.
    lines += _capped_section("Description", [fenced(_clip(task.body, SECTION_CAP - 200))
                                             if task.body else "(no description)"])
    inputs = _inputs(task)
    if inputs:
        # Durable copies under attachments/<id>/: read them from there, the workspace is empty.
        lines += _capped_section("Attached files",
                                 [f"- {one_line(relocate(task.id, path))}" for path in inputs])

    parents: list[str] = []
    for parent_id in task.parents[:MAX_PARENTS]:
        parent = store.load_task(tx, parent_id)
        parents.append(_parent_block(parent, relocate))
    if parents:
        lines += _capped_section("Results from parent tasks", parents)

    runs = [Run.from_row(r) for r in tx.all(
        "SELECT * FROM task_runs WHERE task_id = ? AND status != 'active' ORDER BY id DESC "
        "LIMIT ?", (task_id, MAX_ATTEMPTS))]
    if runs:
        attempts = [
            f"- run {r.id} ({r.status}) claimed {_when(r.claimed_at)}"
            + (f", exit code {r.exit_code}" if r.exit_code is not None else "")
            + (f": {one_line(_clip(r.error, 300))}" if r.error else "")
            for r in reversed(runs)
        ]
        if task.last_failure_error:
            attempts.append(f"- last failure: {one_line(_clip(task.last_failure_error, 500))}")
        lines += _capped_section("Prior attempts", attempts)

    comments = [Comment.from_row(r) for r in tx.all(
        "SELECT * FROM (SELECT * FROM task_comments WHERE task_id = ? ORDER BY id DESC LIMIT ?) "
        "AS latest ORDER BY id", (task_id, MAX_COMMENTS))]
    if comments:
        lines += _capped_section(
            "Comments",
            [f"{comment_heading(c)}\n\n{fenced(_clip(c.body, ITEM_CAP))}\n" for c in comments],
        )
    return "\n".join(lines).rstrip() + "\n"


def _inputs(task: Task) -> list[str]:
    value = task.metadata.get("inputs")
    if not isinstance(value, list):
        return []
    return [str(item) for item in value if isinstance(item, str)]


def _parent_block(parent: Task, relocate: Relocate) -> str:
    head = f"### Task {parent.id}: {one_line(parent.title)} ({parent.status})"
    body = parent.summary or parent.result
    shown = fenced(_clip(body, ITEM_CAP)) if body else "(no result recorded)"
    block = f"{head}\n\n{shown}\n"
    if parent.artifacts:
        files = ", ".join(one_line(relocate(parent.id, p)) for p in parent.artifacts)
        block += f"\nFiles: {files}\n"
    return block
