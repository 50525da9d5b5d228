"""The adapter contract: destinations, inbound messages, receipts, limits, ``PlatformAdapter``.

Adapters translate between one platform SDK and these platform-neutral values; the gateway decides
what to do with them. Every send returns a ``Receipt`` — there is no silent success. Inbound runs
in one coroutine, ``await adapter.run(inbox, report)``, owned by the caller's task group: it
connects, serves until cancelled, and raises a ``platforms.errors`` exception when the connection
is lost for good (the caller decides whether and when to run it again). State changes go to the
``report`` callback (and ``adapter.status()``); every adapter serves only the users its
``AllowedUsers`` lets through.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from platforms.chunking import split_message
from platforms.errors import (
    AdapterConfigError,
    FileTooLarge,
    PermanentError,
    PlatformError,
    ProtocolError,
    scrub,
)
from platforms.files import FileKind, classify, extract_local_files
from platforms.receipts import MiB, Receipt, too_large_reason
from platforms.redact import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destination:
    """Where a message goes: a chat (channel, group, DM), optionally a thread inside it.

    ``thread`` is the platform's thread key: Slack ``thread_ts``, Telegram ``message_thread_id``
    (forum topic), Discord thread channel id. ``reply_to`` is a message id to reply to.
    """

    platform: str
    chat: str
    thread: str | None = None
    reply_to: str | None = None
    # Deliver without a notification sound/badge where the platform can (Telegram
    # disable_notification, Discord's silent flag); Slack has no such option and ignores it.
    silent: bool = False


@dataclass(frozen=True)
class InboundFile:
    """A file attached to an inbound message; fetch it with ``adapter.download``.

    ``ref`` is the platform's handle (Telegram ``file_id``, Slack file id, Discord attachment URL,
    web upload id); ``name`` the file name the user gave it; ``size`` in bytes when the platform
    says (so an oversized file is refused before any byte is fetched). ``url`` is a download URL
    when the platform hands one out with the message (Slack ``url_private``, Discord CDN).
    ``audio`` marks a voice note or audio message (the gateway transcribes those).
    """

    ref: str
    name: str
    size: int | None = None
    url: str | None = None
    audio: bool = False


@dataclass(frozen=True)
class InboundMessage:
    """A message received from a platform, ready for the gateway's router.

    Every human message is delivered, with ``authorized`` saying whether ``allowed_users`` lists
    its sender: the router answers the others with a polite refusal instead of silence. (Messages
    of the bot itself and of other bots are still dropped by the adapters.)

    Two facts let the router keep its manners in group chats (docs/chat.md, "Groups and
    channels"): ``is_group`` — the message was posted where other people read along (a Telegram
    group or supergroup, a Slack channel or group DM, a Discord guild channel or thread), not in a
    one-to-one chat with the bot; ``addressed`` — the message mentions the bot or replies to one
    of its messages, by the platform's own means. When it mentions the bot, the mention is already
    taken out of ``text``.
    """

    platform: str
    chat: str
    thread: str | None
    user_id: str
    user_name: str
    text: str
    message_id: str
    is_self: bool = False
    files: tuple[InboundFile, ...] = ()
    authorized: bool = False
    is_group: bool = False
    addressed: bool = False

    def reply_destination(self) -> Destination:
        """Where a reply to this message belongs (same chat and thread)."""
        return Destination(self.platform, self.chat, self.thread)


@dataclass(frozen=True)
class Limits:
    """What one platform accepts: characters per message, bytes per file kind, files per group."""

    text_length: int
    max_bytes: Mapping[FileKind, int] = field(default_factory=dict)
    group_size: int = 10
    default_max_bytes: int = 10 * MiB

    def bytes_for(self, kind: FileKind) -> int:
        return self.max_bytes.get(kind, self.default_max_bytes)


class AdapterState(enum.StrEnum):
    """Where an adapter's connection stands (shown by the gateway's ``/status``)."""

    CONNECTING = "connecting"  # run() is connecting
    CONNECTED = "connected"  # inbound is flowing
    RETRYING = "retrying"  # the connection dropped; the SDK (or the gateway) reconnects
    CONFLICT = "conflict"  # someone else holds the token (Telegram 409); the gateway retries
    STOPPED = "stopped"  # not running, or run() ended (cancelled, or failed for good)


@dataclass(frozen=True)
class AdapterStatus:
    """A snapshot of an adapter's connection. ``detail`` is one short line without secrets;
    ``since`` is the wall-clock time (``time.time()``) the adapter entered ``state``."""

    state: AdapterState
    detail: str = ""
    since: float | None = None


# How an adapter tells its owner about a state change while ``run`` runs: the new state and one
# short line without secrets. Called synchronously from the adapter's task; it must not block.
Report = Callable[[AdapterState, str], None]

_NOT_STARTED = AdapterStatus(AdapterState.STOPPED, "not started")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_file_name(name: str) -> str:
    """A user-given file name made safe to write: no directories, no leading dot, bounded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .") or "file"
    stem, dot, ext = cleaned.rpartition(".")
    if dot and len(ext) <= 10:
        return f"{stem[:100]}.{ext}"
    return cleaned[:110]


