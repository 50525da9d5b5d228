"""``WebAdapter``: the browser chat, a platform like the others, served as an ASGI sub-app.

The gateway mounts :meth:`WebAdapter.asgi_app` under its dashboard (``/chat``), so the browser
user is whoever the dashboard authenticated; this module adds no authentication of its own and
never imports ``gateway``. Inbound: ``POST /messages`` puts an :class:`InboundMessage` into the
inbox given to :meth:`start` (the router consumes it like a Slack or Telegram message). Outbound:
every ``send*`` stores a message in its thread — in memory, and as one JSON line in a bounded
per-thread history file when a history directory is given — and pushes it to the open browsers
over server-sent events (``GET /stream``, resumable with ``Last-Event-ID``; a browser too slow
to keep up is dropped and resumes so, see :mod:`platforms.sse`).

Files: a sent file is copied into the history directory (so the picture in the chat outlives the
task's workspace) and is served back under an unguessable id; ``GET /files/{id}/{name}`` serves
only files this adapter was asked to send, never a path a browser names.

Routes (relative to the mount point)::

    GET  /threads                  thread ids with their last message
    GET  /messages?thread=T        the thread's messages (oldest first)
    POST /messages                 {"thread": T, "text": "...", "files": [ref…]} -> the stored
                                   user message
    POST /upload?name=data.csv     the raw bytes of one file -> {"ref", "name", "size"}, a ref to
                                   send with the next message (``adapter.download`` fetches it)
    GET  /stream                   SSE: every new message of every thread ("message" events) and
                                   "typing" events ({"thread": T}) while the gateway works
    GET  /files/{id}/{name}        an attachment: inline only for a raster image (PNG, JPEG,
                                   GIF, WebP by name and first bytes), else a download; always
                                   sandboxed (see :mod:`platforms.http_safety`)

JSON bodies are capped at :data:`~platforms.http_safety.JSON_BODY_LIMIT`, uploads at
``max_bytes``; a larger body is refused with 413 without being read.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import shutil
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, Router

from platforms import sse
from platforms.base import (
    AdapterState,
    Destination,
    InboundFile,
    InboundMessage,
    Limits,
    PlatformAdapter,
    Report,
)
from platforms.chunking import split_text
from platforms.errors import PermanentError, WebChatError
from platforms.files import FileKind, classify
from platforms.http_safety import (
    JSON_BODY_LIMIT,
    SNIFF_BYTES,
    BodyTooLarge,
    file_response,
    parse_json,
    raster_by_name,
    read_body,
)
from platforms.private_files import (
    append_text,
    copy_private,
    private_dirs,
    tighten_tree,
    write_private_bytes,
    write_private_text,
)
from platforms.receipts import MiB, Receipt, too_large_reason

log = logging.getLogger(__name__)

THREAD_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
DEFAULT_THREAD = "main"
DEFAULT_CHAT = "dashboard"
MAX_INBOUND_CHARS = 8000


@dataclass(frozen=True)
class WebFile:
    """One attachment of a message. ``path`` stays on the server; browsers get ``url``."""

    id: str
    name: str
    kind: str  # a FileKind value
    size: int
    path: Path

    def public(self) -> dict[str, Any]:
        # The page puts "image" files in <img>; only raster formats are shown that way (an SVG,
        # even one kept in an older history file as an image, is offered as a download).
        kind = self.kind
        if kind == FileKind.IMAGE.value and not raster_by_name(self.name):
            kind = FileKind.DOCUMENT.value
        return {"id": self.id, "name": self.name, "kind": kind, "size": self.size,
                "url": f"files/{self.id}/{self.name}"}


@dataclass(frozen=True)
class WebMessage:
    seq: int
    chat: str
    thread: str
    role: str  # "user" (typed in the browser) or "bot" (sent by the gateway)
    text: str
    created_at: float
    files: tuple[WebFile, ...] = ()
    user_name: str | None = None

    def public(self) -> dict[str, Any]:
        return {"id": str(self.seq), "seq": self.seq, "chat": self.chat, "thread": self.thread,
                "role": self.role, "text": self.text, "created_at": self.created_at,
                "user_name": self.user_name, "files": [f.public() for f in self.files]}

    def record(self) -> dict[str, Any]:
        data = self.public()
        data["files"] = [{**f.public(), "path": str(f.path)} for f in self.files]
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> WebMessage:
        files = tuple(
            WebFile(id=str(f["id"]), name=str(f["name"]), kind=str(f["kind"]),
                    size=int(f["size"]), path=Path(str(f["path"])))
            for f in data.get("files") or ()
        )
        return cls(seq=int(data["seq"]), chat=str(data["chat"]), thread=str(data["thread"]),
                   role=str(data["role"]), text=str(data.get("text") or ""),
                   created_at=float(data.get("created_at") or 0.0), files=files,
                   user_name=data.get("user_name"))


@dataclass(frozen=True)
class _Typing:
    thread: str


@dataclass
class WebAdapter(PlatformAdapter):
    """The dashboard's chat. ``history_dir`` (given by the gateway) keeps ``history_limit``
    messages per thread across restarts; without it history lives in memory only."""

    name = "web"
    history_dir: Path | None = None
    history_limit: int = 500
    chat: str = DEFAULT_CHAT
    user_id: str = "web"
    user_name: str = "You"
    text_length: int = 16_000
    max_bytes: int = 50 * MiB
    group_size: int = 10
    allowed_users: Sequence[str] | None = None  # accepted for config symmetry; the router decides
    _inbox: asyncio.Queue[InboundMessage] | None = field(default=None, repr=False)
    _threads: dict[str, deque[WebMessage]] = field(default_factory=dict, repr=False)
    _files: dict[str, WebFile] = field(default_factory=dict, repr=False)
    _fanout: sse.Fanout[WebMessage | _Typing] = field(default_factory=sse.Fanout, repr=False)
    _uploads: dict[str, WebFile] = field(default_factory=dict, repr=False)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _loaded: bool = False
    closed: bool = False

    # ---- lifecycle ----------------------------------------------------------------------------
    async def run(
        self, inbox: asyncio.Queue[InboundMessage], report: Report | None = None
    ) -> None:
        """Accept browser messages into ``inbox`` until cancelled. There is no connection to
        lose: the browsers reach it through the dashboard's server, which serves the routes."""
        self._report = report
        try:
            await self.start(inbox)
            await asyncio.Event().wait()  # nothing to do but be there; cancelled to stop
        finally:
            await self.close()

    async def start(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        """Open for messages at once (no task: the routes do the work); ``close`` ends it."""
        self._inbox = inbox
        self.closed = False
        await self.load_history()
        self._set_status(AdapterState.CONNECTED, "web chat")

    async def close(self) -> None:
        self.closed = True
        self._set_status(AdapterState.STOPPED, "closed")
        self._fanout.close()

    async def load_history(self) -> None:
        """Read the history files once (also done lazily by the first request)."""
        if self._loaded:
            return
        self._loaded = True
        if self.history_dir is None:
            return
        # A folder an older version left readable (0755, files 0644) is made private first.
        await asyncio.to_thread(tighten_tree, self.history_dir)
        messages = await asyncio.to_thread(_read_history, self.history_dir, self.history_limit)
        top = 0
        for message in messages:
            self._thread(message.thread).append(message)
            for f in message.files:
                self._files[f.id] = f
            top = max(top, message.seq)
        self._seq = itertools.count(top + 1)

    def limits(self) -> Limits:
        return Limits(text_length=self.text_length, max_bytes={k: self.max_bytes for k in FileKind},
                      group_size=self.group_size, default_max_bytes=self.max_bytes)

    # ---- reading (for the gateway and tests) --------------------------------------------------
    def messages(self, thread: str = DEFAULT_THREAD) -> list[WebMessage]:
        return list(self._threads.get(thread, ()))

    def threads(self) -> list[str]:
        return sorted(self._threads)

    # ---- sending ------------------------------------------------------------------------------
    async def send(self, dest: Destination, text: str) -> Receipt:
        thread = self._dest_thread(dest)
        if isinstance(thread, Receipt):
            return thread
        parts = split_text(text, self.text_length)
        if not parts:
            return Receipt.rejected("empty message")
        ids = [str((await self._store(thread, "bot", part)).seq) for part in parts]
        return Receipt.delivered(ids)

    async def send_document(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        return (await self._send_files(dest, [path], caption, FileKind.DOCUMENT))[0]

    async def send_video(
        self, dest: Destination, path: Path, caption: str | None = None
    ) -> Receipt:
        return (await self._send_files(dest, [path], caption, FileKind.VIDEO))[0]

    async def send_multiple_images(
        self, dest: Destination, paths: Sequence[Path], caption: str | None = None
    ) -> list[Receipt]:
        receipts: list[Receipt] = []
        for start in range(0, len(paths), self.group_size):
            group = list(paths[start:start + self.group_size])
            receipts.extend(await self._send_files(
                dest, group, caption if start == 0 else None, FileKind.IMAGE))
        return receipts

    async def _send_files(self, dest: Destination, paths: list[Path], caption: str | None,
                          kind: FileKind) -> list[Receipt]:
        thread = self._dest_thread(dest)
        if isinstance(thread, Receipt):
            return [thread for _ in paths] or [thread]
        refusals: list[Receipt] = []
        accepted: list[Path] = []
        for path in paths:
            refusal = self.check_file(path, kind)
            if refusal is None:
                accepted.append(path)
            else:
                refusals.append(refusal)
        if not accepted:
            return refusals or [Receipt.rejected("no files")]
        try:
            files = [await self._keep(path, kind) for path in accepted]
        except OSError as exc:
            name = accepted[0].name
            return [*refusals, Receipt.failed(f"{name}: cannot store file ({exc.strerror})",
                                              retryable=True, name=name)]
        message = await self._store(thread, "bot", caption or "", files=tuple(files))
        return [*refusals, *(Receipt.delivered([str(message.seq)], name=f.name) for f in files)]

    def _dest_thread(self, dest: Destination) -> str | Receipt:
        thread = dest.thread or DEFAULT_THREAD
        if not THREAD_RE.match(thread):
            return Receipt.rejected("invalid web chat thread")
        return thread

    async def _keep(self, path: Path, kind: FileKind) -> WebFile:
        """Register a file for download; with a history directory, copy it there first."""
        file_id = secrets.token_urlsafe(12)
        name = _safe_name(path.name)
        target = None if self.history_dir is None else self.history_dir / "files" / file_id / name
        real, size = await asyncio.to_thread(_place, path, target, self.history_dir)
        actual = classify(path)
        kind_value = (FileKind.IMAGE if kind is FileKind.IMAGE and actual is FileKind.IMAGE
                      else (actual or kind))
        web_file = WebFile(id=file_id, name=name, kind=kind_value.value, size=size, path=real)
        self._files[file_id] = web_file
        return web_file

    async def _store(self, thread: str, role: str, text: str, *,
                     files: tuple[WebFile, ...] = (), user_name: str | None = None) -> WebMessage:
        await self.load_history()
        message = WebMessage(seq=next(self._seq), chat=self.chat, thread=thread, role=role,
                             text=text, created_at=time.time(), files=files, user_name=user_name)
        self._thread(thread).append(message)
        self._fanout.publish(message)
        if self.history_dir is not None:
            async with self._write_lock:
                await asyncio.to_thread(_append_history, self.history_dir, message,
                                        self.history_limit)
        return message

    def _thread(self, thread: str) -> deque[WebMessage]:
        queue = self._threads.get(thread)
        if queue is None:
            queue = self._threads[thread] = deque(maxlen=self.history_limit)
        return queue

    # ---- receiving ----------------------------------------------------------------------------
    async def receive(self, text: str, *, thread: str = DEFAULT_THREAD,
                      files: Sequence[str] = ()) -> WebMessage:
        """What ``POST /messages`` does: store the user's message and hand it to the router.
        ``files`` are refs from ``POST /upload``. The browser user is whoever the dashboard let
        in, so the message is ``authorized``."""
        if self._inbox is None or self.closed:
            raise WebChatError(503, "the chat is not running")
        if not THREAD_RE.match(thread):
            raise WebChatError(400, "invalid thread id")
        text = text.strip()
        uploads = []
        for ref in files:
            upload = self._uploads.get(str(ref))
            if upload is None:
                raise WebChatError(400, "unknown file ref (upload it first)")
            uploads.append(upload)
        if not text and not uploads:
            raise WebChatError(400, "empty message")
        if len(text) > MAX_INBOUND_CHARS:
            raise WebChatError(400, f"message too long (over {MAX_INBOUND_CHARS} characters)")
        if self._inbox.full():
            raise WebChatError(503, "the gateway is busy; try again in a moment")
        message = await self._store(thread, "user", text, user_name=self.user_name,
                                    files=tuple(uploads))
        self._inbox.put_nowait(InboundMessage(
            platform=self.name, chat=self.chat, thread=thread, user_id=self.user_id,
            user_name=self.user_name, text=text, message_id=str(message.seq),
            files=tuple(InboundFile(u.id, u.name, u.size) for u in uploads), authorized=True))
        return message

    async def upload(self, name: str, data: bytes) -> WebFile:
        """Keep an uploaded file for the next message (what ``POST /upload`` does)."""
        if len(data) > self.max_bytes:
            reason = too_large_reason(len(data), self.max_bytes)
            raise WebChatError(413, f"{_safe_name(name)}: {reason}")
        if not data:
            raise WebChatError(400, "empty file")
        file_id = secrets.token_urlsafe(12)
        safe = _safe_name(name)
        root = (self.history_dir / "uploads") if self.history_dir is not None else Path(
            tempfile.gettempdir()) / "relayboard-web-uploads"
        target = root / file_id / safe
        await asyncio.to_thread(_write_new, target, data, self.history_dir or root)
        kind = classify(target) or FileKind.DOCUMENT
        web_file = WebFile(id=file_id, name=safe, kind=kind.value, size=len(data), path=target)
        self._uploads[file_id] = web_file
        self._files[file_id] = web_file  # shown (and downloadable) in the user's message
        return web_file

    async def download(self, file: InboundFile, dest_dir: Path, max_bytes: int) -> Path:
        upload = self._uploads.get(file.ref)
        if upload is None:
            raise PermanentError(f"{file.name}: no such upload", platform=self.name)
        self.refuse_size(InboundFile(file.ref, file.name, upload.size), max_bytes)
        data = await asyncio.to_thread(upload.path.read_bytes)

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        return await self.save_stream(file, chunks(), dest_dir, max_bytes)

    async def typing(self, dest: Destination) -> None:
        thread = self._dest_thread(dest)
        if isinstance(thread, str):
            self._fanout.publish(_Typing(thread))

    # ---- the ASGI sub-app ---------------------------------------------------------------------
    def asgi_app(self) -> Router:
        """Routes for the gateway to mount (e.g. at ``/chat``), behind its own authentication."""
        return Router(routes=[
            Route("/threads", self._http_threads, methods=["GET"]),
            Route("/messages", self._http_messages, methods=["GET"]),
            Route("/messages", self._http_post, methods=["POST"]),
            Route("/upload", self._http_upload, methods=["POST"]),
            Route("/stream", self._http_stream, methods=["GET"]),
            Route("/files/{file_id}/{name}", self._http_file, methods=["GET"]),
        ])

    async def _http_threads(self, request: Request) -> Response:
        await self.load_history()
        out = []
        for thread, queue in sorted(self._threads.items()):
            last = queue[-1].public() if queue else None
            out.append({"thread": thread, "count": len(queue), "last": last})
        return JSONResponse({"threads": out})

    async def _http_messages(self, request: Request) -> Response:
        await self.load_history()
        thread = request.query_params.get("thread", DEFAULT_THREAD)
        if not THREAD_RE.match(thread):
            return _error(400, "invalid thread id")
        return JSONResponse({"thread": thread,
                             "messages": [m.public() for m in self._threads.get(thread, ())]})

    async def _http_post(self, request: Request) -> Response:
        try:
            body = parse_json(await read_body(request, JSON_BODY_LIMIT))
        except BodyTooLarge as exc:
            return _error(413, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return _error(400, "send {\"text\": \"...\", \"thread\": \"...\"}")
        thread = body.get("thread") or DEFAULT_THREAD
        refs = body.get("files") or []
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            return _error(400, "files must be a list of upload refs")
        try:
            message = await self.receive(body["text"], thread=str(thread), files=refs)
        except WebChatError as exc:
            return _error(exc.status, str(exc))
        return JSONResponse(message.public(), status_code=201)

    async def _http_upload(self, request: Request) -> Response:
        name = request.query_params.get("name") or "file"
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_bytes:
            reason = too_large_reason(int(length), self.max_bytes)
            return _error(413, f"{_safe_name(name)}: {reason}")
        try:
            data = await read_body(request, self.max_bytes)
        except BodyTooLarge:
            return _error(413, f"{_safe_name(name)}: too large")
        try:
            web_file = await self.upload(name, data)
        except WebChatError as exc:
            return _error(exc.status, str(exc))
        return JSONResponse({"ref": web_file.id, "name": web_file.name, "size": web_file.size,
                             "kind": web_file.public()["kind"]}, status_code=201)

    async def _http_stream(self, request: Request) -> Response:
        await self.load_history()
        raw = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
        since = int(raw) if raw.isdigit() else 0
        sub = self._fanout.subscribe()  # before the backlog is taken: nothing falls in between
        backlog = sorted((m for q in self._threads.values() for m in q if m.seq > since),
                         key=lambda m: m.seq)
        return sse.response(self._events(sub, backlog))

    async def _events(self, sub: asyncio.Queue[WebMessage | _Typing | sse.End],
                      backlog: list[WebMessage]) -> AsyncIterator[str]:
        top = backlog[-1].seq if backlog else 0  # messages are published in seq order

        def render(item: WebMessage | _Typing) -> list[str]:
            if isinstance(item, _Typing):
                return [sse.frame("typing", {"thread": item.thread})]
            return [_sse(item)] if item.seq > top else []  # else the backlog had it

        try:
            yield sse.RETRY
            for message in backlog:
                yield _sse(message)
            if not self.closed:
                async for text in self._fanout.live(sub, render):
                    yield text
        finally:
            self._fanout.subscribers.discard(sub)

    async def _http_file(self, request: Request) -> Response:
        web_file = self._files.get(request.path_params["file_id"])
        if web_file is None or web_file.name != request.path_params["name"]:
            return _error(404, "no such file")
        if not web_file.path.is_file():
            return _error(404, "the file is no longer available")
        head = await asyncio.to_thread(_head, web_file.path)
        kind, headers = file_response(web_file.name, head,
                                      download=request.query_params.get("download") == "1")
        return FileResponse(web_file.path, media_type=kind,
                            headers={**headers, "Cache-Control": "private, max-age=3600"})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _sse(message: WebMessage) -> str:
    return sse.frame("message", message.public(), message.seq)


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "file"
    return cleaned[:120]


def _head(path: Path) -> bytes:
    """The first bytes of ``path`` (to tell a real raster image from a renamed file)."""
    try:
        with path.open("rb") as fh:
            return fh.read(SNIFF_BYTES)
    except OSError:
        return b""


def _write_new(target: Path, data: bytes, top: Path) -> None:
    private_dirs(target.parent, top=top)
    write_private_bytes(target, data)


def _place(source: Path, target: Path | None, top: Path | None) -> tuple[Path, int]:
    """Copy ``source`` to ``target`` (when given, 0600 in 0700 folders up to ``top``); the
    path to serve and its size."""
    real = source.resolve()
    if target is not None:
        private_dirs(target.parent, top=top or target.parent)
        copy_private(real, target)
        real = target
    return real, real.stat().st_size


# ---- history files: one JSON line per message, per thread, bounded ----------------------------

def _history_file(directory: Path, thread: str) -> Path:
    return directory / f"{thread}.jsonl"


def _append_history(directory: Path, message: WebMessage, limit: int) -> None:
    private_dirs(directory, top=directory)
    path = _history_file(directory, message.thread)
    with append_text(path) as fh:
        fh.write(json.dumps(message.record(), ensure_ascii=False) + "\n")
    # Compact once the file holds twice the limit: amortised O(1) per message, and bounded.
    with path.open("rb") as fh:
        lines = sum(1 for _ in fh)
    if lines > 2 * limit:
        _compact(path, limit)


def _compact(path: Path, limit: int) -> None:
    with path.open(encoding="utf-8") as fh:
        kept = deque(fh, maxlen=limit)
    temp = path.with_suffix(".tmp")
    write_private_text(temp, "".join(kept))
    temp.replace(path)
    # Files no thread mentions any more are removed with the messages that carried them.
    files_dir = path.parent / "files"
    if files_dir.is_dir():
        referenced = _referenced_files(path.parent)
        for folder in files_dir.iterdir():
            if folder.name not in referenced:
                shutil.rmtree(folder, ignore_errors=True)


def _referenced_files(directory: Path) -> set[str]:
    ids: set[str] = set()
    for message in _read_history(directory, limit=None):
        ids.update(f.id for f in message.files)
    return ids


def _read_history(directory: Path, limit: int | None) -> list[WebMessage]:
    if not directory.is_dir():
        return []
    out: list[WebMessage] = []
    for path in sorted(directory.glob("*.jsonl")):
        if not THREAD_RE.match(path.stem):
            continue
        try:
            with path.open(encoding="utf-8") as fh:
                lines = deque(fh, maxlen=limit) if limit else list(fh)
        except OSError as exc:
            log.warning("web chat history %s unreadable: %s", path.name, exc)
            continue
        for line in lines:
            try:
                out.append(WebMessage.from_record(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                log.warning("web chat history %s: skipped an unreadable line", path.name)
    return out
