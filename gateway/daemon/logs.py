"""The daemon's logging: one line per record on stderr, with every known secret masked.

Adapters and SDKs should never log a token, but an exception message or a URL (Telegram puts the
token in the path) can carry one; the formatter replaces each secret value the config resolved
with ``***`` in the final message and in formatted tracebacks, whatever logger produced it.

Two formats (``logging.format``):

* ``text`` — ``time level component: message``, for a terminal and the journal.
* ``json`` — one JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``component`` (the
  logger's name), ``message``, and ``board``, ``task_id``, ``run_id``, ``platform`` when the
  record is about them (code passes them as ``extra={"board": …, "task_id": …}``), plus
  ``exception`` with the traceback. Secrets are masked in every value before it is encoded.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any, Literal, TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Record attributes a log call may set with ``extra=``, carried by JSON lines when present.
CONTEXT_FIELDS = ("board", "task_id", "run_id", "platform")

LogFormat = Literal["text", "json"]


class RedactSecrets(logging.Formatter):
    """The text format, secrets masked."""

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


class JsonLines(RedactSecrets):
    """The JSON format, secrets masked in each value (so JSON escaping cannot hide one)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__(secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "component": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int | float) else str(value)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps({k: self.redact(v) if isinstance(v, str) else v
                           for k, v in entry.items()}, ensure_ascii=False)


def formatter(format: LogFormat, secrets: Iterable[str]) -> RedactSecrets:
    """The redacting formatter for ``logging.format``."""
    return JsonLines(secrets) if format == "json" else RedactSecrets(secrets)


def setup_logging(secrets: Iterable[str], *, level: int = logging.INFO,
                  stream: TextIO | None = None, format: LogFormat = "text") -> logging.Handler:
    """Route every logger to one redacting stderr handler; returns it (to remove later)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(format, secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "relayboard", False)]:
        root.removeHandler(old)
    handler.relayboard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that set up handlers of their own (uvicorn does, when it runs alone in this
    # process) would bypass the format and the redaction: their records go to the root instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for own in list(logger.handlers):
            logger.removeHandler(own)
        logger.propagate = True
    # Chatty libraries: their per-request lines say nothing an operator needs.
    for name in ("httpx", "aiohttp.access", "telegram.ext", "discord.gateway", "slack_sdk"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler


def apply_config(format: LogFormat, secrets: Iterable[str]) -> None:
    """Once the config is read: its format and its secrets on the handler(s) set up above."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactSecrets):
            handler.setFormatter(formatter(format, [*handler.formatter.secrets, *secrets]))
