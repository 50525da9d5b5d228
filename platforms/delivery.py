"""Delivery policy: which local files may leave the host, and the open-once-and-send helper.

Rules, in order, for every file:

1. ``.env`` / ``.env.*`` files are refused by name;
2. the path, made absolute without resolving links, must lie under one of the caller's allowed
   roots (each root is resolved once, when the policy is built: a configured root may itself be a
   link; every component *below* it is then walked without following links, so a link anywhere
   beneath a root — to a file or to a directory — is refused, never resolved away);
3. credential locations are refused even inside an allowed root: ``~/.ssh``, ``~/.aws``,
   ``~/.gnupg``, ``~/.kube``, ``~/.docker``, ``~/.config``, the caller's extra denied paths (e.g.
   the Relayboard home's ``config.yaml``), and any file inside a dot-directory below the root;
4. the open handle must be a regular file with exactly one link (a hard link to a secret looks
   like an ordinary file everywhere else) and fit the policy's cap and the platform's limit.

Each file is opened **once** (:meth:`DeliveryPolicy.open`) and everything is judged on that
handle, so swapping the file for a link between the check and the upload achieves nothing: the
bytes are copied from the handle into a private file (mode 0600, in a fresh 0700 directory only
this process knows) and the adapter uploads that copy. Adapters keep sending from a path.

Receipts and log lines name a file by its basename only: a host path never reaches the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from platforms.base import Destination, PlatformAdapter
from platforms.files import FileKind, classify, partition_files
from platforms.receipts import Receipt
from platforms.untrusted import clean_file_name

log = logging.getLogger(__name__)

CREDENTIAL_DIRS: tuple[str, ...] = (".ssh", ".aws", ".gnupg", ".kube", ".docker", ".config")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1024 * 1024


def _is_env_file(name: str) -> bool:
    return name == ".env" or name.startswith(".env.")


def _within(path: PurePath, root: PurePath) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass
class OpenedFile:
    """A file opened for delivery: the descriptor every later check and read uses."""

    path: Path  # as asked for (absolute, links not resolved); name it by ``name`` only
    relative: PurePath  # below the allowed root it was found under
    fd: int
    size: int
    identity: tuple[int, int]  # (st_dev, st_ino): the same file asked for twice goes once

    @property
    def name(self) -> str:
        return self.path.name

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class DeliveryPolicy:
    """Where files may be read from. Roots and denied paths are resolved once, at construction."""

    allowed_roots: Sequence[Path]
    denied_paths: Sequence[Path] = ()
    home: Path | None = None  # the user's home for the credential dirs; default Path.home()
    max_bytes: int | None = None  # an extra cap below the platform's own limit
    refuse_hidden_dirs: bool = True  # a file inside a dot-directory below its root (.git, …)
    _roots: tuple[tuple[Path, Path], ...] = field(init=False, repr=False)  # (as given, real)
    _denied: tuple[Path, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        home = (self.home if self.home is not None else Path.home()).expanduser()
        denied = [home / d for d in CREDENTIAL_DIRS]
        denied.extend(Path(p).expanduser() for p in self.denied_paths)
        # Keep both the literal and the resolved form: a denied dir may itself be a symlink.
        both = {p for d in denied for p in (d.absolute(), _resolve(d))}
        object.__setattr__(self, "_denied", tuple(sorted(both)))
        roots = []
        for r in self.allowed_roots:
            given = Path(os.path.abspath(Path(r).expanduser()))
            roots.append((given, _resolve(given)))
        # The deepest root first, so a file is judged below the root nearest to it.
        roots.sort(key=lambda pair: len(pair[0].parts), reverse=True)
        object.__setattr__(self, "_roots", tuple(roots))

    def check(self, path: Path) -> Path | Receipt:
        """The path that will be opened if ``path`` may be sent, else a rejected receipt
        (basename only). A look ahead only: :meth:`open` judges the file again when it is sent."""
        opened = self.open(path)
        if isinstance(opened, Receipt):
            return opened
        opened.close()
        return opened.path

    def open(self, path: Path) -> OpenedFile | Receipt:
        """Open ``path`` for delivery, or say why not. The caller closes the result."""
        name = path.name
        if _is_env_file(name):
            return Receipt.rejected(f"{name}: refused (credential file)", name=name)
        asked = Path(os.path.abspath(path.expanduser()))
        found = self._root_of(asked)
        # Where it would lead, for the denials only (nothing is read through a link below).
        forms = [asked, _resolve(asked)]
        if found is not None:
            forms.append(found[0] / found[1])
        if any(_within(p, d) for p in forms for d in self._denied):
            log.warning("delivery refused a credential location (%s)", name)
            return Receipt.rejected(f"{name}: refused (credential location)", name=name)
        if found is None:
            if not os.path.lexists(asked):
                return Receipt.rejected(f"{name}: file not found", name=name)
            log.warning("delivery refused a file outside the allowed roots (%s)", name)
            return Receipt.rejected(f"{name}: refused (outside the allowed folders)", name=name)
        real_root, relative = found
        if not relative.parts:
            return Receipt.rejected(f"{name}: not a regular file", name=name)
        if self.refuse_hidden_dirs and any(p.startswith(".") for p in relative.parts[:-1]):
            log.warning("delivery refused a file in a hidden folder (%s)", name)
            return Receipt.rejected(f"{name}: refused (a hidden folder)", name=name)
        try:
            fd = _open_beneath(real_root, relative)
        except _Refused as exc:
            log.warning("delivery refused %s (%s)", name, exc.why)
            return Receipt.rejected(f"{name}: refused ({exc.why})", name=name)
        except FileNotFoundError:
            return Receipt.rejected(f"{name}: file not found", name=name)
        except OSError as exc:
            return Receipt.rejected(f"{name}: cannot be read ({exc.strerror or exc})", name=name)
        info = os.fstat(fd)
        refusal: Receipt | None = None
        if not stat.S_ISREG(info.st_mode):
            refusal = Receipt.rejected(f"{name}: not a regular file", name=name)
        elif info.st_nlink > 1:  # 0 is fine: renamed over since we opened it, bytes unchanged
            log.warning("delivery refused a file with %d links (%s)", info.st_nlink, name)
            refusal = Receipt.rejected(f"{name}: refused (a hard link)", name=name)
        elif self.max_bytes is not None and info.st_size > self.max_bytes:
            refusal = Receipt.too_large(info.st_size, self.max_bytes, name=name)
        if refusal is not None:
            os.close(fd)
            return refusal
        return OpenedFile(asked, relative, fd, info.st_size, (info.st_dev, info.st_ino))

    def _root_of(self, asked: Path) -> tuple[Path, PurePath] | None:
        for given, real in self._roots:
            for form in (given, real):
                if _within(asked, form):
                    return real, asked.relative_to(form)
        return None


class _Refused(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _open_beneath(root: Path, relative: PurePath) -> int:
    """Open ``root/relative`` following no link at or below ``root`` (each component is opened
    relative to its parent's descriptor with ``O_NOFOLLOW``)."""
    try:
        current = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        if os.path.islink(root):
            raise _Refused("a symbolic link") from exc
        raise
    try:
        for part in relative.parts[:-1]:
            if part in ("..", "."):
                raise _Refused("outside the allowed folders")
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=current)
            except OSError as exc:
                _raise_if_link(part, current, exc)
                raise
            os.close(current)
            current = nxt
        last = relative.parts[-1]
        try:
            return os.open(last, _FILE_FLAGS, dir_fd=current)
        except OSError as exc:
            _raise_if_link(last, current, exc)
            raise
    finally:
        os.close(current)


