"""What every chat agent is given and must provide: a :class:`Turn` in, the reply text out.

Kept apart from :mod:`gateway.chat.agents` (which builds the agents) so that an agent module such
as :mod:`gateway.chat.openai_agent` can name the turn without importing the module that imports
it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.chat.history import Entry
from gateway.chat.tools import ThreadTools
from platforms.base import InboundMessage


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


__all__ = ["Agent", "Turn"]