def unique_path(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name-2.ext``, ``name-3.ext``… if it is taken."""
    candidate = directory / name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 2
    while candidate.exists():
        candidate = directory / (f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}")
        n += 1
    return candidate
EVERYONE = "*"


@dataclass(frozen=True)
class AllowedUsers:
    """Whom an adapter serves: platform user ids as strings; ``["*"]`` is everyone.

    There is no implicit default: ``[]`` serves nobody (outbound notifications still work), and
    ``None`` is refused, so an absent setting can never open a bot to the world.
    """

    ids: frozenset[str] = frozenset()
    everyone: bool = False

    @classmethod
    def parse(cls, platform: str, value: Sequence[str] | None) -> AllowedUsers:
        if value is None or isinstance(value, str | bytes):
            raise AdapterConfigError(
                f"{platform}: allowed_users must be a list of user ids "
                f'(["*"] for everyone, [] for nobody), not {value!r}',
                platform=platform,
            )
        ids = frozenset(str(u).strip() for u in value)
        if "" in ids:
            raise AdapterConfigError(f"{platform}: allowed_users has an empty id",
                                     platform=platform)
        return cls(ids=ids - {EVERYONE}, everyone=EVERYONE in ids)

    def allows(self, user_id: str) -> bool:
        return self.everyone or user_id in self.ids

    def announce(self, platform: str) -> None:
        """Log, at start, whom the adapter serves when that is surprising (nobody or everyone)."""
        if self.everyone:
            log.warning(
                '%s: allowed_users is ["*"] — everyone who can message the bot is served',
                platform,
            )
        elif not self.ids:
            log.warning(
                "%s: allowed_users is empty — nobody will be served (notifications still go "
                'out); add user ids to platforms.%s.allowed_users, or ["*"] for everyone',
                platform,
                platform,
            )
        else:
            log.info("%s: serving %d allowed user(s)", platform, len(self.ids))


class PlatformAdapter(abc.ABC):
    """One chat platform. Subclasses translate; they never read the environment or config files.

    Lifecycle: ``await run(inbox, report)`` is the adapter's whole inbound side. It connects,
    reports ``connected`` once messages can flow, puts ``InboundMessage`` values into ``inbox``
    (the gateway's router consumes them) and serves until it is cancelled, which it honours
    promptly, leaving no task or socket behind. When the connection is lost for good it raises a
    ``platforms.errors`` exception (never a raw SDK one) after setting its status to ``stopped``
    with the reason; it never retries a failed connection itself, that is its owner's job (the
    gateway's ``AdapterRunner``). Reconnects the platform SDK performs on its own (discord.py,
    slack-sdk's Socket Mode client) happen inside ``run`` and show as ``retrying`` reports.
    Anything concurrent inside an adapter lives in a task group inside ``run``; no adapter
    creates a detached task. ``run`` may be called again after it ended.

    Sends may be used without ``run`` where the platform allows it (all of ours do);
    ``close()`` releases the clients sends opened. ``start()``/``close()`` are a thin wrapper
    for code outside a task group (tests, one-off scripts): ``start`` runs ``run`` in a task of
    the adapter's own and returns once connected (raising what ``run`` raised if it ended
    first); ``close`` cancels it. Constructors take ``allowed_users`` as a required keyword (see
    ``AllowedUsers``).
    """

    name: ClassVar[str]
    users: AllowedUsers
    # Instance values replace these class defaults on the first change / in __init__.
    _status: AdapterStatus = _NOT_STARTED
    _secrets: tuple[str, ...] = ()
    _report: Report | None = None
    _serving: asyncio.Task[None] | None = None  # start()'s task; None under a task group

    @abc.abstractmethod
    async def run(
        self, inbox: asyncio.Queue[InboundMessage], report: Report | None = None
    ) -> None:
        """Connect, serve ``inbox`` until cancelled; raise a ``platforms.errors`` exception when
        the connection is lost for good. State changes go to ``report`` (see the class doc)."""

    async def start(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        """``run(inbox)`` in a task of this adapter's, returning once it reports ``connected``.

        For code outside a task group only; the gateway runs ``run`` in its own. Raises what
        ``run`` raised if it ended before connecting; a second call while it runs does nothing.
        """
        if self._serving is not None and not self._serving.done():
            return
        connected = asyncio.Event()

        def report(state: AdapterState, detail: str) -> None:
            if state is AdapterState.CONNECTED:
                connected.set()

        task = asyncio.create_task(self.run(inbox, report), name=f"{self.name}-run")
        task.add_done_callback(self._served)
        self._serving = task
        waiter = asyncio.create_task(connected.wait(), name=f"{self.name}-connected")
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done() and not connected.is_set():
                await self._stop_serving()  # start() itself was cancelled
        if task.done() and not connected.is_set():
            self._serving = None
            task.result()  # raises run()'s error

    def _served(self, task: asyncio.Task[None]) -> None:
        # start()'s task ended by itself after connecting: its error is in status() and the log
        # already; retrieve it so asyncio does not warn that nobody did.
        if not task.cancelled():
            task.exception()

    async def _stop_serving(self) -> None:
        """Cancel and await ``start()``'s task, if any (the first thing ``close()`` does)."""
        task, self._serving = self._serving, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # close() itself was cancelled, not just the task it awaited
            except Exception as exc:  # its error is in status() already
                log.debug("%s: run ended with %s while closing", self.name, exc)

    async def whoami(self) -> str | None:
        """Ask the platform who this bot is, with one authenticated call (Telegram ``getMe``,
        Slack ``auth.test``, Discord ``GET /users/@me``): the bot's name, or None where there
        is nothing to ask. Raises the mapped ``platforms.errors`` exception (a refused token is
        an ``AuthError``). Needs no ``run``; ``close()`` afterwards."""
        return None

    @abc.abstractmethod
    async def send(self, dest: Destination, text: str) -> Receipt:
        """Send text, split into chunks of at most ``limits().text_length``, into the thread."""

    @abc.abstractmethod
    async def send_document(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt: ...

    @abc.abstractmethod
    async def send_video(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt: ...

    @abc.abstractmethod
    async def send_multiple_images(
        self, dest: Destination, paths: Sequence[Path], caption: str | None = None
    ) -> list[Receipt]:
        """Send images inline, grouped up to ``limits().group_size`` per message."""

    @abc.abstractmethod
    def limits(self) -> Limits: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop ``start()``'s task (``_stop_serving``) and release the clients sends opened."""

    def extract_local_files(self, text: str) -> tuple[list[Path], str]:
        """Local files mentioned in ``text`` and the text without them (see ``platforms.files``)."""
        return extract_local_files(text)

    def status(self) -> AdapterStatus:
        """The connection's current state, for ``/status`` (cheap; never does I/O)."""
        return self._status

    async def typing(self, dest: Destination) -> None:
        """Show that the bot is working on an answer at ``dest`` (Telegram "typing…", Discord's
        typing indicator, a reaction on Slack). Best effort: the default does nothing, and an
        adapter never raises from it. The router repeats it every few seconds while it works."""
        return None

    async def download(self, file: InboundFile, dest_dir: Path, max_bytes: int) -> Path:
        """Fetch an inbound file into ``dest_dir`` (created if needed); the path written.

        Refuses with ``FileTooLarge`` when the file is (or turns out, while streaming) larger than
        ``max_bytes`` — nothing partial is left behind. The name is made safe for the file system
        (no directories, no leading dots) and made unique within ``dest_dir``."""
        raise PermanentError(f"{self.name}: receiving files is not supported", platform=self.name)

    def numbers_parts(self, dest: Destination) -> bool:
        """Whether a message split into parts gets "(1/3)" markers at ``dest``.

        Outside a thread other messages can land between the parts, so they are numbered; inside
        a thread they stay together and are not. Adapters may decide otherwise.
        """
        return dest.thread is None

    # --- helpers shared by the real adapters ----------------------------------------------------

    def refuse_size(self, file: InboundFile, max_bytes: int) -> None:
        """Raise ``FileTooLarge`` before fetching a file the platform says is too large."""
        if file.size is not None and file.size > max_bytes:
            raise FileTooLarge(
                f"{safe_file_name(file.name)}: {too_large_reason(file.size, max_bytes)}",
                size=file.size,
                limit=max_bytes,
                platform=self.name,
            )

    async def save_stream(
        self,
        file: InboundFile,
        chunks: AsyncIterator[bytes],
        dest_dir: Path,
        max_bytes: int,
    ) -> Path:
        """Write ``chunks`` to a unique safe name in ``dest_dir``, stopping (and removing the part
        written) as soon as more than ``max_bytes`` arrived."""
        self.refuse_size(file, max_bytes)
        await asyncio.to_thread(dest_dir.mkdir, parents=True, exist_ok=True)
        target = await asyncio.to_thread(unique_path, dest_dir, safe_file_name(file.name))
        part = target.with_name(f".{target.name}.part")
        size = 0
        try:
            with part.open("wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileTooLarge(
                            f"{target.name}: {too_large_reason(size, max_bytes)}",
                            size=size,
                            limit=max_bytes,
                            platform=self.name,
                        )
                    fh.write(chunk)
            part.replace(target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return target

    def _set_status(self, state: AdapterState, detail: str = "") -> bool:
        """Record the connection state; True if state or detail changed (worth a log line)."""
        detail = redact(detail, self._secrets)
        old = self._status
        if old.state is state and old.detail == detail:
            return False
        since = old.since if old.state is state and old.since is not None else time.time()
        self._status = AdapterStatus(state, detail, since)
        if self._report is not None:
            self._report(state, detail)
        return True

    def begin_run(self, report: Report | None) -> None:
        """The first thing ``run`` does: route state changes to ``report``, say ``connecting``
        and whom the adapter serves."""
        self._report = report
        self._set_status(AdapterState.CONNECTING, "connecting")
        self.users.announce(self.name)

    def message_parts(
        self,
        dest: Destination,
        text: str,
        *,
        limit: int | None = None,
        length: Callable[[str], int] = len,
        protect: re.Pattern[str] | None = None,
    ) -> list[str]:
        """``text`` split for ``dest``: fences balanced, numbered where ``numbers_parts`` says."""
        return split_message(
            text,
            limit or self.limits().text_length,
            length=length,
            number=self.numbers_parts(dest),
            protect=protect,
        )

    def map_exception(
        self, exc: BaseException, map_error: Callable[[BaseException], PlatformError | None]
    ) -> PlatformError | None:
        """``exc`` as a ``platforms.errors`` exception with secrets masked (None: not ours)."""
        mapped = exc if isinstance(exc, PlatformError) else map_error(exc)
        return None if mapped is None else scrub(mapped, self._secrets)

    def start_failed(
        self,
        exc: BaseException,
        map_error: Callable[[BaseException], PlatformError | None],
        *,
        when: str = "start failed",
    ) -> PlatformError:
        """The error ``run()`` raises for ``exc``; the status becomes ``stopped`` with it
        (``when`` says at which point: connecting, or the connection lost later).

        An exception the SDK map does not know (a ``KeyError`` on an unexpected payload, say)
        becomes a ``ProtocolError``: a wrong ``base_url`` is the usual cause. Raise the result
        ``from`` ``chain_for(exc)`` so a token in the original text never reaches a traceback.
        """
        mapped = self.map_exception(exc, map_error)
        if mapped is None:
            text = redact(str(exc), self._secrets)
            mapped = ProtocolError(
                f"{self.name}: unexpected {type(exc).__name__} while connecting"
                + (f": {text}" if text else "")
                + " (is base_url the SDK's API base?)",
                platform=self.name,
            )
        self._set_status(AdapterState.STOPPED, f"{when}: {mapped}")
        return mapped

    def chain_for(self, exc: BaseException) -> BaseException | None:
        """``exc`` as a ``__cause__`` if no message in its chain holds a secret, else None."""
        seen: set[int] = set()
        cur: BaseException | None = exc
        while cur is not None and id(cur) not in seen:
            seen.add(id(cur))
            if redact(str(cur), self._secrets) != str(cur):
                return None
            cur = cur.__cause__ or cur.__context__
        return exc

    def check_file(self, path: Path, kind: FileKind | None = None) -> Receipt | None:
        """A refusal receipt if ``path`` is missing or over the platform limit, else None.

        Runs before any upload so an oversize file never leaves the host.
        """
        name = path.name
        try:
            st = path.stat()
        except OSError:
            return Receipt.rejected(f"{name}: file not found", name=name)
        if not path.is_file():
            return Receipt.rejected(f"{name}: not a regular file", name=name)
        limit = self.limits().bytes_for(kind or classify(path) or FileKind.DOCUMENT)
        if st.st_size > limit:
            return Receipt.too_large(st.st_size, limit, name=name)
        return None

    async def send_parts(
        self, parts: Sequence[str], send_one: Callable[[str], Awaitable[Receipt]]
    ) -> Receipt:
        """Send a message split into ``parts`` in order, stopping at the first failure.

        The failure receipt says how many parts already went out, so a retry knows it would
        duplicate them; all delivered message ids are returned on success.
        """
        if not parts:
            return Receipt.rejected("empty message")
        ids: list[str] = []
        for part in parts:
            receipt = await send_one(part)
            if not receipt.ok:
                if ids:
                    return Receipt.failed(
                        f"{receipt.reason} (after {len(ids)} of {len(parts)} parts)",
                        retryable=receipt.retryable,
                        retry_after=receipt.retry_after,
                    )
                return receipt
            ids.extend(receipt.message_ids)
        return Receipt.delivered(ids)

    async def guarded(
        self,
        call: Callable[[], Awaitable[Sequence[str]]],
        map_error: Callable[[BaseException], PlatformError | None],
        *,
        name: str | None = None,
    ) -> Receipt:
        """Run one platform call; turn its message ids or its mapped exception into a receipt."""
        try:
            ids = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = self.map_exception(exc, map_error)
            if mapped is None:
                raise
            log.warning("%s send failed: %s", self.name, mapped)
            return Receipt.from_error(mapped, name=name)
        return Receipt.delivered(ids, name=name)
