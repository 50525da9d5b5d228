"""``FakeAdapter``: an in-memory platform that records every call — for gateway tests and config.

Scripted failures make the unhappy paths testable::

    fake = FakeAdapter(allowed_users=["u1"])                          # ["*"]: everyone; []: nobody
    fake.script_failures(2, Receipt.failed("boom", retryable=True))   # next two sends fail
    fake.script_failures(1, TransientError("down"))                   # next send raises
    await fake.inject(chat="c1", text="/status", user_id="u1")        # inbound message
    fake.set_status(AdapterState.CONFLICT, "someone else polls")      # what /status shows

``send`` splits text exactly as the real adapters do (fences balanced, "(1/3)" numbering outside
threads) and records the parts in ``SentCall.chunks``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from platforms.base import (
    AdapterState,
    AllowedUsers,
    Destination,
    InboundMessage,
    Limits,
    MiB,
    PlatformAdapter,
    Receipt,
)
from platforms.files import FileKind


@dataclass(frozen=True)
class SentCall:
    """One recorded call: the method, where it went, its text/caption and files."""

    method: str
    dest: Destination
    text: str | None = None
    files: tuple[Path, ...] = ()
    chunks: tuple[str, ...] = ()


@dataclass(kw_only=True)
class FakeAdapter(PlatformAdapter):
    """Records calls in ``calls``; every delivered message gets a fresh id ``"m1"``, ``"m2"``…

    ``allowed_users`` means what it means for every adapter: ``[]`` serves nobody, ``["*"]``
    everyone. Unlike the real adapters it may be left out — tests that only send need no users —
    and then serves nobody; ``create_adapter("fake", …)`` still requires it.
    """

    name = "fake"
    allowed_users: Sequence[str] = ()
    platform: str = "fake"
    text_length: int = 4000
    group_size: int = 10
    max_bytes: int = 10 * MiB
    calls: list[SentCall] = field(default_factory=list)
    _inbox: asyncio.Queue[InboundMessage] | None = field(default=None, repr=False)
    _script: deque[Receipt | BaseException] = field(default_factory=deque, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    started: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        self.users = AllowedUsers.parse(self.platform, self.allowed_users)

    # --- scripting ---

    def script_failures(self, count: int, outcome: Receipt | BaseException) -> None:
        """Make the next ``count`` send calls return ``outcome`` (a receipt) or raise it."""
        self._script.extend([outcome] * count)

    async def inject(
        self,
        *,
        chat: str,
        text: str,
        user_id: str = "user",
        user_name: str = "User",
        thread: str | None = None,
        is_self: bool = False,
        files: Iterable[str] = (),
    ) -> InboundMessage:
        """Push an inbound message into the inbox given to ``start`` (users filtered as live)."""
        if self._inbox is None:
            raise RuntimeError("FakeAdapter.inject() before start()")
        msg = InboundMessage(
            platform=self.platform,
            chat=chat,
            thread=thread,
            user_id=user_id,
            user_name=user_name,
            text=text,
            message_id=f"in{next(self._ids)}",
            is_self=is_self,
            files=tuple(files),
        )
        if not is_self and self.users.allows(user_id):
            await self._inbox.put(msg)
        return msg

    def set_status(self, state: AdapterState, detail: str = "") -> None:
        """Put the adapter in ``state`` (e.g. CONFLICT or RETRYING) for status tests."""
        self._set_status(state, detail)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.calls if c.method == "send" and c.text is not None]

    # --- contract ---

    async def start(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        self.users.announce(self.platform)
        self._inbox = inbox
        self.started = True
        self._set_status(AdapterState.CONNECTED, "in memory")

    def limits(self) -> Limits:
        return Limits(
            text_length=self.text_length,
            max_bytes={k: self.max_bytes for k in FileKind},
            group_size=self.group_size,
            default_max_bytes=self.max_bytes,
        )

    async def close(self) -> None:
        self.closed = True
        self._set_status(AdapterState.STOPPED, "closed")

    async def send(self, dest: Destination, text: str) -> Receipt:
        chunks = tuple(self.message_parts(dest, text))
        self.calls.append(SentCall("send", dest, text=text, chunks=chunks))
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        return Receipt.delivered([self._new_id() for _ in chunks or ("",)])

    async def send_document(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        return self._file_call("send_document", dest, path, caption)

    async def send_video(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        return self._file_call("send_video", dest, path, caption)

    async def send_multiple_images(
        self, dest: Destination, paths: Sequence[Path], caption: str | None = None
    ) -> list[Receipt]:
        receipts: list[Receipt] = []
        for start in range(0, len(paths), self.group_size):
            group = tuple(paths[start : start + self.group_size])
            self.calls.append(
                SentCall(
                    "send_multiple_images", dest, text=caption if start == 0 else None, files=group
                )
            )
            refusals = [r for r in (self.check_file(p, FileKind.IMAGE) for p in group) if r]
            if refusals:
                receipts.extend(refusals)
                continue
            scripted = self._scripted()
            receipts.append(
                scripted
                if scripted is not None
                else Receipt.delivered([self._new_id() for _ in group])
            )
        return receipts

    def _file_call(
        self, method: str, dest: Destination, path: Path, caption: str | None
    ) -> Receipt:
        self.calls.append(SentCall(method, dest, text=caption, files=(path,)))
        refusal = self.check_file(path)
        if refusal is not None:
            return refusal
        scripted = self._scripted()
        if scripted is not None:
            return scripted
        return Receipt.delivered([self._new_id()], name=path.name)

    def _scripted(self) -> Receipt | None:
        if not self._script:
            return None
        outcome = self._script.popleft()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _new_id(self) -> str:
        return f"m{next(self._ids)}"
