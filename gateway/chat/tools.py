"""What a chat thread may do on the board, through the shared command layer.

:class:`ThreadTools` is bound to one message: the chat user (``ChatUser``, the identity every
write is recorded under), the thread's destination (for subscriptions) and the files that came
with the message. ``/kanban …`` typed in chat and the ``openai`` agent's tools both end here, so
a task created either way is auto-subscribed to the thread and gets the message's files: they go
to the board with the create itself (``attachments=``), which puts them in the task's
``attachments/<id>/`` before anyone can see the task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from gateway.commands import (
    ChatUser,
    CreateRequest,
    Request,
    Services,
    SubscribeRequest,
    UnsubscribeRequest,
    UsageError,
    execute,
    parse_command,
    render_text,
)
from gateway.commands.results import Result, TaskCreated
from kanban import KanbanError
from platforms.base import Destination

log = logging.getLogger(__name__)


class ThreadTools:
    def __init__(self, services: Services, caller: ChatUser, dest: Destination,
                 files: Sequence[Path] = ()) -> None:
        self.services = services
        self.caller = caller
        self.dest = dest
        self.files = list(files)
        self._downloads = list(files)  # the router's copies, removed once a task holds them
        self.created: list[int] = []

    # ---- the command layer ---------------------------------------------------------------
    async def kanban(self, text: str) -> str:
        """``/kanban <verb> …`` → one short chat reply (usage errors: one line and a hint)."""
        try:
            request = parse_command(text)
        except UsageError as exc:
            return str(exc)
        return await self.run(request)

    async def run(self, request: Request) -> str:
        if isinstance(request, CreateRequest) and self.files:
            names = ", ".join(p.name for p in self.files)
            note = f"Files from chat (in this task's attachments): {names}"
            body = f"{request.body}\n\n{note}" if request.body else note
            request = dataclasses.replace(request, body=body,
                                          attachments=tuple(str(p) for p in self.files))
        try:
            result = await execute(request, self.caller, self.services)
        except KanbanError as exc:
            return str(exc)
        return await self.after(request, result)

    async def after(self, request: Request, result: Result) -> str:
        text = render_text(result)
        if isinstance(result, TaskCreated):
            task_id = result.task.id
            self.created.append(task_id)
            lines = [text]
            if self.files:
                lines.append(await self._attached(result))
            lines.append(await self._subscribe(request, task_id))
            return "\n".join(line for line in lines if line)
        return text

    async def subscribe(self, task_id: int) -> str:
        return await self._follow(SubscribeRequest, task_id) or (
            f"Following #{task_id} here: its result will be posted {self._where()}.")

    async def unsubscribe(self, task_id: int) -> str:
        return await self._follow(UnsubscribeRequest, task_id) or (
            f"No longer following #{task_id} here.")

    # ---- helpers ---------------------------------------------------------------------------
    async def _follow(self, verb: type[SubscribeRequest | UnsubscribeRequest], task_id: int,
                      board: str | None = None) -> str | None:
        """(Un)subscribe this thread; the refusal's line, or None."""
        try:
            await execute(verb(task_id=task_id, platform=self.dest.platform, chat=self.dest.chat,
                               thread=self.dest.thread, board=board), self.caller, self.services)
        except KanbanError as exc:
            return str(exc)
        return None

    async def _subscribe(self, request: Request, task_id: int) -> str:
        refused = await self._follow(SubscribeRequest, task_id, request.board)
        return (f"(not subscribed: {refused})" if refused
                else f"I'll post the result {self._where()}.")

    def _where(self) -> str:
        """"in this thread" inside a thread (a Slack thread, a forum topic, a Discord thread);
        plain "here" in a private chat or a channel's main timeline, which have none."""
        return "in this thread" if self.dest.thread is not None else "here"

    async def _attached(self, result: TaskCreated) -> str:
        """Say which files went with the new task. From now on the thread's files are those
        durable copies (a second task made in the same turn copies them from there), and the
        downloads they were made from go."""
        if not result.created:
            return "(the files were not attached: that task already existed)"
        stored = [Path(p) for p in result.task.metadata.get("inputs", []) if isinstance(p, str)]
        self.files = stored
        downloads, self._downloads = self._downloads, []
        await asyncio.to_thread(_remove_downloads, downloads)
        return f"Attached: {', '.join(p.name for p in stored)}"


def _remove_downloads(files: Sequence[Path]) -> None:
    for path in files:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("chat: could not remove the download %s: %s", path.name, exc)
