"""The chat router and the agent behind it.

Inbound messages (from every adapter, through the daemon's inbox) → :class:`ChatRouter`:
authorization, one conversation at a time per thread, commands (``/kanban …``, ``/subscribe``,
``/unsubscribe``, ``/status``, ``/help``; ``!…`` on Slack), the agent for free text
(``agent.kind``: none, command, openai), inbound files, and replies with their files.
"""

from gateway.chat.agents import Agent, CommandAgent, NoAgent, Turn, build_agent, help_text
from gateway.chat.commands import render_status, split_command
from gateway.chat.history import Entry, History, thread_key
from gateway.chat.reply import backticked_files, send_reply
from gateway.chat.router import REFUSAL, ChatRouter, RouterSettings
from gateway.chat.tools import ThreadTools

__all__ = [
    "REFUSAL",
    "Agent",
    "ChatRouter",
    "CommandAgent",
    "Entry",
    "History",
    "NoAgent",
    "RouterSettings",
    "ThreadTools",
    "Turn",
    "backticked_files",
    "build_agent",
    "help_text",
    "render_status",
    "send_reply",
    "split_command",
    "thread_key",
]
