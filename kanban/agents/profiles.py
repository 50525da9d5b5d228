"""Profiles: the roster of worker agents, ``<home>/profiles/<name>/profile.yaml``.

Reading never raises on a missing or corrupt file: the problem is reported (``Profile.problem``)
and the profile is treated as empty. Writing is atomic (temp file + rename) and changes only the
fields given.

A worker inherits only a few host basics (see :mod:`kanban.runtime.workerenv`); ``env:`` is how a
profile gives its workers more. Either a mapping::

    env:
      AGENT_MODE: fast                          # a literal value
      OPENAI_API_KEY: {from_env: ANALYST_KEY}   # copied from the gateway's environment

or a list of names copied from the gateway's environment under the same name::

    env: [OPENAI_API_KEY, HTTPS_PROXY]

A name missing from the gateway's environment is simply not set for the worker.

Four keys shape the worker sandbox (:mod:`kanban.runtime.sandbox`)::

    network: allow            # allow (default) | deny | a list of TCP ports, e.g. [443, 11434]
    read_paths: [/srv/repo]   # absolute paths the worker may read (and run programs from)
    write_paths: [/srv/out]   # absolute paths the worker may write
    write_home: false         # whether it may write the profile's own home

A bad value makes the profile unusable (its tasks are blocked saying why), never looser.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kanban.errors import InvalidInput, KanbanError, ProfileNotFound, StorageError
from kanban.storage.modes import PRIVATE_DIR_MODE, private_dir, tighten
from kanban.validation import ENV_NAME_RE, MODEL_RE, NAME_RE, check_model, check_name

log = logging.getLogger(__name__)

PROFILE_FILE = "profile.yaml"
DEFAULT_PROFILE = "default"
FIELDS = ("description", "description_auto", "model", "base_url", "api_key_env", "command",
          "skills", "toolsets", "env", "network", "read_paths", "write_paths", "write_home")
# A worker's TCP: everything, nothing, or connections to these ports only.
Network = Literal["allow", "deny"] | tuple[int, ...]


@dataclass
class Profile:
    name: str
    home: Path
    description: str = ""
    description_auto: bool = False
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    command: list[str] | None = None
    skills: list[str] = field(default_factory=list)
    toolsets: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # literal values
    env_from: dict[str, str] = field(default_factory=dict)  # worker name → gateway env name
    network: Network = "allow"
    read_paths: list[str] = field(default_factory=list)
    write_paths: list[str] = field(default_factory=list)
    write_home: bool = False
    exists: bool = True
    problem: str | None = None
    # Set when the profile cannot be used as written (its file cannot be read or parsed, or
    # its command cannot be split): running the built-in worker in its place would be wrong.
    unreadable: str | None = None

    @property
    def skills_dir(self) -> Path:
        return self.home / "skills"

    def has_skill(self, skill: str) -> bool:
        return (self.skills_dir / skill).is_dir()

    def installed_skills(self) -> list[str]:
        if not self.skills_dir.is_dir():
            return []
        return sorted(p.name for p in self.skills_dir.iterdir() if p.is_dir())

    def unusable(self) -> str | None:
        """Why no worker can run as this profile (it does not exist, or its file cannot be
        read as written), as one line for a person; None when it can run."""
        if not self.exists:
            return (f"unknown profile {self.name!r}: no profile named {self.name!r} (create it "
                    f"with `relayboard profile create {self.name}` or assign another profile)")
        if self.unreadable is not None:
            return (f"profile {self.name!r} is unreadable: {self.unreadable} "
                    "(fix its profile.yaml)")
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "home": str(self.home), "description": self.description,
            "description_auto": self.description_auto, "model": self.model,
            "base_url": self.base_url, "api_key_env": self.api_key_env,
            "command": self.command, "skills": self.skills or self.installed_skills(),
            # Names only: literal values may be secrets, and JSON output ends up in logs.
            "toolsets": self.toolsets, "env": sorted(self.env), "env_from": self.env_from,
            "network": self.network if isinstance(self.network, str) else list(self.network),
            "read_paths": self.read_paths, "write_paths": self.write_paths,
            "write_home": self.write_home,
            "exists": self.exists,
            "problem": self.problem,
            "unreadable": self.unreadable,
        }


def split_command(value: object) -> list[str] | None:
    """A command from YAML: a list of words, or one string split the way a shell would."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise InvalidInput(f"cannot split command {value!r}: {exc}") from exc
        return words or None
    if isinstance(value, list) and all(isinstance(w, str | int | float) for w in value):
        return [str(w) for w in value] or None
    raise InvalidInput("command must be a string or a list of strings")


