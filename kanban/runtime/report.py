"""What one dispatcher cycle did, as data (the CLI prints it, ``--json`` dumps it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# Fields that list what happened (as opposed to the cycle's counts and budgets).
_OUTCOMES = ("scheduled", "spawned", "blocked", "spawn_failed", "crashed", "requeued",
             "protocol_violations", "timed_out", "extended", "reclaimed", "terminated",
             "adopted", "cleaned")


@dataclass
class CycleReport:
    board: str
    dry_run: bool = False
    running: int = 0
    budget: int = 0
    host_budget: int = 0
    scheduled: list[dict[str, Any]] = field(default_factory=list)  # schedule occurrences
    spawned: list[dict[str, Any]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    spawn_failed: list[dict[str, Any]] = field(default_factory=list)
    crashed: list[dict[str, Any]] = field(default_factory=list)
    systemic: list[str] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    protocol_violations: list[int] = field(default_factory=list)
    timed_out: list[int] = field(default_factory=list)
    extended: list[int] = field(default_factory=list)
    reclaimed: list[int] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    cleaned: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return any(getattr(self, name) for name in (*_OUTCOMES, "errors", "planned"))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    def absorb(self, later: CycleReport) -> None:
        """Add what a later cycle on the same board did (one-shot dispatch reaps its own fast
        crashes in a second cycle, but reports one run); counts and budgets stay this cycle's."""
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, list):
                mine.extend(x for x in getattr(later, f.name) if x not in mine)

    def summary(self) -> str:
        parts = [f"{name}={len(getattr(self, name))}" for name in _OUTCOMES
                 if getattr(self, name)]
        return " ".join(parts) or "idle"


__all__ = ["CycleReport"]
