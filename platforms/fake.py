"""``FakeAdapter``: an in-memory platform that records every call — for gateway tests and config.

Scripted failures make the unhappy paths testable::

    fake = FakeAdapter(allowed_users=["u1"])                          # ["*"]: everyone; []: nobody
    fake.script_failures(2, Receipt.failed("boom", retryable=True))   # next two sends fail
    fake.script_failures(1, TransientError("down"))                   # next send raises
    await fake.inject(chat="c1", text="/status", user_id="u1")        # inbound message
    await fake.inject(chat="c1", text="look", files=["/tmp/data.csv"])  # with a file (a local
                                                                      # path; download copies it)
    fake.set_status(AdapterState.CONFLICT, "someone else polls")      # what /status shows
    fake.fail_connects(2, AuthError("refused"))                       # the next two run() fail
    fake.lose_connection(TransientError("dropped"))                   # the running run() raises

``run`` serves until cancelled (there is nothing to connect to); ``start`` opens the inbox
directly, without a task, for tests that need no task group.

``send`` splits text exactly as the real adapters do (fences balanced, "(1/3)" numbering outside
threads) and records the parts in ``SentCall.chunks``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from platforms.base import (
    AdapterState,
    AllowedUsers,
    Destination,
    InboundFile,
    InboundMessage,
    Limits,
    PlatformAdapter,
    Report,
)
from platforms.errors import PermanentError, PlatformError
from platforms.files import FileKind
from platforms.receipts import MiB, Receipt


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
    runs: int = 0  # how many times run() was entered
    _connect_failures: deque[PlatformError] = field(default_factory=deque, repr=False)
    _lost: asyncio.Future[None] | None = field(default=None, repr=False)

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
        files: Iterable[str | InboundFile] = (),
    ) -> InboundMessage:
        """Push an inbound message into the inbox given to ``start``, marked ``authorized`` as the
        real adapters mark it (the bot's own messages are dropped as live). A file given as a
        string is a local path that ``download`` copies."""
        if self._inbox is None:
            raise RuntimeError("FakeAdapter.inject() before start()")
        refs = tuple(f if isinstance(f, InboundFile) else _local_file(f) for f in files)
        msg = InboundMessage(
            platform=self.platform,
            chat=chat,
            thread=thread,
            user_id=user_id,
            user_name=user_name,
            text=text,
            message_id=f"in{next(self._ids)}",
            is_self=is_self,
            files=refs,
            authorized=self.users.allows(user_id),
        )
        if not is_self:
            await self._inbox.put(msg)
        return msg

    def set_status(self, state: AdapterState, detail: str = "") -> None:
        """Put the adapter in ``state`` (e.g. CONFLICT or RETRYING) for status tests."""
        self._set_status(state, detail)

    def fail_connects(self, count: int, error: PlatformError) -> None:
        """Make the next ``count`` calls of ``run`` raise ``error`` while connecting."""
        self._connect_failures.extend([error] * count)

    def lose_connection(self, error: PlatformError) -> None:
        """Make the running ``run`` raise ``error``, as a connection lost for good does."""
        if self._lost is None or self._lost.done():
            raise RuntimeError("FakeAdapter.lose_connection() while run() is not serving")
        self._lost.set_exception(error)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.calls if c.method == "send" and c.text is not None]

    # --- contract ---

    async def run(
        self, inbox: asyncio.Queue[InboundMessage], report: Report | None = None
    ) -> None:
        self.runs += 1
        self._report = report
        self._set_status(AdapterState.CONNECTING, "connecting")
        if self._connect_failures:
            error = self._connect_failures.popleft()
            self._set_status(AdapterState.STOPPED, f"start failed: {error}")
            raise error
        self._lost = asyncio.get_running_loop().create_future()
        try:
            await self.start(inbox)
            await self._lost  # set by lose_connection(); otherwise until cancelled
        except PlatformError as exc:
            self._set_status(AdapterState.STOPPED, f"connection lost: {exc}")
            raise
        finally:
            self._lost = None
            if self._status.state is not AdapterState.STOPPED:
                self._set_status(AdapterState.STOPPED, "closed")

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

    async def typing(self, dest: Destination) -> None:
        self.calls.append(SentCall("typing", dest))

    async def download(self, file: InboundFile, dest_dir: Path, max_bytes: int) -> Path:
        source = Path(file.ref)

        async def chunks() -> AsyncIterator[bytes]:
            data = await asyncio.to_thread(source.read_bytes)
            for start in range(0, len(data), 65536):
                yield data[start : start + 65536]

        if not await asyncio.to_thread(source.is_file):
            raise PermanentError(f"{file.name}: no such file", platform=self.platform)
        return await self.save_stream(file, chunks(), dest_dir, max_bytes)

    def _scripted(self) -> Receipt | None:
        if not self._script:
            return None
        outcome = self._script.popleft()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _new_id(self) -> str:
        return f"m{next(self._ids)}"


def _local_file(path: str) -> InboundFile:
    p = Path(path)
    try:
        size: int | None = p.stat().st_size
    except OSError:
        size = None
    return InboundFile(ref=str(p), name=p.name, size=size)
