"""Profiles: the roster of worker agents, ``<home>/profiles/<name>/profile.yaml``.

Reading never raises on a missing or corrupt file: the problem is reported (``Profile.problem``)
and the profile is treated as empty. Writing is atomic (temp file + rename) and changes only the
fields given.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kanban.errors import InvalidInput, ProfileNotFound
from kanban.validation import NAME_RE, check_name

log = logging.getLogger(__name__)

PROFILE_FILE = "profile.yaml"
DEFAULT_PROFILE = "default"
FIELDS = ("description", "description_auto", "model", "base_url", "api_key_env", "command",
          "skills", "toolsets", "env")


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
    env: dict[str, str] = field(default_factory=dict)
    exists: bool = True
    problem: str | None = None

    @property
    def skills_dir(self) -> Path:
        return self.home / "skills"

    def has_skill(self, skill: str) -> bool:
        return (self.skills_dir / skill).is_dir()

    def installed_skills(self) -> list[str]:
        if not self.skills_dir.is_dir():
            return []
        return sorted(p.name for p in self.skills_dir.iterdir() if p.is_dir())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "home": str(self.home), "description": self.description,
            "description_auto": self.description_auto, "model": self.model,
            "base_url": self.base_url, "api_key_env": self.api_key_env,
            "command": self.command, "skills": self.skills or self.installed_skills(),
            "toolsets": self.toolsets, "env": self.env, "exists": self.exists,
            "problem": self.problem,
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
        if not home.is_dir():
            profile.exists = False
            profile.problem = "profile directory does not exist"
            return profile
        file = home / PROFILE_FILE
        if not file.is_file():
            return profile
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            profile.problem = f"unreadable {PROFILE_FILE}: {str(exc).splitlines()[0]}"
            log.warning("profile %s: %s", name, profile.problem)
            return profile
        if data is None:
            return profile
        if not isinstance(data, dict):
            profile.problem = f"{PROFILE_FILE} is not a mapping"
            log.warning("profile %s: %s", name, profile.problem)
            return profile
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
        home = self.path(name)
        if home.is_dir():
            raise InvalidInput(f"profile {name!r} already exists")
        _check_fields(fields)  # before mkdir: a bad field must not leave a half-made profile
        (home / "skills").mkdir(parents=True)
        return self.update(name, **fields)

    def update(self, name: str, **fields: Any) -> Profile:
        """Atomically change only the given fields (None values are removed)."""
        _check_fields(fields)
        home = self.path(name)
        if not home.is_dir():
            raise ProfileNotFound(name)
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
        _atomic_write(file, yaml.safe_dump(current, sort_keys=True, allow_unicode=True))
        return self.load(name)


def _check_fields(fields: dict[str, Any]) -> None:
    """Validate and normalise fields in place (``command`` becomes a list of words)."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"unknown profile field(s): {', '.join(sorted(unknown))}")
    if fields.get("command") is not None:
        fields["command"] = split_command(fields["command"])
    if "description_auto" in fields and fields["description_auto"] is not None:
        fields["description_auto"] = bool(fields["description_auto"])


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
    profile.skills = strings("skills")
    profile.toolsets = strings("toolsets")
    env = data.get("env")
    if isinstance(env, dict):
        profile.env = {str(k): str(v) for k, v in env.items() if v is not None}
    elif env is not None:
        problems.append("env is not a mapping")


def _atomic_write(path: Path, text: str) -> None:
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
