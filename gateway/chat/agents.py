"""The agent behind free text (``agent.kind``): ``none``, ``command`` or ``openai``.

Each agent gets a :class:`Turn` — the message, the thread's recent history, the files that came
with it (already downloaded), and :class:`~gateway.chat.tools.ThreadTools` to act on the board as
the chat user — and returns the reply text. Local files the reply mentions are sent as
attachments by the router (under the delivery policy).

``command`` runs an external agent CLI once per message: the argv template from config (values
substituted per element, never through a shell), the transcript on stdin, a working directory
per thread, an environment built from the same allowlist as workers (the gateway's tokens never
travel unless ``agent.command.env`` names them), a timeout and an output cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.chat.history import Entry
from gateway.chat.tools import ThreadTools
from gateway.config import AgentConfig, CommandAgentConfig
from kanban.runtime.workerenv import inherited, script_dir, shim_path
from platforms.base import InboundMessage

log = logging.getLogger(__name__)

HELP = """Commands:
/kanban create TITLE --assignee PROFILE — a new task; its result is posted here
/kanban list · /kanban show ID · /kanban <verb> … — every `relayboard kanban` verb
/subscribe ID · /unsubscribe ID — follow a task in this thread
/status — the gateway: adapters, boards, workers
/help — this text"""
SLACK_HELP = ("On Slack, type them as !kanban …, !subscribe … "
              "(Slack keeps /commands out of threads).")


def help_text(platform: str) -> str:
    return f"{HELP}\n{SLACK_HELP}" if platform == "slack" else HELP


@dataclass
class Turn:
    message: InboundMessage
    text: str
    history: list[Entry]
    files: list[Path]
    tools: ThreadTools
    workdir: Path  # the thread's own folder under the home (downloads land here too)
    notes: list[str] = field(default_factory=list)  # e.g. files that could not be received


class Agent(Protocol):
    kind: str

    async def reply(self, turn: Turn) -> str: ...


class NoAgent:
    """``agent.kind: none``: free text gets the list of commands."""

    kind = "none"

    async def reply(self, turn: Turn) -> str:
        return ("I answer commands here (no agent is configured for free text).\n"
                + help_text(turn.message.platform))


def transcript(turn: Turn) -> str:
    """The text an agent reads: recent history, the files, then the new message."""
    lines: list[str] = []
    if turn.history:
        lines.append("Conversation so far:")
        for e in turn.history:
            who = "assistant" if e.role == "assistant" else (e.name or "user")
            lines.append(f"{who}: {e.text}")
        lines.append("")
    if turn.files:
        lines.append("Files attached to this message:")
        lines.extend(str(p) for p in turn.files)
        lines.append("")
    lines.append(f"{turn.message.user_name or 'user'}: {turn.text}")
    return "\n".join(lines)


class CommandAgent:
    kind = "command"

    def __init__(self, settings: CommandAgentConfig, environ: Mapping[str, str],
                 home: Path) -> None:
        self.settings = settings
        self.environ = environ
        self.home = home

    def argv(self, turn: Turn) -> list[str]:
        m = turn.message
        values = {"{message}": turn.text, "{user}": m.user_name or m.user_id,
                  "{platform}": m.platform, "{chat}": m.chat, "{thread}": m.thread or ""}
        out = []
        for part in self.settings.argv:
            for key, value in values.items():
                part = part.replace(key, value)
            out.append(part)
        return out

    def env(self, turn: Turn) -> dict[str, str]:
        env = inherited(self.environ)
        for name in self.settings.env:
            if name in self.environ:
                env[name] = self.environ[name]
        env["PATH"] = shim_path(env.get("PATH"), script_dir())
        m = turn.message
        env.update({"RELAYBOARD_HOME": str(self.home), "RELAYBOARD_CHAT_PLATFORM": m.platform,
                    "RELAYBOARD_CHAT_ID": m.chat, "RELAYBOARD_CHAT_THREAD": m.thread or "",
                    "RELAYBOARD_CHAT_USER": m.user_id,
                    "RELAYBOARD_CHAT_FILES": os.pathsep.join(str(p) for p in turn.files)})
        return env

    async def reply(self, turn: Turn) -> str:
        argv = self.argv(turn)
        await asyncio.to_thread(turn.workdir.mkdir, parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=turn.workdir, env=self.env(turn),
                start_new_session=True)
        except OSError as exc:
            log.error("chat agent: cannot start %s: %s", argv[0], exc)
            return f"The agent could not be started ({Path(argv[0]).name}: {exc.strerror})."
        cap = self.settings.max_output_bytes
        try:
            out, err = await asyncio.wait_for(
                _communicate(proc, transcript(turn).encode(), cap), self.settings.timeout)
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            return f"The agent did not answer within {self.settings.timeout:g} s."
        except BaseException:
            _kill(proc)
            raise
        text = out[:cap].decode("utf-8", "replace").strip()
        if len(out) > cap:
            text += "\n… (output cut at the configured limit)"
        if proc.returncode != 0:
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            log.warning("chat agent exited %s: %s", proc.returncode, last[0][:200])
            return text or f"The agent failed (exit {proc.returncode}): {last[0][:200]}"
        return text or "(the agent answered nothing)"


async def _communicate(proc: asyncio.subprocess.Process, data: bytes,
                       cap: int) -> tuple[bytes, bytes]:
    """Feed stdin, read stdout up to ``cap`` (+1 byte, to know it was cut; the rest is drained
    and dropped so the process never blocks on a full pipe), keep the tail of stderr."""
    assert proc.stdin and proc.stdout and proc.stderr

    async def feed() -> None:
        assert proc.stdin
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(data)
            await proc.stdin.drain()
            proc.stdin.close()

    async def read(stream: asyncio.StreamReader, keep: int, tail: bool) -> bytes:
        buf = bytearray()
        while chunk := await stream.read(65536):
            buf.extend(chunk)
            if len(buf) > keep:
                buf = buf[-keep:] if tail else buf[:keep]
        return bytes(buf)

    _, out, err = await asyncio.gather(feed(), read(proc.stdout, cap + 1, False),
                                       read(proc.stderr, 4096, True))
    await proc.wait()
    return out, err


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def build_agent(config: AgentConfig, environ: Mapping[str, str], home: Path) -> Agent:
    if config.kind == "command":
        return CommandAgent(config.command, environ, home)
    if config.kind == "openai":
        from gateway.chat.openai_agent import OpenAIAgent

        return OpenAIAgent(config.openai)
    return NoAgent()


__all__: Sequence[str] = ("Agent", "CommandAgent", "NoAgent", "Turn", "build_agent",
                          "help_text", "transcript")
