"""Pairing codes: how a stranger on a ``dm_policy: pairing`` platform asks to be let in.

A stranger who writes to the bot in a one-to-one chat gets a short code (8 characters from an
alphabet without look-alikes, drawn by :mod:`secrets`) that expires after an hour. The operator
approves it (``relayboard pairing approve CODE [--admin]``, which also adds the user id to
``platforms.<name>.allowed_users`` or ``admins`` in config.yaml) or denies it. At most
``MAX_PENDING`` requests wait per platform; the same stranger asking again gets the same code.

The requests live in ``<home>/run/pairing.json`` (0600 in a 0700 folder, written to a temporary
file and renamed), shared by the gateway and the CLI under an advisory lock
(``pairing.lock``). Who was let in is recorded only in config.yaml, which the running gateway
re-reads when it changes. What a stranger wrote is never stored or logged:
only the platform, the user id and the name the platform shows.

Every decision (``issued``, ``approved``, ``denied``, ``expired``) is logged at INFO and appended
as one JSON line to ``<home>/run/pairing-audit.log``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError
from kanban.storage.modes import PRIVATE_FILE_MODE, private_dir

log = logging.getLogger(__name__)

FILE_NAME = "pairing.json"
AUDIT_NAME = "pairing-audit.log"
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8
TTL_SECONDS = 3600.0
MAX_PENDING = 3

@dataclass(frozen=True)
class Pending:
    platform: str
    code: str
    user_id: str
    user_name: str
    created: float
    expires: float

    def to_dict(self, now: float) -> dict[str, Any]:
        return {**asdict(self), "age_seconds": max(0, int(now - self.created)),
                "expires_in_seconds": max(0, int(self.expires - now))}


@dataclass(frozen=True)
class Full:
    """No code issued: ``MAX_PENDING`` requests already wait on this platform."""

    platform: str


def store_path(home: Path) -> Path:
    return home / "run" / FILE_NAME


def normalize(code: str) -> str:
    """What the operator typed → the stored form (case, spaces and dashes do not matter)."""
    return "".join(code.split()).replace("-", "").upper()


class PairingStore:
    def __init__(self, home: Path, clock: Callable[[], float] = time.time,
                 ttl: float = TTL_SECONDS, max_pending: int = MAX_PENDING) -> None:
        self.path = store_path(home)
        self.audit_path = home / "run" / AUDIT_NAME
        self.clock = clock
        self.ttl = ttl
        self.max_pending = max_pending

    # ---- the gateway's side ----------------------------------------------------------------
    def request(self, platform: str, user_id: str, user_name: str) -> Pending | Full:
        """The stranger's pending code: the one they have, a new one, or :class:`Full`."""
        with self._state() as state:
            for item in state.pending:
                if item.platform == platform and item.user_id == user_id:
                    return item
            if sum(p.platform == platform for p in state.pending) >= self.max_pending:
                return Full(platform)
            now = self.clock()
            taken = {p.code for p in state.pending}
            code = _new_code(taken)
            item = Pending(platform, code, user_id, user_name, now, now + self.ttl)
            state.pending.append(item)
        self._audit("issued", item)
        return item

    # ---- the operator's side ---------------------------------------------------------------
    def pending(self) -> list[Pending]:
        with self._state() as state:
            return list(state.pending)

    def approve(self, code: str, *, admin: bool = False) -> Pending:
        with self._state() as state:
            item = state.take(normalize(code))
        self._audit("approved", item, role="admin" if admin else "member")
        return item

    def deny(self, code: str) -> Pending:
        with self._state() as state:
            item = state.take(normalize(code))
        self._audit("denied", item)
        return item

    # ---- the file ----------------------------------------------------------------------------
    @contextmanager
    def _state(self) -> Iterator[_State]:
        private_dir(self.path.parent)
        lock = os.open(self.path.with_name("pairing.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            raw = self._read()
            state = _State.parse(raw)
            now = self.clock()
            expired = [p for p in state.pending if p.expires <= now]
            state.pending = [p for p in state.pending if p.expires > now]
            before = state.dump()
            yield state
            if expired or state.dump() != before:
                self._write(state.dump())
            for item in expired:
                self._audit("expired", item)
        finally:
            os.close(lock)  # releases the lock

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("pairing: %s is unreadable (%s); starting afresh", self.path.name, exc)
            return {}
        return raw if isinstance(raw, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        part = self.path.with_name(f".{self.path.name}.part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                     PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(part, PRIVATE_FILE_MODE)
        os.replace(part, self.path)

    def _audit(self, event: str, item: Pending, **extra: str) -> None:
        log.info("pairing: %s %s user %s (code %s)%s", event, item.platform, item.user_id,
                 item.code, f" as {extra['role']}" if "role" in extra else "",
                 extra={"platform": item.platform})
        line = {"at": round(self.clock(), 3), "event": event, "platform": item.platform,
                "user_id": item.user_id, "user_name": item.user_name, "code": item.code, **extra}
        try:
            private_dir(self.audit_path.parent)
            fd = os.open(self.audit_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                         PRIVATE_FILE_MODE)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:
            log.warning("pairing: could not append to %s: %s", self.audit_path.name,
                        exc.strerror or exc)


class UnknownCode(GatewayError):
    """No pending request has this code (never issued, already decided, or expired)."""


class _State:
    def __init__(self, pending: list[Pending]) -> None:
        self.pending = pending

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> _State:
        pending: list[Pending] = []
        for item in raw.get("pending", []) if isinstance(raw.get("pending"), list) else []:
            try:
                pending.append(Pending(str(item["platform"]), str(item["code"]),
                                       str(item["user_id"]), str(item.get("user_name", "")),
                                       float(item["created"]), float(item["expires"])))
            except (KeyError, TypeError, ValueError):
                continue
        return cls(pending)

    def dump(self) -> dict[str, Any]:
        return {"pending": [asdict(p) for p in self.pending]}

    def take(self, code: str) -> Pending:
        for item in self.pending:
            if item.code == code:
                self.pending.remove(item)
                return item
        raise UnknownCode(f"no pending pairing request with code {code or '(empty)'} "
                          "(it may have expired; `relayboard pairing list` shows those waiting)")


def _new_code(taken: set[str]) -> str:
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code