def parse_network(value: object) -> Network:
    """``network:``: allow (also when absent), deny, or a list of TCP ports."""
    if value is None or value == "allow":
        return "allow"
    if value == "deny":
        return "deny"
    if isinstance(value, list) and value and all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in value):
        return tuple(sorted(set(value)))
    raise InvalidInput(f"network must be allow, deny or a list of TCP ports 1-65535, "
                       f"not {value!r}")


def parse_paths(key: str, value: object) -> list[str]:
    """``read_paths:`` / ``write_paths:``: a list of absolute paths."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{key} must be a list of absolute paths")
    for item in value:
        if not isinstance(item, str) or not os.path.isabs(item) or "\x00" in item:
            raise InvalidInput(f"{key}: {item!r} is not an absolute path")
    return [os.path.normpath(item) for item in value]


def parse_switch(key: str, value: object) -> bool:
    """A true/false key that must be written as one (``write_home``)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise InvalidInput(f"{key} must be true or false, not {value!r}")


class Profiles:
    """The profiles of one home."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def root(self) -> Path:
        return self.home / "profiles"

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.path(name) / PROFILE_FILE).is_file() or self.path(name).is_dir()

    def names(self) -> list[str]:
        """Profile directory names, sorted; hidden, archived and invalid names are skipped."""
        try:
            entries = list(self.root.iterdir()) if self.root.is_dir() else []
        except OSError as exc:
            log.warning("cannot list %s: %s", self.root, exc)
            return []
        return sorted(p.name for p in entries if p.is_dir() and NAME_RE.match(p.name))

    def default_name(self) -> str:
        """The default profile: one named ``default`` if it exists, else the first profile
        alphabetically, else the literal ``"default"`` (so a task is never left unassigned)."""
        names = self.names()
        if DEFAULT_PROFILE in names:
            return DEFAULT_PROFILE
        return names[0] if names else DEFAULT_PROFILE

    def list(self) -> list[Profile]:
        return [self.load(n) for n in self.names()]

    def load(self, name: str) -> Profile:
        """Read a profile; a missing directory or a corrupt file yields an empty profile with
        ``problem`` set, never an exception."""
        if not NAME_RE.match(name):
            return Profile(name=name, home=self.root / "_invalid", exists=False,
                           problem=f"invalid profile name {name!r}")
        home = self.path(name)
        profile = Profile(name=name, home=home)
        try:
            is_dir = stat.S_ISDIR(home.stat().st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_dir = False
        except OSError as exc:
            return _unreadable(profile, f"its folder: {_why(exc)}")
        if not is_dir:
            profile.exists = False
            profile.problem = "profile directory does not exist"
            return profile
        try:
            raw = (home / PROFILE_FILE).read_bytes()
        except FileNotFoundError:
            return profile  # a folder without a file: every field at its default
        except OSError as exc:
            return _unreadable(profile, f"{PROFILE_FILE}: {_why(exc)}")
        import yaml  # a profile file is read: a verb that reads none never loads it

        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return _unreadable(profile, f"{PROFILE_FILE}: not UTF-8 text")
        except yaml.YAMLError as exc:
            return _unreadable(
                profile, f"{PROFILE_FILE}: not valid YAML ({str(exc).splitlines()[0]})")
        if data is None:
            return profile
        if not isinstance(data, dict):
            return _unreadable(profile, f"{PROFILE_FILE}: not a mapping")
        problems: list[str] = []
        _apply(profile, data, problems)
        if problems:
            profile.problem = "; ".join(problems)
            log.warning("profile %s: %s", name, profile.problem)
        return profile

    def require(self, name: str) -> Profile:
        profile = self.load(name)
        if not profile.exists:
            raise ProfileNotFound(name)
        return profile

    def create(self, name: str, **fields: Any) -> Profile:
        """Create a profile atomically: it is built in a hidden folder beside its final place
        and renamed into place whole, so a full disk or a crash never leaves a half-made
        profile that blocks creating it again."""
        home = self.path(name)
        if home.is_dir() and not _empty_leftover(home):
            raise InvalidInput(f"profile {name!r} already exists")
        _check_fields(fields)  # before any write: a bad field must not leave anything behind
        private_dir(self.root)
        import yaml

        text = yaml.safe_dump({k: v for k, v in fields.items() if v is not None},
                              sort_keys=True, allow_unicode=True)
        try:
            building = Path(tempfile.mkdtemp(dir=self.root, prefix=f".new-{name}-"))
        except OSError as exc:
            raise _write_error(name, exc) from exc
        try:
            (building / "skills").mkdir(mode=PRIVATE_DIR_MODE)
            _atomic_write(building / PROFILE_FILE, text)
            if home.is_dir():  # an empty leftover of an older, failed create (checked above)
                if (home / "skills").is_dir():
                    (home / "skills").rmdir()
                home.rmdir()
            os.rename(building, home)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise InvalidInput(f"profile {name!r} already exists") from exc
            raise _write_error(name, exc) from exc
        finally:
            shutil.rmtree(building, ignore_errors=True)
        tighten(home, PRIVATE_DIR_MODE)
        return self.load(name)

    def update(self, name: str, **fields: Any) -> Profile:
        """Atomically change only the given fields (None values are removed)."""
        _check_fields(fields)
        home = self.path(name)
        if not home.is_dir():
            raise ProfileNotFound(name)
        import yaml

        file = home / PROFILE_FILE
        current: dict[str, Any] = {}
        if file.is_file():
            try:
                loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    current = loaded
            except (OSError, yaml.YAMLError, UnicodeDecodeError):
                log.warning("profile %s: replacing unreadable %s", name, PROFILE_FILE)
        for key, value in fields.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        try:
            _atomic_write(file, yaml.safe_dump(current, sort_keys=True, allow_unicode=True))
        except OSError as exc:
            raise _write_error(name, exc) from exc
        return self.load(name)


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _unreadable(profile: Profile, reason: str) -> Profile:
    profile.unreadable = reason
    profile.problem = f"unreadable {reason}"
    log.warning("profile %s: %s", profile.name, profile.problem)
    return profile


def _check_fields(fields: dict[str, Any]) -> None:
    """Validate and normalise fields in place (``command`` becomes a list of words)."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"unknown profile field(s): {', '.join(sorted(unknown))}")
    if fields.get("command") is not None:
        fields["command"] = split_command(fields["command"])
    if fields.get("model") is not None:
        check_model(str(fields["model"]))
    if fields.get("env") is not None:
        problems: list[str] = []
        parse_env(fields["env"], problems)
        if problems:
            raise InvalidInput("; ".join(problems))
    if "description_auto" in fields and fields["description_auto"] is not None:
        fields["description_auto"] = bool(fields["description_auto"])
    if fields.get("network") is not None:
        network = parse_network(fields["network"])
        fields["network"] = network if isinstance(network, str) else list(network)
    for key in ("read_paths", "write_paths"):
        if fields.get(key) is not None:
            fields[key] = parse_paths(key, fields[key])
    if fields.get("write_home") is not None:
        fields["write_home"] = parse_switch("write_home", fields["write_home"])


