"""The chat router: inbound messages from every adapter → commands, the agent, replies.

It consumes the daemon's inbox (adapters only fetch; the router decides). Per conversation (a
chat, or a thread inside it) one message is handled at a time, in arrival order: a message that
arrives while the agent is still working on the previous one waits its turn, and the user sees a
typing indicator meanwhile. Different conversations never wait for each other.

Who is served: only messages the adapter marked ``authorized`` (the platform's
``allowed_users`` and ``admins``). Anyone else gets one polite refusal per user per hour (the
budget is kept in the home, so a restart does not refuse everyone again); nothing
runs, nothing is created, and their text is never logged (the user id is, at INFO, so an
operator can add it). On a ``dm_policy: pairing`` platform a stranger in a one-to-one chat gets a
pairing code instead (see ``pairing``), and once approved is served as a member or an admin.
A served user is an admin when listed in the platform's ``admins``, else a member (docs/chat.md
has the table); the web chat belongs to the dashboard, whose user is the
operator, so its users are admins.

Group manners: in a group chat or channel (the adapter marks the message ``is_group``) free text
goes to the agent only when it is ``addressed`` to the bot — it mentions the bot or replies to one
of its messages; anything else there is left alone, without an answer and without a refusal.
Commands always work. ``platforms.<name>.channels``, when it lists any, limits the groups served
on that platform: a message from a group not listed is ignored, commands too (one-to-one chats are
not affected). Adapters only state the facts; this is the one place that decides.

A voice note or audio message is turned into text by the transcriber (``agent.transcription``,
see ``voice``) and then handled as if it had been typed; the answer starts with one line that
echoes what was heard. Without a transcriber, or when it fails, the user is told so and nothing
runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc

from gateway.chat.agents import Agent, NoAgent, Turn
from gateway.chat.commands import StatusSource, run_command, split_command
from gateway.chat.history import History, entry, thread_key
from gateway.chat.pairing import Full, PairingStore
from gateway.chat.refusals import RefusalBudget, budget_path
from gateway.chat.reply import send_reply
from gateway.chat.tools import ThreadTools
from gateway.chat.voice import NOT_SET_UP, Transcriber, TranscriptionFailed, heard_line
from gateway.commands import ChatUser, Services
from gateway.commands.callers import Role
from platforms.base import Destination, InboundMessage, PlatformAdapter
from platforms.delivery import DeliveryPolicy
from platforms.errors import FileTooLarge, PlatformError
from platforms.receipts import Receipt

log = logging.getLogger(__name__)

REFUSAL = ("Sorry — I only answer people on this bot's allow-list. If you should have access, "
           "ask the person who runs it to add your user id ({user_id}) to "
           "platforms.{platform}.allowed_users.")
PAIRING_CODE = ("Hi! I only answer people the person who runs this bot has let in. Your pairing "
                "code is {code}: send it to them so they can approve it (it expires in an "
                "hour). Until then I won't answer here.")
PAIRING_FULL = ("Hi! I only answer people the person who runs this bot has let in, and too "
                "many requests are waiting right now. Please try again later.")
MAX_QUEUED = 20  # per conversation; beyond this a message is answered "busy" instead
# Platforms whose users are the dashboard's, i.e. the operator's (loopback, or the token).
OPERATOR_PLATFORMS = frozenset({"web"})


@dataclass(frozen=True)
class RouterSettings:
    refusal_interval: float = 3600.0  # one refusal per user per this many seconds
    typing_interval: float = 4.0  # Telegram's indicator lasts ~5 s; repeat before it fades
    max_attachment_bytes: int = 50 * 1024 * 1024
    download_timeout: float = 120.0
    # platform -> user ids that act with the operator's rights (platforms.<name>.admins)
    admins: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # platform -> the group chats served (platforms.<name>.channels); none listed: every group
    channels: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # platforms whose strangers in one-to-one chats get a pairing code (dm_policy: pairing)
    pairing: frozenset[str] = frozenset()

    def role_of(self, platform: str, user_id: str) -> Role:
        if platform in OPERATOR_PLATFORMS or user_id in self.admins.get(platform, ()):
            return "admin"
        return "member"


PolicySource = Callable[[], Awaitable[DeliveryPolicy]]
# platform -> (allowed_users, admins), as the config file reads now
Access = Callable[[str], tuple[frozenset[str], frozenset[str]]]


class ChatRouter:
    def __init__(self, *, services: Services, adapters: Mapping[str, PlatformAdapter],
                 home: Path, agent: Agent | None = None, history: History | None = None,
                 status: StatusSource | None = None, policy: PolicySource | None = None,
                 settings: RouterSettings | None = None,
                 clock: Callable[[], float] = time.time,
                 sent: Callable[[str, Sequence[Receipt]], None] | None = None,
                 transcriber: Transcriber | None = None,
                 access: Access | None = None) -> None:
        """``sent`` hears every reply's receipts, by platform (the gateway's metrics); ``clock``
        is the wall clock the refusal budget (kept in the home, see ``refusals``) reads;
        ``access`` gives a platform's (allowed_users, admins) as config.yaml reads now, so a user
        approved by pairing is served without a restart."""
        self.services = services
        self.adapters = adapters
        self.home = home
        self.agent: Agent = agent or NoAgent()
        self.history = history or History(home / "chat" / "history")
        self.status = status
        self.policy = policy
        self.settings = settings or RouterSettings()
        self.clock = clock
        self.sent = sent
        self.access = access
        self.transcriber = transcriber  # voice notes → text (None: "not set up")
        self._lanes: dict[tuple[str, str, str | None], deque[InboundMessage]] = {}
        self.refusal_budget = RefusalBudget(budget_path(home), self.settings.refusal_interval,
                                            clock)
        self.pairing_store = PairingStore(home, clock)
        self.handled = 0  # messages answered (for tests and status)
        self.refusals = 0

    # ---- the loop --------------------------------------------------------------------------
    async def run(self, inbox: asyncio.Queue[InboundMessage]) -> None:
        async with anyio.create_task_group() as group:
            while True:
                message = await inbox.get()
                self.dispatch(message, group)

    def dispatch(self, message: InboundMessage, group: anyio.abc.TaskGroup) -> None:
        if message.is_self or not self.heeds(message):
            return
        if not message.authorized:
            if message.platform in self.settings.pairing:
                group.start_soon(self._pair, message, group, name="chat-pairing")
            else:
                group.start_soon(self._refuse, message, name="chat-refusal")
            return
        key = (message.platform, message.chat, message.thread)
        lane = self._lanes.get(key)
        if lane is not None:
            if len(lane) >= MAX_QUEUED:
                group.start_soon(self._busy, message, name="chat-busy")
                return
            lane.append(message)  # the conversation is busy: this one waits its turn
            return
        self._lanes[key] = deque([message])
        group.start_soon(self._drain, key, name=f"chat-{message.platform}")

    def heeds(self, message: InboundMessage) -> bool:
        """Whether a message is for the bot at all (see "Group manners" above); one that is not
        gets no answer, not even a stranger's refusal, and its text is never logged."""
        if not message.is_group:
            return True
        for_bot = message.addressed or split_command(message.text, message.platform) is not None
        served = self.settings.channels.get(message.platform)
        if served and message.chat not in served:
            if for_bot:
                log.info("%s: a message for the bot in chat %s ignored: that chat is not in "
                         "platforms.%s.channels", message.platform, message.chat,
                         message.platform, extra={"platform": message.platform})
            return False
        return for_bot

    async def _drain(self, key: tuple[str, str, str | None]) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                message = lane.popleft()
                try:
                    await self.handle(message)
                except Exception:  # one bad message never stops the conversation
                    log.exception("chat: handling a %s message failed", message.platform,
                                  extra={"platform": message.platform})
                    await self._say(message, "Something went wrong on my side; the log has "
                                             "the details.")
        finally:
            del self._lanes[key]

    # ---- one message -------------------------------------------------------------------------
    async def handle(self, message: InboundMessage) -> None:
        adapter = self.adapters.get(message.platform)
        if adapter is None:
            log.warning("chat: a %s message arrived, but that adapter is gone", message.platform,
                        extra={"platform": message.platform})
            return
        dest = message.reply_destination()
        text = message.text.strip()
        works = split_command(text, message.platform) is None and self.agent.kind != "none"
        async with anyio.create_task_group() as group:
            if works or message.files:
                group.start_soon(self._typing, adapter, message, name="chat-typing")
            try:
                outcome = await self._answer(adapter, message, dest, text)
            finally:
                group.cancel_scope.cancel()  # stop the typing indicator
        if isinstance(outcome, Unheard):  # nothing ran: say why, if there is anything to say
            if outcome.reason:
                await self._say(message, outcome.reason, reply=True)
            return
        text, answer, command = outcome
        # A command's answer is text only: a path in a task's title or result it quotes never
        # becomes an upload (a task's files reach chat through its notifications). The agent's
        # answer may carry files, under the delivery policy.
        policy = (await self.policy() if self.policy is not None and not command else None)
        # A command's answer quotes the command (a reply, where the platform has them: Telegram,
        # Discord), so in a busy chat it is clear what it answers; the agent's answers do not.
        to = (dataclasses.replace(dest, reply_to=message.message_id)
              if command and message.message_id else dest)
        receipts = await send_reply(adapter, to, answer, policy)
        if self.sent is not None:
            self.sent(message.platform, receipts)
        await self.history.append(message.platform, message.chat, message.thread,
                                  entry("user", text, message.user_name),
                                  entry("assistant", answer))
        self.handled += 1

    async def _answer(self, adapter: PlatformAdapter, message: InboundMessage,
                      dest: Destination, text: str) -> tuple[str, str, bool] | Unheard:
        """(the text handled, the answer, whether it was a command), or why nothing ran."""
        caller = ChatUser(message.platform, message.user_id, message.user_name or None,
                          role=self._role_of(message.platform, message.user_id),
                          chat=dest.chat, thread=dest.thread)
        workdir = self.thread_dir(message)
        files, recordings, notes = await self._download(adapter, message, workdir)
        echo: list[str] = []  # what was heard, first in the answer (the agent gets the text)
        if recordings or (self.transcriber is None and any(f.audio for f in message.files)):
            heard = await self._listen(recordings)
            if isinstance(heard, Unheard):
                return Unheard("\n".join([*notes, heard.reason]))
            text = f"{text}\n{heard}" if text else heard
            echo.append(heard_line(heard))
        if not text and not files:  # only files that could not be received: the notes say so
            return Unheard("\n".join(notes))
        command = split_command(text, message.platform)
        tools = ThreadTools(self.services, caller, dest, files)
        if command is not None:
            answer = await run_command(*command, tools, message.platform, self.status)
        else:
            history = await self.history.recent(message.platform, message.chat, message.thread)
            turn = Turn(message=message, text=text, history=history, files=files, tools=tools,
                        workdir=workdir, notes=notes)
            answer = await self.agent.reply(turn)
        return text, "\n".join([*echo, *notes, answer]), command is not None

    def thread_dir(self, message: InboundMessage) -> Path:
        """The conversation's own folder: downloaded files, the command agent's cwd."""
        safe = "".join(c for c in message.platform if c.isalnum() or c in "-_") or "chat"
        return self.home / "chat" / "threads" / safe / thread_key(
            message.platform, message.chat, message.thread)

    async def _download(self, adapter: PlatformAdapter, message: InboundMessage,
                        workdir: Path) -> tuple[list[Path], list[Path], list[str]]:
        """The message's files, fetched: (files, voice recordings, one note per failure).
        Recordings are fetched only when there is a transcriber to hear them."""
        files: list[Path] = []
        recordings: list[Path] = []
        notes: list[str] = []
        for ref in message.files:
            if ref.audio and self.transcriber is None:
                continue  # _listen says voice is not set up
            limit = self.settings.max_attachment_bytes
            if ref.audio and self.transcriber is not None:
                limit = min(limit, self.transcriber.max_bytes)
            try:
                with anyio.fail_after(self.settings.download_timeout):
                    path = await adapter.download(ref, workdir / "inbox", limit)
            except FileTooLarge as exc:
                notes.append(f"{ref.name} was not received: {_after_colon(str(exc))}")
            except TimeoutError:
                notes.append(f"{ref.name} was not received: the download timed out")
            except PlatformError as exc:
                log.warning("chat: download of a %s file failed: %s", message.platform, exc,
                            extra={"platform": message.platform})
                notes.append(f"{ref.name} was not received: {_after_colon(str(exc))}")
            else:
                (recordings if ref.audio else files).append(path)
        return files, recordings, notes

    async def _listen(self, recordings: Sequence[Path]) -> str | Unheard:
        """The words of the recordings, or why there are none (then nothing runs and each
        recording stays in the conversation's folder)."""
        if self.transcriber is None:
            return Unheard(NOT_SET_UP)
        texts: list[str] = []
        for path in recordings:
            try:
                words = await self.transcriber.transcribe(path)
            except TranscriptionFailed as exc:
                return Unheard(f"🎙 I could not transcribe your voice note: {exc}. Nothing was "
                               "done — send it again in a moment, or type it.")
            if not words:
                return Unheard("🎙 I heard no words in your voice note; nothing was done.")
            texts.append(words)
        await asyncio.to_thread(_remove, recordings)  # heard: the text is what is kept
        return "\n".join(texts)

    async def _typing(self, adapter: PlatformAdapter, message: InboundMessage) -> None:
        dest = Destination(message.platform, message.chat, message.thread,
                           reply_to=message.message_id or None)
        while True:
            await adapter.typing(dest)
            await anyio.sleep(self.settings.typing_interval)

    # ---- refusals ---------------------------------------------------------------------------
    async def _refuse(self, message: InboundMessage) -> None:
        if not await self.refusal_budget.take(message.platform, message.user_id):
            log.info("%s: message from user %s (not allowed) ignored; refused already",
                     message.platform, message.user_id, extra={"platform": message.platform})
            return
        self.refusals += 1
        log.info("%s: refused a message from user %s (not in allowed_users)",
                 message.platform, message.user_id, extra={"platform": message.platform})
        await self._say(message, REFUSAL.format(user_id=message.user_id,
                                                platform=message.platform))

    # ---- pairing (dm_policy: pairing) ---------------------------------------------------------
    async def _pair(self, message: InboundMessage, group: anyio.abc.TaskGroup) -> None:
        """A stranger's message: served if config.yaml lists them now (an approval since the
        adapter started); else, in a one-to-one chat, told their pairing code (or to try later),
        and in a group refused as under the allow-list."""
        store = self.pairing_store
        role = self._listed_now(message.platform, message.user_id)
        if role is not None:
            self.dispatch(dataclasses.replace(message, authorized=True), group)
            return
        if message.is_group:  # codes are for one-to-one chats; a group has the allow-list's
            await self._refuse(message)
            return
        try:
            outcome = await asyncio.to_thread(store.request, message.platform, message.user_id,
                                              message.user_name)
        except OSError as exc:  # no code can be kept: the allow-list's answer instead
            log.warning("%s: could not record a pairing request in %s: %s", message.platform,
                        store.path.name, exc.strerror or exc,
                        extra={"platform": message.platform})
            await self._refuse(message)
            return
        if isinstance(outcome, Full):
            log.info("%s: no pairing code for user %s: %d requests wait already",
                     message.platform, message.user_id, store.max_pending,
                     extra={"platform": message.platform})
            # Told once an hour at most (the refusal budget), however often they write.
            if await self.refusal_budget.take(message.platform, message.user_id):
                await self._say(message, PAIRING_FULL)
            return
        await self._say(message, PAIRING_CODE.format(code=outcome.code))

    def _listed_now(self, platform: str, user_id: str) -> Role | None:
        """The user's role by config.yaml as it reads now (``access``), if it lists them."""
        if self.access is None:
            return None
        allowed, admins = self.access(platform)
        if user_id in admins:
            return "admin"
        return "member" if user_id in allowed or "*" in allowed else None

    def _role_of(self, platform: str, user_id: str) -> Role:
        """The role the adapter's start-up lists give; on a pairing platform, also ``admins``
        as config.yaml reads now (an ``approve --admin`` since the start)."""
        if platform in self.settings.pairing and self._listed_now(platform, user_id) == "admin":
            return "admin"
        return self.settings.role_of(platform, user_id)

    async def _busy(self, message: InboundMessage) -> None:
        await self._say(message, "I'm still working on your earlier messages; send this one "
                                 "again in a moment.")

    async def _say(self, message: InboundMessage, text: str, *, reply: bool = False) -> None:
        adapter = self.adapters.get(message.platform)
        if adapter is None:
            return
        dest = message.reply_destination()
        if reply and message.message_id:
            dest = dataclasses.replace(dest, reply_to=message.message_id)
        try:
            receipt = await adapter.send(dest, text)
        except PlatformError as exc:
            log.warning("%s: could not answer: %s", message.platform, exc,
                        extra={"platform": message.platform})
            if self.sent is not None:
                self.sent(message.platform, [Receipt.from_error(exc)])
            return
        if self.sent is not None:
            self.sent(message.platform, [receipt])
        if not receipt.ok:
            log.warning("%s: could not answer: %s", message.platform, receipt.reason,
                        extra={"platform": message.platform})


@dataclass(frozen=True)
class Unheard:
    """A voice message that gave no text: ``reason`` is the one line the user gets."""

    reason: str


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("chat: could not remove the recording %s: %s", path.name, exc)


def _after_colon(text: str) -> str:
    """``data.csv: too large (…)`` → ``too large (…)`` (the name is said already)."""
    head, sep, tail = text.partition(": ")
    return tail if sep and " " not in head.strip() else text
