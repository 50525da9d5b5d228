"""The one exception tree of ``platforms``.

Adapters translate every SDK exception into this tree at their boundary, so callers (the gateway's
notifier, router and CLI) react to a small set of classes instead of three SDKs' hierarchies::

    PlatformError                      base class; ``retryable`` says whether a retry can help
    ├── AdapterConfigError             bad adapter options, unknown platform name
    ├── AuthError                      token refused (401/403, invalid_auth, Unauthorized)
    ├── RateLimited(retry_after)       flood control; wait ``retry_after`` seconds   (retryable)
    ├── TransientError                 network failure, timeout, 5xx                   (retryable)
    │   └── Conflict                   someone else holds the connection (Telegram 409) (retryable)
    ├── PermanentError                 the same request will fail again
    │   ├── ProtocolError              the answer is not the platform's API (wrong base_url?)
    │   ├── BadRequest                 the platform refused the request (400, bad chat id, ...)
    │   ├── NotFound                   chat, channel or thread does not exist (or is not visible)
    │   └── FileRejected(reason)       a file may not or cannot be sent (policy, missing, size)
    │       └── FileTooLarge(size, limit)
    └── WebChatError(status)           the web chat refused a browser's request (HTTP status)

(``AdapterConfigError`` is not called ``ConfigError`` so that it is never confused with the
gateway's own :class:`gateway.errors.ConfigError` for a config file.)
"""

from __future__ import annotations

from collections.abc import Iterable

from platforms.redact import redact


class PlatformError(Exception):
    """Base class of every error raised by a platform adapter."""

    retryable: bool = False

    def __init__(self, message: str = "", *, platform: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform


class AdapterConfigError(PlatformError):
    """Adapter options are invalid, or the platform name is unknown."""


class AuthError(PlatformError):
    """The platform refused the credentials."""


class RateLimited(PlatformError):
    """Flood control: the platform asks to wait ``retry_after`` seconds."""

    retryable = True

    def __init__(
        self, message: str = "", *, retry_after: float, platform: str | None = None
    ) -> None:
        message = message or f"rate limited, retry after {retry_after:g}s"
        super().__init__(message, platform=platform)
        self.retry_after = retry_after


class TransientError(PlatformError):
    """Network failure, timeout or server error: retrying later may succeed."""

    retryable = True


class Conflict(TransientError):
    """Another client holds the connection this adapter needs: a second Telegram poller with the
    same bot token, or a webhook set for it (``getUpdates`` answers 409). Retrying may succeed
    once the other side lets go; the gateway shows it as the ``conflict`` state."""


class PermanentError(PlatformError):
    """The same request will fail again; do not retry."""


class ProtocolError(PermanentError):
    """The server's answer is not what the platform's API returns: a ``base_url`` that is not the
    SDK's API base, a proxy's error page, an SDK failure on an unexpected payload."""


class BadRequest(PermanentError):
    """The platform refused the request as malformed or not allowed."""


class NotFound(PermanentError):
    """The chat, channel, thread or message does not exist (or is not visible to the bot)."""


class FileRejected(PermanentError):
    """A file may not be sent (delivery policy) or cannot be sent (missing, wrong kind)."""


class FileTooLarge(FileRejected):
    """A file exceeds the platform's (or the policy's) size limit."""

    def __init__(
        self, message: str = "", *, size: int, limit: int, platform: str | None = None
    ) -> None:
        super().__init__(message, platform=platform)
        self.size = size
        self.limit = limit


class WebChatError(PlatformError):
    """A refused browser request to the web chat: an HTTP ``status`` and one line for the
    person. It never reaches a notifier; the web adapter answers it as the JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, platform="web")
        self.status = status


def scrub(exc: PlatformError, secrets: Iterable[str]) -> PlatformError:
    """``exc`` with every secret in its message masked (in place; returned for chaining)."""
    clean = redact(exc.message, secrets)
    if clean != exc.message:
        exc.message = clean
        exc.args = (clean, *exc.args[1:])
    return exc