def _flag(value: object) -> bool:
    # YAML edited by hand may hold "false"/"no" as strings; bool("false") would be True.
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _apply(profile: Profile, data: dict[str, Any], problems: list[str]) -> None:
    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str | int | float):
            return str(value)
        problems.append(f"{key} is not a string")
        return None

    def strings(key: str) -> list[str]:
        value = data.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v) for v in value if isinstance(v, str | int | float)]
        problems.append(f"{key} is not a list")
        return []

    profile.description = text("description") or ""
    profile.description_auto = _flag(data.get("description_auto", False))
    profile.model = text("model")
    profile.base_url = text("base_url")
    profile.api_key_env = text("api_key_env")
    try:
        profile.command = split_command(data.get("command"))
    except InvalidInput as exc:
        problems.append(str(exc))
        profile.unreadable = f"command: {exc}"
    profile.skills = strings("skills")
    profile.toolsets = strings("toolsets")
    if profile.model is not None and not MODEL_RE.match(profile.model):
        problems.append(f"invalid model name {profile.model!r}")
        profile.model = None
    profile.env, profile.env_from = parse_env(data.get("env"), problems)
    try:
        # The sandbox keys: a bad one makes the profile unusable rather than looser.
        profile.network = parse_network(data.get("network"))
        profile.read_paths = parse_paths("read_paths", data.get("read_paths"))
        profile.write_paths = parse_paths("write_paths", data.get("write_paths"))
        profile.write_home = parse_switch("write_home", data.get("write_home"))
    except InvalidInput as exc:
        problems.append(str(exc))
        profile.unreadable = str(exc)


