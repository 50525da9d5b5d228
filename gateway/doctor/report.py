"""One line per check: what the doctor found, and the fix when something is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]
MARKS: dict[Status, str] = {"ok": "✓", "warn": "⚠", "fail": "✗"}


@dataclass(frozen=True)
class Check:
    """``name`` is stable (scripts read ``--json``); ``message`` says what was found; ``fix``
    what to do about it (empty when nothing is to be done)."""

    name: str
    status: Status
    message: str
    fix: str = ""

    def line(self) -> str:
        fix = f" — {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{MARKS[self.status]} {self.name}: {self.message}{fix}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message,
                "fix": self.fix}


def ok(name: str, message: str) -> Check:
    return Check(name, "ok", message)


def warn(name: str, message: str, fix: str) -> Check:
    return Check(name, "warn", message, fix)


def fail(name: str, message: str, fix: str) -> Check:
    return Check(name, "fail", message, fix)


def redacted(check: Check, secrets: Iterable[str]) -> Check:
    """``check`` with every secret value masked, whatever a library put in its message."""
    message, fix = check.message, check.fix
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        message = message.replace(secret, "***")
        fix = fix.replace(secret, "***")
    return Check(check.name, check.status, message, fix)


def one_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(text).__name__
