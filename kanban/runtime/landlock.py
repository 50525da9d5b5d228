"""Landlock: the three system calls, a ruleset built by the parent, and a confined spawn.

Landlock is the Linux security module that lets any process, unprivileged or root, confine
itself and everything it starts: which files it may read, write or execute, which TCP ports it
may bind or connect to, and (ABI 6) whether it may signal, or reach the abstract unix sockets of,
processes outside its own domain. A confined process also cannot ptrace, or read the
``/proc/<pid>/environ`` and ``mem`` of, any process outside its domain.

The calls are made with :mod:`ctypes`, in this one module, rather than through a package: the
``landlock`` package on PyPI is a pre-release that knows filesystem rights only (no TCP rules,
no scopes), and the packages that cover ABI 6 are young 0.x releases. What is needed is small —
create a ruleset, add rules, restrict oneself — and the restriction must happen at one exact
point of our own spawn path (:func:`run_confined`), which no package offers. Only the standard
library is imported here.

Rights the running kernel does not know are left out (best effort): :func:`abi_version` says
which ABI runs, :func:`fs_rights` / :func:`scopes` what it knows.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# System call numbers: the same on every architecture (numbers from 424 on are shared).
SYS_CREATE_RULESET = 444
SYS_ADD_RULE = 445
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
RULE_NET_PORT = 2
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (``LANDLOCK_ACCESS_FS_*``).
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2: rename and link across folders
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5: ioctl on devices opened under the rule
# TCP rights (``LANDLOCK_ACCESS_NET_*``, ABI 4).
BIND_TCP = 1 << 0
CONNECT_TCP = 1 << 1
# Scopes (``LANDLOCK_SCOPE_*``, ABI 6).
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

# Rights that apply to a file itself (a rule on a file may hold only these).
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ = READ_FILE | READ_DIR
READ_EXEC = READ | EXECUTE
WRITE = (WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO
         | MAKE_SYM | REFER | TRUNCATE)
# Everything but device nodes: a workspace may hold anything a build makes.
ALL_BUT_DEVICES = READ_EXEC | WRITE

_ABI_FS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}


def fs_rights(abi: int) -> int:
    """Every filesystem right ABI ``abi`` knows (0 without Landlock)."""
    known = [bits for version, bits in _ABI_FS.items() if version <= abi]
    return max(known) if known else 0


def net_rights(abi: int) -> int:
    return BIND_TCP | CONNECT_TCP if abi >= 4 else 0


def scopes(abi: int) -> int:
    return SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0


_UNREACHABLE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP,
                          errno.ENAMETOOLONG})


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        lib.prctl.restype = ctypes.c_int
        _libc = lib
    return _libc


def _syscall(number: int, *args: object) -> int:
    result = int(_lib().syscall(ctypes.c_long(number), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _prctl(option: int, value: int) -> None:
    lib = _lib()
    if lib.prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0),
                 ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def abi_version() -> int:
    """The Landlock ABI the running kernel offers; 0 when there is none (not Linux, Landlock
    not built in or not enabled at boot)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        return _syscall(SYS_CREATE_RULESET, ctypes.c_void_p(None), ctypes.c_size_t(0),
                        ctypes.c_uint32(CREATE_RULESET_VERSION))
    except OSError:
        return 0  # ENOSYS: not built in; EOPNOTSUPP: disabled at boot
    except (AttributeError, ValueError):
        return 0  # no C library to call through


class Ruleset:
    """A ruleset being built: the rights it handles and the rules that allow some of them.

    Built in the parent (opening each path once), then handed to :func:`run_confined`; closed
    by whoever built it. Rights the running ABI does not know are dropped from every rule.
    """

    def __init__(self, abi: int, *, fs: int, net: int = 0, scoped: int = 0) -> None:
        self.abi = abi
        self.fs = fs & fs_rights(abi)
        self.net = net & net_rights(abi)
        self.scoped = scoped & scopes(abi)
        attr = _RulesetAttr(self.fs, self.net, self.scoped)
        size = 24 if abi >= 6 else 16 if abi >= 4 else 8
        self.fd = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                           ctypes.c_uint32(0))

    def allow_path(self, path: str | os.PathLike[str], access: int) -> bool:
        """Allow ``access`` beneath ``path`` (or on it, for a file: only file rights apply).
        False when there is nothing to allow: the path does not exist, or this process cannot
        reach it either. Raises OSError when the kernel refuses the rule."""
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in _UNREACHABLE:
                return False
            raise
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                access &= FILE_RIGHTS
            allowed = access & self.fs
            if not allowed:
                return False
            attr = _PathBeneathAttr(allowed, fd)
            _syscall(SYS_ADD_RULE, ctypes.c_int(self.fd), ctypes.c_int(RULE_PATH_BENEATH),
                     ctypes.byref(attr), ctypes.c_uint32(0))
            return True
        finally:
            os.close(fd)

    def allow_port(self, port: int, access: int = CONNECT_TCP) -> None:
        """Allow ``access`` (connect, bind) to TCP ``port``; nothing when the ABI has no TCP
        rules (then TCP is not handled at all)."""
        allowed = access & self.net
        if not allowed:
            return
        attr = _NetPortAttr(allowed, port)
        _syscall(SYS_ADD_RULE, ctypes.c_int(self.fd), ctypes.c_int(RULE_NET_PORT),
                 ctypes.byref(attr), ctypes.c_uint32(0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Ruleset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def restrict_current_thread(ruleset_fd: int) -> None:
    """Confine the calling thread, and whatever it starts from now on, to the ruleset."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))


def run_confined(ruleset: Ruleset, start: Callable[[], T]) -> T:
    """Call ``start`` (which starts a process) on a fresh thread that confines itself first.

    Landlock confines a thread, and every process that thread starts inherits its domain. So a
    short-lived thread of the dispatcher restricts itself, starts the worker (a plain
    ``subprocess.Popen``: still vfork and exec, no Python code run in the child) and ends; the
    dispatcher's other threads stay as they were. The child does only what an unconfined spawn
    does, so the sandbox costs the two system calls here, not a hook run after each fork.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def confined() -> None:
        try:
            restrict_current_thread(ruleset.fd)
            outcome.append(start())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=confined, name="landlock-spawn", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def forbid_dumping() -> bool:
    """Make this process non-dumpable: other processes of the same user can no longer read
    its ``/proc/<pid>/environ`` and memory, nor attach a debugger, and it leaves no core file.
    A program it executes is dumpable again (the kernel resets the flag on exec). False where
    there is no such control (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        _prctl(PR_SET_DUMPABLE, 0)
    except (OSError, AttributeError, ValueError):
        return False
    return True


def dumpable() -> bool:
    """Whether this process is dumpable (True where that cannot be asked)."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        return int(_lib().prctl(ctypes.c_int(PR_GET_DUMPABLE), ctypes.c_ulong(0),
                                ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))) != 0
    except (AttributeError, ValueError):
        return True


__all__ = [
    "ALL_BUT_DEVICES",
    "BIND_TCP",
    "CONNECT_TCP",
    "EXECUTE",
    "FILE_RIGHTS",
    "IOCTL_DEV",
    "READ",
    "READ_EXEC",
    "READ_FILE",
    "SCOPE_ABSTRACT_UNIX_SOCKET",
    "SCOPE_SIGNAL",
    "TRUNCATE",
    "WRITE",
    "WRITE_FILE",
    "Ruleset",
    "abi_version",
    "dumpable",
    "forbid_dumping",
    "fs_rights",
    "net_rights",
    "restrict_current_thread",
    "run_confined",
    "scopes",
]
