"""Stop requests that arrive before the daemon can act on them.

A supervisor may send SIGTERM (or a person Ctrl-C) while ``relayboard`` is still importing its
modules, long before the gateway installs its own handlers. With the operating system's default
action the process would die with -15 in the middle of its start. :func:`hold` is called by the
entry points before anything else is imported and only *records* such a signal; then either

* the gateway, once its own handlers are in place, calls :func:`take` and stops at once with
  exit code 0, as for any SIGTERM it receives while running; or
* every other command calls :func:`release`, which restores the default actions and re-delivers
  a recorded signal, so ``kanban create`` still dies on SIGTERM as a command line tool should.

Standard library only: this module is imported first, and must cost nothing.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

_HELD = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []
_previous: dict[int, Handler] = {}


def _record(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)


def hold() -> None:
    """Record SIGTERM and SIGINT instead of acting on them, until :func:`release`. A signal the
    parent set to be ignored (``nohup``, a shell's background job) stays ignored."""
    for signum in _HELD:
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN:
            continue
        _previous[signum] = signal.signal(signum, _record)


def take() -> int | None:
    """The first stop signal received while held, if any (each is handed out once)."""
    return _received.pop(0) if _received else None


def release() -> None:
    """Back to the actions held over; a signal recorded meanwhile is delivered now."""
    if not _previous:
        return
    for signum, previous in _previous.items():
        signal.signal(signum, previous)
    _previous.clear()
    pending = take()
    if pending is not None:
        signal.raise_signal(pending)
