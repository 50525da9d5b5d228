"""The worker sandbox: what a worker process (and everything it starts) may touch.

A worker runs code a model chose, under the operator's own uid. :func:`worker_policy` says what
it may reach, :func:`confine` turns that into a Landlock ruleset (:mod:`kanban.runtime.landlock`)
that :func:`kanban.runtime.spawn.start_worker` applies to the new process. In short:

* read (and run): the system (``/usr``, ``/etc``, ``/opt``, …, ``/proc``, ``/sys``), this
  Relayboard installation and its interpreter, the profile's home, the task's inputs and its
  parents' files (``attachments/<id>/``), its prompt file, the user's git configuration, the
  profile's ``read_paths``;
* write: the task's workspace (for a git worktree, also the parts of the repository's git folder
  a commit writes), the worker's own ``TMPDIR``, the profile's ``write_paths`` and, with
  ``write_home: true``, its home;
* never: the rest of the user's home (``~/.ssh``, ``~/.aws``, …), the home's ``config.yaml``,
  other boards, other tasks' folders, signals to processes outside the sandbox, and (as an
  unprivileged user) other processes' environment and memory;
* TCP: everything (``network: allow``), nothing (``deny``) or connections to listed ports.

No board database is among them: a worker reports through the worker API's socket (a Unix
socket by path, which Landlock does not filter). See docs/worker.md ("The sandbox").

Levels (``DispatchSettings.sandbox``): ``auto`` confines where the kernel can and says once,
with one warning, where it cannot; ``required`` refuses to start a worker it cannot confine (a
spawn failure on the task); ``off``. :func:`sandbox_status` says which is in force.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kanban.agents.profiles import Network
from kanban.errors import SpawnError
from kanban.runtime import landlock
from kanban.runtime.landlock import (
    ALL_BUT_DEVICES,
    IOCTL_DEV,
    READ,
    READ_EXEC,
    READ_FILE,
    TRUNCATE,
    WRITE_FILE,
    Ruleset,
    forbid_dumping,
)

log = logging.getLogger(__name__)

SandboxLevel = Literal["auto", "required", "off"]
LEVELS: tuple[SandboxLevel, ...] = ("auto", "required", "off")
# Renames and links across folders (git's object store does them) need ABI 2 (Linux 5.19).
MIN_ABI = 2
# The packages of this installation, wherever they are imported from.
PACKAGES = ("kanban", "gateway", "platforms")

# Read and run: the system's programs, libraries and configuration.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
          "/nix/store", "/snap")
# Read only: kernel interfaces (a worker's tools read their own /proc entries; lineage checks
# read their parents'). Other processes' environment, memory, fds and cwd there stay out of
# reach of an unprivileged worker: Landlock refuses them outside the worker's own domain.
KERNEL = ("/proc", "/sys")
DEVICE = READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
           "/dev/ptmx", "/dev/pts")
# Read only, in the user's home: git refuses to run at all when its configuration exists but
# cannot be read.
HOME_TOOL_CONFIG = (".gitconfig", ".config/git")
# Where a git worktree's commit writes in the repository's shared git folder.
GIT_SHARED_WRITES = ("objects", "refs", "logs")


@dataclass(frozen=True)
class Grant:
    path: Path
    access: int


@dataclass(frozen=True)
class WorkerPolicy:
    """Everything one worker may reach: path grants and its TCP policy."""

    grants: tuple[Grant, ...]
    network: Network = "allow"


@dataclass(frozen=True)
class WorkerPaths:
    """The places of one worker, as the dispatcher prepared them."""

    workspace: Path
    tmpdir: Path
    profile_home: Path
    inputs: Sequence[Path]  # attachments/<id>/ of the task and of its parents
    prompt_file: Path | None = None
    read_paths: Sequence[str] = ()
    write_paths: Sequence[str] = ()
    write_home: bool = False


# ---- the policy ---------------------------------------------------------------------------------


@functools.cache
def install_paths() -> tuple[Path, ...]:
    """This Relayboard installation and its interpreter: the prefixes, the interpreter's real
    folder, and every folder our packages can be imported from — here, and by a worker started
    without this process's PYTHONPATH (an editable install's finder). Found once a process."""
    found = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                               sys.base_exec_prefix)}
    found.add(Path(os.path.realpath(sys.executable)).parent)
    for name in PACKAGES:
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            try:
                spec = find_spec(name, None)
            except Exception:  # a finder we do not know may raise anything
                continue
            if spec is not None:
                found.update(Path(p) for p in spec.submodule_search_locations or ())
    return tuple(sorted(found))


@functools.cache
def import_roots() -> tuple[Path, ...]:
    """The folders our packages sit in (a ``sys.path`` entry such as a source checkout on
    PYTHONPATH): a worker must list them to import from them, though it reads nothing else
    there."""
    return tuple(sorted({p.parent for p in install_paths() if p.name in PACKAGES}))


def git_grants(workspace: Path) -> list[Grant]:
    """For a git worktree workspace (its ``.git`` is a file naming its git folder): its own
    git folder read-write, the repository's shared one readable, and in it only what a commit
    writes (objects, refs, logs). Hooks and config stay read-only."""
    try:
        text = (workspace / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if not text.startswith("gitdir:"):
        return []
    own = Path(text[len("gitdir:"):].strip())
    if not own.is_absolute():
        own = workspace / own
    try:
        common_text = (own / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return [Grant(own, ALL_BUT_DEVICES)]
    common = Path(common_text) if os.path.isabs(common_text) else own / common_text
    common = Path(os.path.normpath(common))
    return [Grant(common, READ), Grant(own, ALL_BUT_DEVICES),
            *(Grant(common / name, ALL_BUT_DEVICES) for name in GIT_SHARED_WRITES)]


def worker_policy(paths: WorkerPaths, *, network: Network = "allow",
                  user_home: Path | None = None) -> WorkerPolicy:
    """The policy of one worker (see the module docstring)."""
    home = user_home if user_home is not None else Path.home()
    grants = [Grant(Path(p), READ_EXEC) for p in SYSTEM]
    grants += [Grant(Path(p), READ) for p in KERNEL]
    grants += [Grant(Path(p), DEVICE | landlock.READ_DIR) for p in DEVICES]
    grants += [Grant(p, READ_EXEC) for p in install_paths()]
    grants += [Grant(p, landlock.READ_DIR) for p in import_roots()]
    grants += [Grant(home / name, READ) for name in HOME_TOOL_CONFIG]
    resolv = Path(os.path.realpath("/etc/resolv.conf"))
    grants.append(Grant(resolv, READ))  # often a link into /run
    grants.append(Grant(paths.profile_home, ALL_BUT_DEVICES if paths.write_home else READ_EXEC))
    # The roster's names (an orchestrator assigns tasks to them), not the other profiles' files.
    grants.append(Grant(paths.profile_home.parent, landlock.READ_DIR))
    grants += [Grant(p, READ) for p in paths.inputs]
    if paths.prompt_file is not None:
        grants.append(Grant(paths.prompt_file, READ_FILE))
    grants += [Grant(Path(p), READ_EXEC) for p in paths.read_paths]
    grants += [Grant(Path(p), ALL_BUT_DEVICES) for p in paths.write_paths]
    grants.append(Grant(paths.workspace, ALL_BUT_DEVICES))
    grants += git_grants(paths.workspace)
    grants.append(Grant(paths.tmpdir, ALL_BUT_DEVICES))
    return WorkerPolicy(tuple(grants), network)


# ---- the kernel ---------------------------------------------------------------------------------

_abi: int | None = None
_warned = False


def kernel_abi() -> int:
    """The Landlock ABI of the running kernel (0: none), asked once per process."""
    global _abi
    if _abi is None:
        _abi = landlock.abi_version()
    return _abi


def unavailable(abi: int) -> str | None:
    """Why workers cannot be confined here; None when they can."""
    if abi >= MIN_ABI:
        return None
    if not sys.platform.startswith("linux"):
        return "Landlock is Linux-only"
    if abi == 0:
        return "this kernel has no Landlock (Linux 5.19 or later, with landlock enabled)"
    return f"Landlock ABI {abi} is too old (ABI {MIN_ABI}, Linux 5.19, is needed)"


def sandbox_status(level: SandboxLevel = "auto") -> str:
    """One line on the sandbox in force: ``landlock ABI 7``, ``off``, or ``unavailable: …``."""
    if level == "off":
        return "off"
    abi = kernel_abi()
    reason = unavailable(abi)
    if reason is not None:
        then = "workers are refused" if level == "required" else "workers run unconfined"
        return f"unavailable: {reason}; {then}"
    missing = []
    if abi < 4:
        missing.append("no TCP rules")
    if abi < 6:
        missing.append("signals not scoped")
    return f"landlock ABI {abi}" + (f" ({', '.join(missing)})" if missing else "")


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("worker sandbox: %s", message)


def confine(level: SandboxLevel, policy: WorkerPolicy) -> Ruleset | None:
    """The ruleset to start a worker under; None to start it unconfined (``off``, or ``auto``
    where the kernel cannot). Raises :class:`SpawnError` under ``required`` when the kernel
    cannot, and at any level when the kernel refuses the ruleset."""
    if level == "off":
        return None
    abi = kernel_abi()
    reason = unavailable(abi)
    if reason is None and policy.network != "allow" and abi < 4:
        reason = f"Landlock ABI {abi} has no TCP rules (the profile's network: is not allow)"
        if level != "required":
            _warn_once(f"{reason}; workers are confined but their TCP is not")
            reason = None
    if reason is not None:
        if level == "required":
            raise SpawnError(f"the worker sandbox is required but {reason}")
        _warn_once(f"{reason}; workers run unconfined")
        return None
    try:
        return build_ruleset(policy, abi)
    except OSError as exc:
        # The kernel has Landlock and refused this ruleset: never start such a worker loose.
        raise SpawnError(f"cannot build the worker sandbox: {exc}") from exc


def build_ruleset(policy: WorkerPolicy, abi: int) -> Ruleset:
    """Open each granted path and add its rule; the caller closes the ruleset."""
    net = 0
    if policy.network == "deny":
        net = landlock.BIND_TCP | landlock.CONNECT_TCP
    elif policy.network != "allow":
        net = landlock.CONNECT_TCP
    ruleset = Ruleset(abi, fs=landlock.fs_rights(abi), net=net,
                      scoped=landlock.scopes(abi))
    try:
        for grant in policy.grants:
            ruleset.allow_path(grant.path, grant.access)
        if isinstance(policy.network, tuple):
            for port in policy.network:
                ruleset.allow_port(port)
    except BaseException:
        ruleset.close()
        raise
    return ruleset


def missing_paths(paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` that do not exist (a profile's read/write paths are skipped then)."""
    return [p for p in paths if not os.path.exists(p)]


__all__ = ["LEVELS", "Grant", "Network", "SandboxLevel",
           "WorkerPaths", "WorkerPolicy", "build_ruleset", "confine",
           "forbid_dumping", "git_grants", "install_paths", "kernel_abi", "missing_paths",
           "sandbox_status", "unavailable", "worker_policy"]
