"""Which files go with a completion, and the policy that decides whether each may leave the host.

Files come from the ``completed`` event's ``artifacts`` (the durable copies ``complete`` made),
else from paths mentioned in the summary or result. The policy allows the board's workspaces and
attachments plus ``delivery.allowed_roots``; it denies the home's config and profile files, the
credential folders ``platforms.delivery`` always denies, every dot-directory in the user's home,
and any file inside a dot-directory below an allowed root (``.git``, ``.ssh`` …).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kanban.board import Board
from kanban.models import Event
from platforms.base import PlatformAdapter, Receipt
from platforms.delivery import DeliveryPolicy
from platforms.files import FileKind, classify, extract_local_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screened:
    """Files that may go (resolved) and one refusal receipt per file that may not."""

    accepted: list[Path]
    refused: list[Receipt]


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


def build_policy(board: Board, *, relayboard_home: Path, config_file: Path | None,
                 extra_roots: Sequence[Path], user_home: Path | None = None,
                 max_bytes: int | None = None) -> DeliveryPolicy:
    home = (user_home or Path.home()).expanduser()
    roots = [board.workspaces_dir, board.attachments_dir, *extra_roots]
    denied: list[Path] = [relayboard_home / "config.yaml", relayboard_home / "profiles",
                          relayboard_home / "gateway.lock"]
    if config_file is not None:
        denied.append(config_file)
    denied.extend(_home_dot_dirs(home, keep=[relayboard_home, *roots]))
    return DeliveryPolicy(allowed_roots=roots, denied_paths=denied, home=home,
                          max_bytes=max_bytes)


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
    """Check each file before anything is sent, so the message can name the refused ones."""
    accepted: list[Path] = []
    refused: list[Receipt] = []
    limits = adapter.limits()
    roots = [_resolve(Path(r)) for r in policy.allowed_roots]
    for path in paths:
        verdict = policy.check(path)
        if isinstance(verdict, Receipt):
            refused.append(verdict)
            continue
        if _in_hidden_folder(verdict, roots):
            log.warning("delivery refused a file in a hidden folder (%s)", verdict.name)
            refused.append(Receipt.rejected(f"{verdict.name}: refused (a hidden folder)",
                                            name=verdict.name))
            continue
        size = verdict.stat().st_size
        limit = limits.bytes_for(classify(verdict) or FileKind.DOCUMENT)
        if size > limit:
            refused.append(Receipt.too_large(size, limit, name=verdict.name))
            continue
        if verdict not in accepted:
            accepted.append(verdict)
    return Screened(accepted, refused)


def _in_hidden_folder(path: Path, roots: Sequence[Path]) -> bool:
    for root in roots:
        if path.is_relative_to(root):
            return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])
    return False
