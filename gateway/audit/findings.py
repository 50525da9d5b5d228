"""One finding of the security audit: how bad, what, and what to do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")


@dataclass(frozen=True)
class Finding:
    """``check`` is stable (scripts read ``--json``); ``paths`` lists the files concerned."""

    check: str
    severity: Severity
    what: str
    fix: str
    paths: tuple[str, ...] = field(default=())

    def line(self) -> str:
        return f"{self.severity.upper():<6} {self.check}: {self.what} — fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "severity": self.severity, "what": self.what,
                "fix": self.fix, "paths": list(self.paths)}

    def redacted(self, secrets: Iterable[str]) -> Finding:
        what, fix = self.what, self.fix
        for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
            what, fix = what.replace(secret, "***"), fix.replace(secret, "***")
        return replace(self, what=what, fix=fix)
