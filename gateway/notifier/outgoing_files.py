"""Which files go with a completion, and the policy that decides whether each may leave the host.

Files come from the ``completed`` event's ``artifacts`` (the durable copies ``complete`` made),
else from paths mentioned in the summary or result. The policy is built per task: it allows only
that task's own ``attachments/<id>/`` and workspace, plus ``delivery.allowed_roots`` for declared
artifacts (never for a path that is only mentioned in text) — another task's files, named in this
task's artifacts or summary, never reach this task's subscribers. It
denies the home's config and profile files, the credential folders ``platforms.delivery`` always
denies, every dot-directory in the user's home, and any file inside a dot-directory below an
allowed root (``.git``, ``.ssh`` …). A workspace that is a symbolic link is no root at all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kanban.board import Board
from kanban.models import Event, Task
from platforms.base import PlatformAdapter
from platforms.delivery import DeliveryPolicy
from platforms.files import FileKind, classify, extract_local_files
from platforms.receipts import Receipt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screened:
    """Files that may go (resolved) and one refusal receipt per file that may not."""

    accepted: list[Path]
    refused: list[Receipt]


def has_declared_artifacts(event: Event) -> bool:
    raw = event.payload.get("artifacts")
    return isinstance(raw, list) and bool(raw)


def artifact_paths(event: Event, *, user_home: Path | None = None) -> list[Path]:
    raw = event.payload.get("artifacts")
    if isinstance(raw, list) and raw:
        return [Path(str(p)) for p in dict.fromkeys(raw) if str(p).strip()]
    found: list[Path] = []
    for key in ("summary", "result"):
        text = event.payload.get(key)
        if isinstance(text, str) and text:
            files, _ = extract_local_files(text, home=user_home)
            found.extend(files)
    return list(dict.fromkeys(found))


def task_roots(board: Board, task: Task) -> list[Path]:
    """The folders a task's own files live in: its attachments and its workspace (the board's
    scratch folder, or its ``dir:``/``worktree`` path) — a workspace that is a link is left out."""
    roots = [board.attachments_path(task.id)]
    workspace = board.workspaces_dir / str(task.id)
    if task.workspace_kind in ("dir", "worktree") and task.workspace_path:
        workspace = Path(task.workspace_path)
    if os.path.islink(workspace):
        log.warning("task #%s: its workspace is a symbolic link; no file is sent from it",
                    task.id)
    else:
        roots.append(workspace)
    return roots


def build_policy(board: Board, task: Task, *, relayboard_home: Path, config_file: Path | None,
                 extra_roots: Sequence[Path], user_home: Path | None = None,
                 max_bytes: int | None = None) -> DeliveryPolicy:
    """The delivery policy for one task's files (see the module docstring)."""
    return policy_for_roots([*task_roots(board, task), *extra_roots],
                            relayboard_home=relayboard_home, config_file=config_file,
                            user_home=user_home, max_bytes=max_bytes)


def policy_for_roots(roots: Sequence[Path], *, relayboard_home: Path, config_file: Path | None,
                     user_home: Path | None = None,
                     max_bytes: int | None = None) -> DeliveryPolicy:
    """A delivery policy over ``roots`` with the notifier's denials (the home's config and
    profiles, the lock, dot-folders of the user's home)."""
    home = (user_home or Path.home()).expanduser()
    roots = list(roots)
    denied: list[Path] = [relayboard_home / "config.yaml", relayboard_home / "profiles",
                          relayboard_home / "gateway.lock"]
    if config_file is not None:
        denied.append(config_file)
    denied.extend(_home_dot_dirs(home, keep=[relayboard_home, *roots]))
    return DeliveryPolicy(allowed_roots=roots, denied_paths=denied, home=home,
                          max_bytes=max_bytes, refuse_hidden_dirs=True)


def _home_dot_dirs(home: Path, keep: Sequence[Path]) -> list[Path]:
    """Dot-directories directly in the user's home, except one that holds an allowed folder
    (the Relayboard home is often ``~/.relayboard``)."""
    kept = [_resolve(k) for k in keep]
    out: list[Path] = []
    try:
        entries = list(home.iterdir())
    except OSError:
        return out
    for entry in entries:
        if not entry.name.startswith(".") or not entry.is_dir():
            continue
        real = _resolve(entry)
        if any(k == real or k.is_relative_to(real) for k in kept):
            continue
        out.append(entry)
    return out


def _resolve(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def screen(paths: Sequence[Path], policy: DeliveryPolicy, adapter: PlatformAdapter) -> Screened:
    """Check each file before anything is sent, so the message can name the refused ones.
    (The upload opens and checks each file again: this look ahead is not what keeps it safe.)"""
    accepted: list[Path] = []
    refused: list[Receipt] = []
    seen: set[tuple[int, int]] = set()
    limits = adapter.limits()
    for path in paths:
        opened = policy.open(path)
        if isinstance(opened, Receipt):
            refused.append(opened)
            continue
        with opened:
            limit = limits.bytes_for(classify(opened.path) or FileKind.DOCUMENT)
            if opened.size > limit:
                refused.append(Receipt.too_large(opened.size, limit, name=opened.name))
            elif opened.identity not in seen:
                seen.add(opened.identity)
                accepted.append(opened.path)
    return Screened(accepted, refused)
