"""What a chat thread may do on the board, through the shared command layer.

:class:`ThreadTools` is bound to one message: the chat user (``ChatUser``, the identity every
write is recorded under), the thread's destination (for subscriptions) and the files that came
with the message. ``/kanban …`` typed in chat and the ``openai`` agent's tools both end here, so
a task created either way is auto-subscribed to the thread and gets the message's files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from gateway.commands import (
    ChatUser,
    CreateRequest,
    ListRequest,
    Request,
    Services,
    ShowRequest,
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
            request = dataclasses.replace(request, body=body)
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
            if self.files and result.created:
                lines.extend(await self._attach(request, task_id))
            lines.append(await self._subscribe(request, task_id))
            return "\n".join(line for line in lines if line)
        return text

    async def create(self, title: str, body: str | None = None,
                     assignee: str | None = None) -> str:
        return await self.run(CreateRequest(title=title, body=body, assignee=assignee))

    async def show_task(self, task_id: int) -> str:
        return await self.run(ShowRequest(task_id=task_id))

    async def list_tasks(self, status: str | None = None, assignee: str | None = None) -> str:
        return await self.run(ListRequest(status=status, assignee=assignee, with_bodies=False))

    async def subscribe(self, task_id: int) -> str:
        request = SubscribeRequest(task_id=task_id, platform=self.dest.platform,
                                   chat=self.dest.chat, thread=self.dest.thread)
        try:
            await execute(request, self.caller, self.services)
        except KanbanError as exc:
            return str(exc)
        return f"Following #{task_id} here: its result will be posted in this thread."

    async def unsubscribe(self, task_id: int) -> str:
        request = UnsubscribeRequest(task_id=task_id, platform=self.dest.platform,
                                     chat=self.dest.chat, thread=self.dest.thread)
        try:
            await execute(request, self.caller, self.services)
        except KanbanError as exc:
            return str(exc)
        return f"No longer following #{task_id} here."

    # ---- helpers ---------------------------------------------------------------------------
    async def _subscribe(self, request: Request, task_id: int) -> str:
        sub = SubscribeRequest(task_id=task_id, platform=self.dest.platform, chat=self.dest.chat,
                               thread=self.dest.thread, board=request.board)
        try:
            await execute(sub, self.caller, self.services)
        except KanbanError as exc:
            return f"(not subscribed: {exc})"
        return "I'll post the result in this thread."

    async def _attach(self, request: Request, task_id: int) -> list[str]:
        """Move the message's files into the task's attachments and note their paths on it.

        The task body names the files (written at creation); their full paths go in a comment,
        since the task id — part of the folder — is only known once it exists."""
        board = await self.services.open_board(request, self.caller)
        target = board.attachments_path(task_id)
        placed = await asyncio.to_thread(_move_all, self.files, target)
        if not placed:
            return ["(the attached files could not be stored)"]
        listing = "\n".join(f"- {p}" for p in placed)
        try:
            await board.comment(task_id, f"Files from chat:\n{listing}",
                                author=self.caller.display)
        except KanbanError as exc:
            log.warning("chat: could not note the files on task %d: %s", task_id, exc)
        self.files = placed
        return [f"Attached: {', '.join(p.name for p in placed)}"]


def _move_all(files: Sequence[Path], target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    placed: list[Path] = []
    for source in files:
        dest = target / source.name
        n = 2
        while dest.exists():
            dest = target / f"{source.stem}-{n}{source.suffix}"
            n += 1
        try:
            shutil.move(str(source), dest)
        except OSError as exc:
            log.warning("chat: could not store %s: %s", source.name, exc)
            continue
        placed.append(dest)
    return placed
