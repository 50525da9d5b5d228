"""Receipts: the outcome of every send, so that no adapter ever reports a silent success.

A :class:`Receipt` says delivered (with the platform's message ids), rejected (with a reason),
too large (with the size and the limit) or failed (retryable or not, with the server's
``retry_after`` when it gave one). Reasons never carry a host directory path: a file is named by
its basename only.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from platforms.errors import FileTooLarge, PermanentError, PlatformError, RateLimited

MiB = 1024 * 1024


class ReceiptStatus(enum.StrEnum):
    DELIVERED = "delivered"
    REJECTED = "rejected"
    TOO_LARGE = "too_large"
    FAILED = "failed"


def format_mb(size: int) -> str:
    """Bytes as MB (binary megabytes), one decimal."""
    return f"{size / MiB:.1f}"


def too_large_reason(size: int, limit: int) -> str:
    a, b = format_mb(size), format_mb(limit)
    if a == b:
        a, b = f"{size / MiB:.3f}", f"{limit / MiB:.3f}"
    return f"too large ({a} MB > {b} MB)"


@dataclass(frozen=True)
class Receipt:
    """The outcome of one send. ``reason`` never contains a host directory path (basename only)."""

    status: ReceiptStatus
    message_ids: tuple[str, ...] = ()
    reason: str | None = None
    size: int | None = None
    limit: int | None = None
    retryable: bool = False
    retry_after: float | None = None
    name: str | None = None  # basename of the file concerned, if any

    @property
    def ok(self) -> bool:
        return self.status is ReceiptStatus.DELIVERED

    @classmethod
    def delivered(cls, message_ids: Sequence[str], *, name: str | None = None) -> Receipt:
        return cls(ReceiptStatus.DELIVERED, message_ids=tuple(message_ids), name=name)

    @classmethod
    def rejected(cls, reason: str, *, name: str | None = None) -> Receipt:
        return cls(ReceiptStatus.REJECTED, reason=reason, name=name)

    @classmethod
    def too_large(cls, size: int, limit: int, *, name: str | None = None) -> Receipt:
        reason = too_large_reason(size, limit)
        if name:
            reason = f"{name}: {reason}"
        return cls(ReceiptStatus.TOO_LARGE, reason=reason, size=size, limit=limit, name=name)

    @classmethod
    def failed(
        cls,
        reason: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        name: str | None = None,
    ) -> Receipt:
        return cls(
            ReceiptStatus.FAILED,
            reason=reason,
            retryable=retryable,
            retry_after=retry_after,
            name=name,
        )

    @classmethod
    def from_error(cls, exc: PlatformError, *, name: str | None = None) -> Receipt:
        """The receipt for a mapped exception (the message must already be path-free)."""
        if isinstance(exc, FileTooLarge):
            return cls.too_large(exc.size, exc.limit, name=name)
        if isinstance(exc, RateLimited):
            return cls.failed(str(exc), retryable=True, retry_after=exc.retry_after, name=name)
        if exc.retryable:
            return cls.failed(str(exc), retryable=True, name=name)
        if isinstance(exc, PermanentError):
            return cls.rejected(str(exc), name=name)
        return cls.failed(str(exc) or type(exc).__name__, retryable=False, name=name)
