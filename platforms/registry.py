"""Adapters by name, so the gateway can build one from a config block.

The gateway resolves secrets (``token_env`` etc.) and passes plain values; ``allowed_users`` is
always explicit (``[]`` serves nobody, ``["*"]`` everyone)::

    adapter = create_adapter("telegram", allowed_users=["42"], token="123:abc")
    adapter = create_adapter("slack", allowed_users=["U024BE7LH"], bot_token="xoxb-…",
                             app_token="xapp-…")
    adapter = create_adapter("discord", allowed_users=[], token="…", base_url=None,
                             gateway_url=None)
    adapter = create_adapter("fake", allowed_users=["*"])

``base_url`` is each SDK's own API base as that SDK spells it: ``https://api.telegram.org/bot``
(python-telegram-bot), ``https://slack.com/api/`` (slack-sdk), ``https://discord.com/api/v10``
(discord.py's ``Route.BASE``).

SDK modules are imported lazily: building a Telegram adapter does not import discord.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from platforms.base import PlatformAdapter
from platforms.errors import AdapterConfigError

# name -> "module:Class". Adding a platform = one module plus one line here.
ADAPTERS: dict[str, str] = {
    "telegram": "platforms.telegram:TelegramAdapter",
    "slack": "platforms.slack:SlackAdapter",
    "discord": "platforms.discord:DiscordAdapter",
    "fake": "platforms.fake:FakeAdapter",
    "web": "platforms.web:WebAdapter",
}


def adapter_class(name: str) -> type[PlatformAdapter]:
    try:
        target = ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise AdapterConfigError(f"unknown platform {name!r} (known: {known})") from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, PlatformAdapter)):
        raise AdapterConfigError(f"{target} is not a PlatformAdapter")
    return cls


def create_adapter(name: str, *, allowed_users: Sequence[str], **options: Any) -> PlatformAdapter:
    """Build the adapter ``name`` from plain keyword options (unknown options are an error)."""
    cls = adapter_class(name)
    try:
        return cls(allowed_users=allowed_users, **options)  # type: ignore[call-arg]
    except TypeError as exc:
        raise AdapterConfigError(f"bad options for platform {name!r}: {exc}") from exc
