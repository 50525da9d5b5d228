"""The agent behind free text (``agent.kind``): ``none``, ``command`` or ``openai``.

Each agent gets a :class:`Turn` — the message, the thread's recent history, the files that came
with it (already downloaded), and :class:`~gateway.chat.tools.ThreadTools` to act on the board as
the chat user — and returns the reply text. Local files the reply mentions are sent as
attachments by the router (under the delivery policy).

``command`` runs an external agent CLI once per message: the argv template from config, filled
by the same rule as a worker's command template (:func:`kanban.runtime.template.fill_words`: a
whole-word ``{message}`` goes in verbatim as one argument; inside a script or a larger word only
plain values go, and any other message is not run), the transcript on stdin, the values again in
``RELAYBOARD_CHAT_*`` variables, a working directory per thread, an environment built from the
same allowlist as workers (the gateway's tokens never travel unless ``agent.command.env`` names
them), a timeout and an output cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.chat.openai_agent import OpenAIAgent
from gateway.chat.turn import Agent, Turn
from gateway.config_schema import AgentConfig, CommandAgentConfig
from kanban.errors import TemplateRefused
from kanban.runtime.template import SAFE_CHARS, fill_words, misplaced_placeholders
from kanban.runtime.workerenv import inherited, script_dir, shim_path

log = logging.getLogger(__name__)

HELP = """Commands:
/kanban create TITLE --assignee PROFILE — a new task; its result is posted here
/kanban create TITLE --every "weekdays 09:00" — a recurring task; each result is posted here
/kanban create TITLE --in 2h (or --at 09:00) — a task that starts later
/kanban schedules · /kanban schedule pause|resume|remove S3 · /kanban run-now ID|S3
/kanban list · /kanban show ID · /kanban <verb> … — every `relayboard kanban` verb
/subscribe ID · /unsubscribe ID — follow a task in this thread
/status — the gateway: adapters, boards, workers
/help — this text"""
SLACK_HELP = ("On Slack, type them as !kanban …, !subscribe … "
              "(Slack keeps /commands out of threads).")


def help_text(platform: str) -> str:
    return f"{HELP}\n{SLACK_HELP}" if platform == "slack" else HELP


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


# Each argv placeholder and the variable that carries the same value to the agent.
CHAT_PLACEHOLDERS: Mapping[str, str] = {
    "{message}": "RELAYBOARD_CHAT_MESSAGE", "{user}": "RELAYBOARD_CHAT_USER_NAME",
    "{platform}": "RELAYBOARD_CHAT_PLATFORM", "{chat}": "RELAYBOARD_CHAT_ID",
    "{thread}": "RELAYBOARD_CHAT_THREAD",
}
_WHAT = {"{message}": "message", "{user}": "user name", "{platform}": "platform name",
         "{chat}": "chat id", "{thread}": "thread id"}
SCRIPT_REFUSAL = ("The agent is set up to read messages inside a script, which only accepts plain "
                  "words (letters, digits and _ . / : + -); the operator should pass the message "
                  "as {message} on its own or read stdin / $RELAYBOARD_CHAT_MESSAGE.")
OPTION_REFUSAL = ("I can't pass a message that starts with “{first}” to the agent: it could read "
                  "it as one of its options. Please start the message with a letter or a digit.")
VALUE_REFUSAL = ("The agent cannot be run for this chat: its command cannot take the {what} as "
                 "it is; the operator will find why in the gateway log.")


def chat_values(turn: Turn) -> dict[str, str]:
    """The value of each placeholder of :data:`CHAT_PLACEHOLDERS` for this turn."""
    m = turn.message
    return {"{message}": turn.text, "{user}": m.user_name or m.user_id,
            "{platform}": m.platform, "{chat}": m.chat, "{thread}": m.thread or ""}


def argv_warnings(argv: Sequence[str]) -> list[str]:
    """One line per placeholder that ``agent.command.argv`` puts where only plain values go
    (a script, a larger word): decided from the config alone, so the daemon says it at start."""
    lines = []
    for index, key, reason in misplaced_placeholders(argv, CHAT_PLACEHOLDERS):
        where = "a word a program runs as code" if reason == "code" else "a larger word"
        effect = ("nearly every message will be refused" if key == "{message}"
                  else f"any {_WHAT[key]} not made of {SAFE_CHARS} will be refused")
        lines.append(f"agent.command.argv[{index}] puts {key} inside {where}, where only values "
                     f"made of {SAFE_CHARS} may go, so {effect}: pass {key} as an argv word of "
                     f"its own, or read ${CHAT_PLACEHOLDERS[key]} (or stdin) in the script")
    return lines


def _operator_line(refused: TemplateRefused) -> str:
    """The log line for a refused turn: names the placeholder and the variable, never the
    value (a chat message is not logged)."""
    key, var = refused.placeholder, refused.env_var
    if refused.reason == "option":
        why = (f"{key} is an argv word of its own and this value does not start with a letter, "
               "a digit or / (the agent could read it as an option)")
        fix = f"pass it as --some-flag={key}, or read ${var} or stdin"
    elif refused.reason == "nul":
        return (f"chat agent: not run: the {_WHAT[key]} holds a NUL character, which neither an "
                "argv word nor an environment variable can carry")
    else:
        where = "a word a program runs as code" if refused.reason == "code" else "a larger word"
        why = f"{key} is inside {where} and this value is not made of {SAFE_CHARS}"
        fix = f"pass {key} as an argv word of its own, or read \"${var}\" or stdin in the script"
    return f"chat agent: not run: {why}; {fix}"


def _refuse_nul(values: Mapping[str, str]) -> None:
    """A NUL can be neither an argv word nor an environment value: a value holding one is
    refused even where the argv does not name it (it still travels as a variable)."""
    for key, value in values.items():
        if "\x00" in value:
            raise TemplateRefused(f"{key} value contains a NUL character; refused",
                                  placeholder=key, env_var=CHAT_PLACEHOLDERS[key], reason="nul")


def _user_line(refused: TemplateRefused, values: Mapping[str, str]) -> str:
    key = refused.placeholder
    if key == "{message}" and refused.reason == "option":
        return OPTION_REFUSAL.format(first=values[key][:1])
    if key == "{message}" and refused.reason in ("code", "embedded"):
        return SCRIPT_REFUSAL
    if key == "{message}":
        return "The message holds a NUL character, which no program can receive; send it without."
    return VALUE_REFUSAL.format(what=_WHAT[key])


class CommandAgent:
    kind = "command"

    def __init__(self, settings: CommandAgentConfig, environ: Mapping[str, str],
                 home: Path) -> None:
        self.settings = settings
        self.environ = environ
        self.home = home
        for line in argv_warnings(settings.argv):
            log.warning("chat agent: %s", line)

    def argv(self, turn: Turn) -> list[str]:
        """The argv for this turn. Raises :class:`TemplateRefused` for a value the template
        rule will not place where the config puts it."""
        return fill_words(self.settings.argv, chat_values(turn), CHAT_PLACEHOLDERS)

    def env(self, turn: Turn) -> dict[str, str]:
        env = inherited(self.environ)
        for name in self.settings.env:
            if name in self.environ:
                env[name] = self.environ[name]
        env["PATH"] = shim_path(env.get("PATH"), script_dir())
        env.update({"RELAYBOARD_HOME": str(self.home), "RELAYBOARD_CHAT_USER": turn.message.user_id,
                    "RELAYBOARD_CHAT_FILES": os.pathsep.join(str(p) for p in turn.files)})
        # Every argv value under the name a refusal points the operator to (MESSAGE,
        # USER_NAME, PLATFORM, ID, THREAD): a script reads it quoted, never interpolated.
        env.update({CHAT_PLACEHOLDERS[key]: value for key, value in chat_values(turn).items()})
        return env

    async def reply(self, turn: Turn) -> str:
        values = chat_values(turn)
        try:
            _refuse_nul(values)
            argv = self.argv(turn)
        except TemplateRefused as refused:
            log.warning("%s", _operator_line(refused))
            return _user_line(refused, values)
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
        return OpenAIAgent(config.openai)
    return NoAgent()


__all__: Sequence[str] = ("CHAT_PLACEHOLDERS", "Agent", "CommandAgent", "NoAgent", "Turn",
                          "argv_warnings", "build_agent", "chat_values", "help_text",
                          "transcript")