def _raise_if_link(name: str, dir_fd: int, exc: OSError) -> None:
    if exc.errno == errno.ELOOP:  # what O_NOFOLLOW answers for a link (it may be gone by now)
        raise _Refused("a symbolic link") from exc
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise _Refused("a symbolic link") from exc


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


# ---- private copies -----------------------------------------------------------------------------

class PrivateCopies:
    """A fresh 0700 directory holding 0600 copies made from open handles; removed on close."""

    def __init__(self, parent: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="relayboard-send-", dir=parent))
        self._count = 0

    def copy(self, opened: OpenedFile, limit: int) -> Path | Receipt:
        """Copy at most ``limit`` bytes from the handle; a file that grew past it is too large."""
        self._count += 1
        folder = self.dir / str(self._count)
        folder.mkdir(mode=0o700)
        # The copy's name is the one every platform shows: one line, no controls or bidi
        # overrides (a name with a newline would otherwise forge a line in the chat).
        target = folder / clean_file_name(opened.name)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        copied = 0
        with os.fdopen(out, "wb") as dst:
            os.lseek(opened.fd, 0, os.SEEK_SET)
            while chunk := os.read(opened.fd, _CHUNK):
                copied += len(chunk)
                if copied > limit:
                    break
                dst.write(chunk)
        if copied > limit:
            target.unlink(missing_ok=True)
            return Receipt.too_large(copied, limit, name=opened.name)
        return target

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateCopies:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _prepare(paths: Iterable[str | Path], policy: DeliveryPolicy, adapter: PlatformAdapter,
             copies: PrivateCopies) -> tuple[list[Receipt], list[Path]]:
    """Open each file once, check the handle, copy it privately (runs on a worker thread)."""
    receipts: list[Receipt] = []
    accepted: list[Path] = []
    seen: set[tuple[int, int]] = set()
    limits = adapter.limits()
    for raw in paths:
        opened = policy.open(Path(raw))
        if isinstance(opened, Receipt):
            receipts.append(opened)
            continue
        with opened:
            if opened.identity in seen:
                continue
            seen.add(opened.identity)
            limit = limits.bytes_for(classify(opened.path) or FileKind.DOCUMENT)
            if opened.size > limit:
                receipts.append(Receipt.too_large(opened.size, limit, name=opened.name))
                continue
            copy = copies.copy(opened, limit)
        if isinstance(copy, Receipt):
            receipts.append(copy)
        else:
            accepted.append(copy)
    return receipts, accepted


@contextlib.contextmanager
def _private_copies(parent: Path | None) -> Iterator[PrivateCopies]:
    copies = PrivateCopies(parent)
    try:
        yield copies
    finally:
        copies.close()


async def deliver_files(
    adapter: PlatformAdapter,
    dest: Destination,
    paths: Iterable[str | Path],
    *,
    policy: DeliveryPolicy,
    caption: str | None = None,
    scratch_parent: Path | None = None,
) -> list[Receipt]:
    """Check every file against ``policy`` and the platform limits, then send by kind.

    Each file is opened once and uploaded from a private copy of that handle (see the module
    docstring); ``scratch_parent`` is where the private directory is made (the system's temporary
    folder by default). Images go together through ``send_multiple_images``; videos through
    ``send_video``; audio and everything else through ``send_document``. ``caption`` goes with
    the first upload. Returns one receipt per refused file plus the adapter's receipts, in order:
    refusals first.
    """
    with _private_copies(scratch_parent) as copies:
        receipts, accepted = await asyncio.to_thread(_prepare, list(paths), policy, adapter,
                                                     copies)
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
