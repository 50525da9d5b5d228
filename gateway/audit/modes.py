"""File modes under the home: what other users of the host may read or change.

The audit looks at the home itself, config.yaml, the boards (each board's folder and files),
``run/`` (the worker API's socket, the lock), the profiles (their folders and profile.yaml, whose
``command`` the dispatcher runs), the chat histories, and every secret file the config names
(``*_file`` keys). Writable by group or others is ``high`` (someone else could change what runs
or what the board says); readable is ``medium`` (task bodies, outputs, chats, secrets).
:func:`tighten` takes the group and other bits off, on the owner's own paths only, never
following a link.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.audit.findings import Finding
from gateway.config import Config

GROUP_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH
GROUP_OTHER_ANY = 0o077
SHOWN = 5  # paths named in a finding's line; --json lists them all


@dataclass(frozen=True)
class Tightened:
    path: Path
    before: int
    after: int

    def line(self) -> str:
        return f"chmod {self.after:04o} {self.path} (was {self.before:04o})"


def audited_paths(home: Path, config: Config, config_file: Path | None) -> Iterator[Path]:
    """The paths the audit judges, those that exist (links included, to be skipped)."""
    yield home
    yield config_file or home / "config.yaml"
    for folder in ("boards", "profiles"):
        root = home / folder
        yield root
        for entry in _entries(root):
            yield entry
            if entry.is_dir() and not entry.is_symlink():
                yield from _entries(entry)
    for folder in ("run", "chat", "web-chat"):
        yield home / folder
        yield from _entries(home / folder)
    yield from _secret_files(config_file or home / "config.yaml")


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []
    except OSError:
        return []


def _secret_files(config_file: Path) -> Iterator[Path]:
    """Every ``*_file`` path in the file as written (the config may not load because of one)."""
    try:
        data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return

    def walk(value: Any) -> Iterator[Path]:
        if isinstance(value, dict):
            for key, item in value.items():
                if str(key).endswith("_file") and isinstance(item, str) and item:
                    yield Path(item).expanduser()
                else:
                    yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    yield from walk(data)


def _loose(path: Path) -> tuple[os.stat_result, int] | None:
    """(its stat, the group/other bits it has) when ``path`` is loose; None otherwise."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return None
    bits = stat.S_IMODE(info.st_mode) & GROUP_OTHER_ANY
    if stat.S_ISSOCK(info.st_mode):
        bits &= GROUP_OTHER_WRITE  # a socket's read bits mean nothing; connecting needs write
    return (info, bits) if bits else None


def loose_paths(home: Path, config: Config, config_file: Path | None) -> list[Path]:
    seen: dict[Path, None] = {}
    for path in audited_paths(home, config, config_file):
        if path not in seen and _loose(path) is not None:
            seen[path] = None
    return list(seen)


def mode_findings(home: Path, config: Config, config_file: Path | None) -> list[Finding]:
    writable: list[str] = []
    readable: list[str] = []
    for path in loose_paths(home, config, config_file):
        found = _loose(path)
        assert found is not None
        (writable if found[1] & GROUP_OTHER_WRITE else readable).append(
            f"{path} ({stat.S_IMODE(found[0].st_mode):04o})")
    findings = []
    if writable:
        findings.append(Finding(
            "files.writable", "high",
            f"{_count(writable)} under the home writable by group or others: "
            f"{_some(writable)}",
            "run relayboard security audit --fix (chmod go-rwx), or chmod them yourself",
            tuple(writable)))
    if readable:
        findings.append(Finding(
            "files.readable", "medium",
            f"{_count(readable)} under the home readable by group or others: "
            f"{_some(readable)}",
            "run relayboard security audit --fix (chmod go-rwx), or chmod them yourself",
            tuple(readable)))
    return findings


def tighten(paths: list[Path]) -> list[Tightened]:
    """chmod go-rwx each path this user owns (links skipped); what changed."""
    changed = []
    for path in paths:
        found = _loose(path)
        if found is None or found[0].st_uid != os.getuid():
            continue
        before = stat.S_IMODE(found[0].st_mode)
        after = before & ~GROUP_OTHER_ANY
        try:
            os.chmod(path, after)  # not a link: lstat said so just above
        except OSError:
            continue
        changed.append(Tightened(path, before, after))
    return changed


def _count(paths: list[str]) -> str:
    return "1 path" if len(paths) == 1 else f"{len(paths)} paths"


def _some(paths: list[str]) -> str:
    more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
    return ", ".join(paths[:SHOWN]) + more
