"""Crash accounting: what a crashed worker's error says, and which crashes are one failure.

Every crash gets an error line (how the worker ended, plus the last line it printed) and, when
there is something to compare, a *fingerprint*: the last line of the worker's own output with
host details stripped (timestamps, ids, hex, paths, pids, numbers), or, for a worker that printed
nothing, how it ended ("worker exited with code <n>"). When ``threshold`` or more crashes of one
dispatcher cycle share a fingerprint, every one of them trips its breaker at once: a provider
outage or expired credentials should not burn each task's retries in turn.

The fingerprint is the output line, not the exit status, on purpose: a worker whose exit status is
unknown (it died while no dispatcher watched it) is then fingerprinted from its log exactly like
one we reaped, so repeated one-shot ``kanban dispatch`` runs trip the breaker as ``--loop`` does.
Only output written since the run was claimed counts: a log is appended to across attempts, and an
earlier attempt's last words must not be taken for this one's.
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kanban.runtime.spawn import log_tail

# A log modified this long before the claim was last written by an earlier attempt. File mtimes
# come from the kernel's coarse clock, a few ms behind time.time().
MTIME_SLACK_SECONDS = 0.05

_NORMALISE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
     "<ts>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
     "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.I), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+)+[\\/]?"), "<path>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


def normalise_error(text: str) -> str:
    """An error with host details stripped (timestamps, ids, hex, paths, pids, numbers), so the
    same failure on different workers reads the same."""
    out = text.strip().lower()
    for pattern, replacement in _NORMALISE:
        out = pattern.sub(replacement, out)
    return re.sub(r"\s+", " ", out)[:500]


@dataclass(frozen=True)
class Crash:
    """One crashed run, as the dispatcher records it."""

    task_id: int
    run_id: int
    error: str
    exit_code: int | None  # None: unknown (the worker was gone when we looked)
    tail: str
    fingerprint: str | None  # None: nothing to compare (no output, exit status unknown)


def run_tail(path: Path, *, since: float | None, max_bytes: int) -> str:
    """The end of a worker log, or "" when nothing was written to it since ``since`` (the run's
    claim): then its contents belong to an earlier attempt. Blocking: call it on a thread."""
    if since is not None:
        try:
            if os.stat(path).st_mtime < since - MTIME_SLACK_SECONDS:
                return ""
        except OSError:
            return ""
    return log_tail(path, max_bytes=max_bytes)


def _last_line(tail: str) -> str:
    lines = [line for line in tail.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _fingerprint(last_line: str, how: str | None) -> str | None:
    if last_line:
        return "output: " + normalise_error(last_line)
    return normalise_error(how) if how else None


def exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"worker killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


def exited_crash(task_id: int, run_id: int, code: int | None, tail: str) -> Crash:
    """A worker we watched ended with a failing status."""
    how = exit_description(code)
    last = _last_line(tail)
    error = f"{how}: {last}" if last else how
    return Crash(task_id, run_id, error, code, tail, _fingerprint(last, how))


def gone_crash(task_id: int, run_id: int, pid: int | None, tail: str) -> Crash:
    """A worker that ended while nobody watched it: no exit status, only its log."""
    how = f"worker pid {pid} is gone (exit status unknown)"
    last = _last_line(tail)
    error = f"{how}: {last}" if last else how
    # Without output there is nothing to compare: such a crash keeps its own budget.
    return Crash(task_id, run_id, error, None, tail, _fingerprint(last, None))


def systemic_fingerprints(crashes: Iterable[Crash], threshold: int) -> set[str]:
    """The fingerprints shared by ``threshold`` or more of ``crashes``."""
    counts = Counter(c.fingerprint for c in crashes if c.fingerprint)
    return {fp for fp, n in counts.items() if n >= threshold}


__all__ = ["Crash", "exit_description", "exited_crash", "gone_crash", "normalise_error",
           "run_tail", "systemic_fingerprints"]