def parse_env(value: object, problems: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``env:`` as (literal values, names copied from the gateway); see the module docstring.
    Each bad entry is reported in ``problems`` and left out."""
    literal: dict[str, str] = {}
    copied: dict[str, str] = {}
    if value is None:
        return literal, copied
    if isinstance(value, list):
        for item in value:
            if isinstance(item, str) and ENV_NAME_RE.match(item):
                copied[item] = item
            else:
                problems.append(f"env: {item!r} is not an environment variable name")
        return literal, copied
    if not isinstance(value, dict):
        problems.append("env is not a mapping or a list of names")
        return literal, copied
    for key, item in value.items():
        name = str(key)
        if not ENV_NAME_RE.match(name):
            problems.append(f"env: {name!r} is not an environment variable name")
        elif isinstance(item, dict):
            source = item.get("from_env")
            if set(item) != {"from_env"} or not isinstance(source, str) \
                    or not ENV_NAME_RE.match(source):
                problems.append(f"env: {name} must be a value or {{from_env: NAME}}")
            else:
                copied[name] = source
        elif isinstance(item, str | int | float | bool):
            text = str(item)
            if "\x00" in text:
                problems.append(f"env: {name} contains a NUL character")
            else:
                literal[name] = text
        elif item is not None:
            problems.append(f"env: {name} must be a value or {{from_env: NAME}}")
    return literal, copied


def _empty_leftover(home: Path) -> bool:
    """True for a profile folder holding nothing but an empty ``skills/`` (what a create that
    failed before the atomic write left behind): it may be created again."""
    try:
        entries = list(home.iterdir())
        return all(e.name == "skills" and e.is_dir() and not any(e.iterdir()) for e in entries)
    except OSError:
        return False


def _write_error(name: str, exc: OSError) -> KanbanError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"disk full: cannot write profile {name!r}; free some space and "
                            "try again")
    return StorageError(f"cannot write profile {name!r}: {exc.strerror or exc}")


def _atomic_write(path: Path, text: str) -> None:
    # mkstemp makes the file 0600 whatever the umask: a profile's env may hold secrets.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
