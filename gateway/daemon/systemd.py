"""systemd's notify protocol: readiness, a watchdog, and stopping (``Type=notify``).

Under a unit with ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a Unix datagram socket; a
name starting with ``@`` is in the abstract namespace) and, with ``WatchdogSec=``,
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the process meant). The daemon sends ``READY=1`` once its
boards are open and its components started, ``WATCHDOG=1`` every half of ``WATCHDOG_USEC`` from
its event loop (a loop that stops turning stops the pings, and systemd restarts the service), and
``STOPPING=1`` when a stop begins. Without ``NOTIFY_SOCKET`` every call does nothing. Workers never
see these variables: their environment is built from an allowlist.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import anyio

log = logging.getLogger(__name__)


class Systemd:
    def __init__(self, environ: Mapping[str, str]) -> None:
        address = environ.get("NOTIFY_SOCKET") or None
        if address is not None and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        self.watchdog_seconds = _watchdog_seconds(environ) if address is not None else None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when not under systemd or it failed
        (logged once: systemd's side going away must not disturb the daemon)."""
        if self.address is None:
            return False
        data = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(data, self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("systemd notification failed (%s); further failures are not logged",
                            exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")

    async def watchdog(self) -> None:
        """Ping every half of ``WATCHDOG_USEC`` until cancelled; returns at once without one."""
        if self.watchdog_seconds is None:
            return
        interval = self.watchdog_seconds / 2
        log.info("systemd watchdog: pinging every %.1f s", interval)
        while True:
            self.notify("WATCHDOG=1")
            await anyio.sleep(interval)


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid is not None and pid.strip() != str(os.getpid())):
        return None  # meant for another process (e.g. a wrapper that started us)
    return usec / 1_000_000
