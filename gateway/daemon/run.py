"""``relayboard gateway run``: lock the home, set up redacted logging (``logging.format``), run
the daemon until a signal.

SIGINT or SIGTERM stops it gracefully (exit code 0, within the daemon's shutdown deadline), also
one that arrives while the process is still starting; a second signal exits at once (exit
code 1) — after a start-up signal, the second one after it, since the first may be its echo.
A second gateway on the same home is refused at once with the holder's pid
(:class:`~gateway.errors.LockHeld`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import anyio

from gateway import early_signals
from gateway.config import Config, require_platform_secrets
from gateway.daemon.components import Daemon
from gateway.daemon.lock import HomeLock
from gateway.daemon.logs import apply_config
from kanban.runtime.sandbox import forbid_dumping

log = logging.getLogger(__name__)

FORCED_EXIT = 1


def run_gateway(config: Config, environ: Mapping[str, str], *,
                config_file: Path | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code. Raises ConfigError / LockHeld before
    anything starts."""
    require_platform_secrets(config)
    forbid_dumping()  # no process of this user reads our environment (tokens) through /proc
    apply_config(config.logging.format, config.secret_values())
    with HomeLock(config.home):
        anyio.run(_serve, config, environ, config_file, backend="asyncio")
    return 0


async def _serve(config: Config, environ: Mapping[str, str], config_file: Path | None) -> None:
    stop = anyio.Event()
    daemon = Daemon(config, environ=environ, config_file=config_file)
    async with anyio.create_task_group() as group:
        group.start_soon(_signals, stop, name="signals")
        await daemon.run(stop)
        group.cancel_scope.cancel()


async def _signals(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        # A signal that came while the process was still starting (see gateway.early_signals)
        # stops it now, the same way; the receiver above is in place, so none is missed.
        early = early_signals.take()
        # A signal that lands while the receiver is being installed can be both recorded early
        # and delivered to the receiver: the first delivery after an early one may be that same
        # signal, so it is not taken as the second that forces an exit.
        echo = early is not None
        if early is not None:
            log.info("%s received during start-up: stopping (send it twice more to exit at "
                     "once)", signal.Signals(early).name)
            stop.set()
        async for signum in received:
            if not stop.is_set():
                log.info("%s received: stopping (send it again to exit at once)",
                         signal.Signals(signum).name)
                stop.set()
            elif echo:
                echo = False
                log.info("%s received: already stopping (send it again to exit at once)",
                         signal.Signals(signum).name)
            else:
                log.warning("%s received again: exiting now", signal.Signals(signum).name)
                logging.shutdown()
                os._exit(FORCED_EXIT)
