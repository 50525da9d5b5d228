"""Components that restart on failure, each on its own capped, jittered backoff.

A component is a named coroutine function that runs until cancelled. When it raises, the error
is logged with its traceback, the component's state says so, and it is started again after a
delay that doubles up to a cap (reset once it has run steadily for a while): the kernel's
:class:`~kanban.backoff.Backoff`, the one formula, with its ``steady_seconds``. It never takes the
other components down: each runs inside its own restart loop in the daemon's task group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from kanban.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass
class ComponentState:
    name: str
    state: str = "starting"  # starting | running | retrying | stopped
    restarts: int = 0
    last_error: str | None = None
    since: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error,
                "since": self.since}


class Supervisor:
    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self.components: dict[str, ComponentState] = {}

    async def supervise(self, name: str, run: Callable[[], Awaitable[None]],
                        *, on_failure: Callable[[BaseException], None] | None = None) -> None:
        """Run ``run()`` until cancelled, restarting it after each failure or early return."""
        state = self.components.setdefault(name, ComponentState(name))
        failures = 0
        while True:
            state.state, state.since = "running", time.time()
            started = time.monotonic()
            try:
                await run()
                error: BaseException | None = None
                log.warning("component %s returned; restarting it", name)
            except anyio.get_cancelled_exc_class():
                state.state = "stopped"
                raise
            except Exception as exc:
                error = exc
                log.exception("component %s failed", name)
            if time.monotonic() - started >= self.backoff.steady_seconds:
                failures = 0
            failures += 1
            state.restarts += 1
            state.last_error = _one_line(error) if error is not None else "returned"
            if error is not None and on_failure is not None:
                on_failure(error)
            delay = self.backoff.delay(failures)
            state.state = "retrying"
            log.info("restarting %s in %.1f s", name, delay)
            await anyio.sleep(delay)

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: c.to_dict() for name, c in self.components.items()}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
