"""Leader election among the processes sharing a storage: one holder of a named leadership at a
time, a hot standby in every other.

Some duties must run in exactly one place however many gateways serve a board: polling Telegram
(two pollers of one bot get 409 Conflict), Slack's socket, Discord's gateway, the background
decomposition ticks. :class:`Leadership` decides where.

* **PostgreSQL.** A dedicated connection tries ``pg_try_advisory_lock(key)`` every
  ``retry_seconds`` until it wins; the key is :func:`~kanban.storage.pg.lock_key` of the
  namespace's catalog and the name, so installations in other namespaces never compete. The lock
  belongs to the session: when the leader's process dies (even by ``kill -9``) the server drops
  the session and the lock with it, and a standby's next try wins — a takeover within about
  ``retry_seconds``. While it leads, the holder runs ``SELECT 1`` every ``check_seconds`` (bounded
  by ``check_timeout``): a failure means the session (and so the lock) may be gone, and the term
  ends at once, before another process can have led for long. The session also sets
  ``idle_session_timeout`` (``idle_seconds``): a leader host that vanishes without closing its
  socket (power loss, a partition) stops those checks, and the server frees the lock within that
  time instead of waiting for TCP keepalives.
* **SQLite.** Always granted at once: a SQLite board lives on one host, and the home's lock file
  already keeps a second gateway out of the home.

Usage: run :meth:`Leadership.run` as a task for as long as the process wants to compete, and
:meth:`Leadership.lead` beside it with the duties::

    async with anyio.create_task_group() as group:
        group.start_soon(leadership.run)
        group.start_soon(leadership.lead, duties, standby)

``duties(term)`` runs while this process leads and is cancelled when the term ends;
``standby()`` runs each time the process finds itself not leading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from kanban.storage.backend import Storage

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

State = Literal["starting", "leader", "standby"]

RETRY_SECONDS = 1.0
CHECK_SECONDS = 1.0
CHECK_TIMEOUT = 3.0
IDLE_SECONDS = 10.0


@dataclass
class Term:
    """One stretch of leadership held by this process."""

    number: int
    """1 for the first time this process leads, 2 after it lost and won again, …"""
    since: float
    """Wall-clock time it was won."""
    waited: float
    """Seconds this process tried before it won (the standby's takeover time)."""
    lost: anyio.Event = field(default_factory=anyio.Event)
    """Set when the term ends (the connection failed, or :meth:`Leadership.run` stopped)."""
    reason: str | None = None
    """Why it ended, once :attr:`lost` is set."""


class Leadership:
    """The leadership ``name`` among the processes sharing ``storage``."""

    def __init__(self, storage: Storage, name: str, *, retry_seconds: float = RETRY_SECONDS,
                 check_seconds: float = CHECK_SECONDS, check_timeout: float = CHECK_TIMEOUT,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.storage = storage
        self.name = name
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self.check_timeout = check_timeout
        self.idle_seconds = idle_seconds
        self.state: State = "starting"
        self.term: Term | None = None
        self.terms = 0
        self.session_pid: int | None = None
        """PostgreSQL: the server process of the session that holds or tries the lock."""
        self._changed = anyio.Event()

    @property
    def held(self) -> bool:
        return self.term is not None

    @property
    def shared(self) -> bool:
        """Whether another process can lead at all (a storage several hosts share)."""
        return self.storage.shared

    def status(self) -> dict[str, Any]:
        term = self.term
        return {"state": self.state, "since": term.since if term is not None else None,
                "terms": self.terms, "shared": self.shared}

    # ---- waiting on it --------------------------------------------------------------------------
    async def wait_decided(self) -> State:
        """The state once the first attempt has been made (``leader`` or ``standby``)."""
        while self.state == "starting":
            await self._changed.wait()
        return self.state

    async def wait_held(self) -> Term:
        """The current term, once this process leads."""
        while self.term is None:
            await self._changed.wait()
        return self.term

    async def lead(self, duties: Callable[[Term], Awaitable[None]],
                   standby: Callable[[], Awaitable[None]] | None = None) -> None:
        """Forever: run ``duties(term)`` while leading, cancelled when the term ends; ``standby()``
        whenever not leading (at the start, and after each term)."""
        while True:
            if await self.wait_decided() == "standby" and standby is not None:
                await standby()
            term = await self.wait_held()
            async with anyio.create_task_group() as group:
                group.start_soon(_cancel_when, term.lost, group.cancel_scope,
                                 name=f"leader-watch:{self.name}")
                await duties(term)
                await term.lost.wait()  # duties that return early still wait for the term's end

    # ---- competing ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Compete for the leadership until cancelled (which ends a term held)."""
        try:
            if self.storage.is_postgres and self.storage.dsn:
                await self._run_postgres(self.storage.dsn)
            else:
                self._won(0.0)
                await anyio.sleep_forever()
        finally:
            self._lost("stopped")
            self.state = "starting"

    async def _run_postgres(self, dsn: str) -> None:
        import psycopg

        from kanban.storage.pg import describe_dsn, error_text

        trying_since = time.monotonic()
        complaint: str | None = None
        while True:
            try:
                with anyio.fail_after(self.check_timeout + 10.0):
                    conn = await psycopg.AsyncConnection.connect(
                        dsn, autocommit=True, connect_timeout=10,
                        application_name=f"relayboard leader {self.name}"[:63])
            except (psycopg.Error, OSError, TimeoutError) as exc:
                text = f"{describe_dsn(dsn)}: {error_text(exc)}"
                if text != complaint:
                    log.warning("leader: cannot reach %s; trying again every %.0f s", text,
                                self.retry_seconds)
                    complaint = text
                self._standby()
                await anyio.sleep(self.retry_seconds)
                continue
            complaint = None
            try:
                await self._hold(conn, trying_since)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                reason = (error_text(exc) if str(exc)
                          else f"no answer within {self.check_timeout:.0f} s")
                if self.term is not None:
                    log.warning("leader: lost the connection holding %r (%s); duties stop now",
                                self.name, reason)
                    self._lost(reason)
                    trying_since = time.monotonic()
                else:
                    log.warning("leader: connection lost while waiting for %r (%s)", self.name,
                                reason)
                self._standby()
            finally:
                self.session_pid = None
                with anyio.move_on_after(self.check_timeout, shield=True):
                    await conn.close()
            await anyio.sleep(self.retry_seconds)

    async def _hold(self, conn: psycopg.AsyncConnection[Any], trying_since: float) -> None:
        """Try the lock every ``retry_seconds`` on ``conn``; once won, check the session every
        ``check_seconds``. Returns only by raising (a failed or slow check)."""
        from kanban.storage.pg import lock_key
        from kanban.storage.pg_schema import catalog_schema

        key = lock_key(catalog_schema(self.storage.namespace), "leader", self.name)
        with anyio.fail_after(self.check_timeout):
            if conn.info.server_version >= 140000 and self.idle_seconds > 0:
                await conn.execute("SELECT set_config('idle_session_timeout', %s, false)",
                                   (f"{int(self.idle_seconds * 1000)}ms",))
            self.session_pid = conn.info.backend_pid
        while True:
            with anyio.fail_after(self.check_timeout):
                row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)",
                                                (key,))).fetchone()
            if row is not None and row[0]:
                break
            if self.state != "standby":  # the user-facing line is the caller's (standby())
                log.debug("%r is held by another session; trying every %.0f s", self.name,
                          self.retry_seconds)
            self._standby()
            await anyio.sleep(self.retry_seconds)
        self._won(time.monotonic() - trying_since)
        while True:
            await anyio.sleep(self.check_seconds)
            with anyio.fail_after(self.check_timeout):
                await conn.execute("SELECT 1")

    # ---- state --------------------------------------------------------------------------------
    def _won(self, waited: float) -> None:
        self.terms += 1
        self.term = Term(self.terms, time.time(), waited)
        self.state = "leader"
        if self.shared:
            log.debug("won %r after %.1f s (term %d)", self.name, waited, self.terms)
        self._notify()

    def _lost(self, reason: str) -> None:
        term, self.term = self.term, None
        self.state = "standby"
        if term is not None:
            term.reason = reason
            term.lost.set()
        self._notify()

    def _standby(self) -> None:
        if self.state != "standby":
            self.state = "standby"
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


__all__ = ["Leadership", "State", "Term"]
