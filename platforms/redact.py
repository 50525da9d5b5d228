"""Keeping tokens out of logs, status details and error messages.

Some SDK texts carry the token itself: python-telegram-bot puts it in every request URL (which
httpx logs at INFO, "HTTP Request: POST https://api.telegram.org/bot<token>/getUpdates") and in
``InvalidToken`` ("The token `…` was rejected"). Adapters therefore

- pass every error message and status detail through ``redact`` with their own secrets, and
- register their secrets with ``protect_loggers``, which installs one ``SecretFilter`` on the
  SDK loggers that are known to print them. A filter on a logger sees only records created on that
  very logger (not its children), so the names are listed one by one.

Secrets stay registered for the life of the process: a token that was used once must not appear
in a later log line either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "***"
MIN_SECRET = 6  # shorter strings would mask ordinary words; no real token is this short


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (longest first) replaced by ``***``."""
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """Masks registered secrets in a record's formatted message (the record is rewritten)."""

    def __init__(self) -> None:
        super().__init__("relayboard-secrets")
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's problem, not ours
            return True
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse a pre-set exc_text, so a traceback's messages are masked too.
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info), self.secrets)
        return True


_FORMATTER = logging.Formatter()
_FILTER = SecretFilter()


def protect_loggers(secrets: Iterable[str], loggers: Iterable[str]) -> None:
    """Mask ``secrets`` in every record logged on the named loggers (idempotent)."""
    _FILTER.secrets.update(s for s in secrets if len(s) >= MIN_SECRET)
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
