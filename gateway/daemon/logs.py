"""The daemon's logging: one line per record on stderr, with every known secret masked.

Adapters and SDKs should never log a token, but an exception message or a URL (Telegram puts the
token in the path) can carry one; the filter replaces each secret value the config resolved
with ``***`` in the final message and in formatted tracebacks, whatever logger produced it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Formatter):
    def __init__(self, secrets: Iterable[str], fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def setup_logging(secrets: Iterable[str], *, level: int = logging.INFO,
                  stream: TextIO | None = None) -> logging.Handler:
    """Route every logger to one redacting stderr handler; returns it (to remove later)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "relayboard", False)]:
        root.removeHandler(old)
    handler.relayboard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries: their per-request lines say nothing an operator needs.
    for name in ("httpx", "aiohttp.access", "telegram.ext", "discord.gateway", "slack_sdk"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler
