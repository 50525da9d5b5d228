"""What every dashboard request shares: the boards, the live config, profiles, the live hub."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import Config
from gateway.dashboard.live import LiveHub
from gateway.dashboard.views import BoardViews
from kanban import Boards
from kanban.agents.profiles import Profiles
from platforms.web import WebAdapter


@dataclass
class DashboardState:
    home: Path
    config: Config  # replaced (never mutated) when the Orchestration panel writes config.yaml
    boards: Boards
    profiles: Profiles
    live: LiveHub
    web_adapter: WebAdapter | None = None
    views: BoardViews = field(default_factory=BoardViews)
    config_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Called with the new Config after config.yaml changed (the daemon re-reads its settings).
    config_listeners: list[Callable[[Config], None]] = field(default_factory=list)
