"""Delivery policy: which local files may leave the host, and the partition-and-send helper.

Rules, in order, for every file:

1. the path is resolved (symlinks followed) before any check, so a link inside an allowed root
   cannot smuggle out a file from elsewhere;
2. a missing or non-regular file is rejected;
3. credential locations are refused even inside an allowed root: ``~/.ssh``, ``~/.aws``,
   ``~/.gnupg``, ``~/.kube``, ``~/.docker``, ``~/.config``, any ``.env`` / ``.env.*`` file, and the
   caller's extra denied paths (e.g. the Relayboard home's ``config.yaml`` and secrets);
4. the resolved file must lie under one of the caller's allowed roots;
5. its size must fit the platform's limit for its kind (and the policy's own cap, if any) —
   checked before any upload.

Receipts and log lines name a file by its basename only: a host path never reaches the chat.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from platforms.base import Destination, PlatformAdapter, Receipt
from platforms.files import FileKind, classify, partition_files

log = logging.getLogger(__name__)

CREDENTIAL_DIRS: tuple[str, ...] = (".ssh", ".aws", ".gnupg", ".kube", ".docker", ".config")


def _is_env_file(name: str) -> bool:
    return name == ".env" or name.startswith(".env.")


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Where files may be read from. All paths are resolved once, at construction."""

    allowed_roots: Sequence[Path]
    denied_paths: Sequence[Path] = ()
    home: Path | None = None  # the user's home for the credential dirs; default Path.home()
    max_bytes: int | None = None  # an extra cap below the platform's own limit
    _roots: tuple[Path, ...] = field(init=False, repr=False)
    _denied: tuple[Path, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        home = (self.home if self.home is not None else Path.home()).expanduser()
        denied = [home / d for d in CREDENTIAL_DIRS]
        denied.extend(Path(p).expanduser() for p in self.denied_paths)
        # Keep both the literal and the resolved form: a denied dir may itself be a symlink.
        both = {p for d in denied for p in (d.absolute(), _resolve(d))}
        object.__setattr__(self, "_denied", tuple(sorted(both)))
        object.__setattr__(
            self, "_roots", tuple(_resolve(Path(r).expanduser()) for r in self.allowed_roots)
        )

    def check(self, path: Path) -> Path | Receipt:
        """The resolved path if ``path`` may be sent, else a rejected receipt (basename only)."""
        name = path.name
        if _is_env_file(name):
            return Receipt.rejected(f"{name}: refused (credential file)", name=name)
        try:
            real = path.expanduser().resolve(strict=True)
        except (OSError, RuntimeError):
            return Receipt.rejected(f"{name}: file not found", name=name)
        if not real.is_file():
            return Receipt.rejected(f"{name}: not a regular file", name=name)
        if _is_env_file(real.name) or any(_within(real, d) for d in self._denied):
            log.warning("delivery refused a credential location (%s)", name)
            return Receipt.rejected(f"{name}: refused (credential location)", name=name)
        if not any(_within(real, root) for root in self._roots):
            log.warning("delivery refused a file outside the allowed roots (%s)", name)
            return Receipt.rejected(f"{name}: refused (outside the allowed folders)", name=name)
        if self.max_bytes is not None:
            size = real.stat().st_size
            if size > self.max_bytes:
                return Receipt.too_large(size, self.max_bytes, name=name)
        return real


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


async def deliver_files(
    adapter: PlatformAdapter,
    dest: Destination,
    paths: Iterable[str | Path],
    *,
    policy: DeliveryPolicy,
    caption: str | None = None,
) -> list[Receipt]:
    """Check every file against ``policy`` and the platform limits, then send by kind.

    Images go together through ``send_multiple_images``; videos through ``send_video``; audio and
    everything else through ``send_document``. ``caption`` goes with the first upload. Returns one
    receipt per refused file plus the adapter's receipts, in order: refusals first.
    """
    receipts: list[Receipt] = []
    accepted: list[Path] = []
    seen: set[Path] = set()
    limits = adapter.limits()
    for raw in paths:
        verdict = policy.check(Path(raw))
        if isinstance(verdict, Receipt):
            receipts.append(verdict)
            continue
        if verdict in seen:
            continue
        seen.add(verdict)
        size = verdict.stat().st_size
        limit = limits.bytes_for(classify(verdict) or FileKind.DOCUMENT)
        if size > limit:
            receipts.append(Receipt.too_large(size, limit, name=verdict.name))
            continue
        accepted.append(verdict)

    part = partition_files(accepted)
    pending_caption = caption

    def take_caption() -> str | None:
        nonlocal pending_caption
        value, pending_caption = pending_caption, None
        return value

    if part.images:
        receipts.extend(await adapter.send_multiple_images(dest, part.images, take_caption()))
    for video in part.videos:
        receipts.append(await adapter.send_video(dest, video, take_caption()))
    for doc in [*part.audio, *part.documents]:
        receipts.append(await adapter.send_document(dest, doc, take_caption()))
    return receipts
