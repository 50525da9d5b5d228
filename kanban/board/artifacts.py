"""Durable artifacts: files a worker declares on completion, moved out of its scratch workspace.

A scratch workspace is removed after completion, so an artifact declared inside it would vanish
before the notifier uploads it. ``complete`` therefore stages such files into the task's
attachments directory before its transaction (copying is the slow part, done without the write
lock), moves them into place inside the transaction once the lease has been checked (a stale
worker never overwrites its successor's files), and records the durable paths in the task's
metadata and the ``completed`` event. Paths outside the scratch workspace are kept as declared;
copying them would launder arbitrary host files into the attachments root.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from kanban.errors import InvalidInput
from kanban.fsutil import UnsafeFile, copy_no_follow, inside


@dataclass
class StagedArtifacts:
    """Artifacts copied to a staging directory, waiting to be moved into place."""

    paths: list[str]  # what the task will record, in the declared order
    staging: Path | None = None
    moves: list[tuple[Path, Path]] = field(default_factory=list)  # staged file → final path

    def publish(self) -> None:
        """Move staged files into place (fast renames); called inside the transaction."""
        for staged, final in self.moves:
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            os.replace(staged, final)
        self.discard()

    def discard(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def stage_artifacts(
    declared: list[str], *, scratch: Path, attachments: Path
) -> StagedArtifacts:
    """Copy every declared artifact that lives inside ``scratch`` to a staging directory under
    ``attachments``; return the paths the task should record."""
    scratch_root = scratch.resolve()
    result = StagedArtifacts(paths=[])
    for item in declared:
        source = Path(item)
        if not source.is_absolute():
            source = scratch / source
        # Judge the path as written (a link is refused by the copy, not resolved away).
        lexical = Path(os.path.normpath(source))
        if not inside(lexical, scratch) or not os.path.lexists(lexical):
            result.paths.append(item)
            continue
        relative = lexical.resolve().relative_to(scratch_root)
        if result.staging is None:
            result.staging = attachments / f".staging-{secrets.token_hex(6)}"
        staged = result.staging / relative
        try:
            copy_no_follow(lexical, staged)
        except UnsafeFile as exc:
            result.discard()
            raise InvalidInput(f"artifact refused: {exc}") from exc
        final = attachments / relative
        result.moves.append((staged, final))
        result.paths.append(str(final))
    return result
