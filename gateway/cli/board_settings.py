"""What the board verbs read of the config, without the config schema on their start-up path.

Validating ``config.yaml`` needs the pydantic models of :mod:`gateway.config_schema`, whose
import costs more than the rest of ``relayboard kanban create`` together. The board verbs read
only a few values of it (the default board, the board options, the storage, the workspace roots,
retention, the time zone, whether members may schedule): :class:`BoardSettings`.

Once a config has been validated in full (:func:`gateway.config.load_config`, every section, as
before), those values are written to ``<home>/.cache/board-settings.json`` under a key made of
everything the validation depended on: the config file's path and bytes (or its absence),
``$HOME`` (``~`` in paths), and the bytes of the modules that define the keys and their mapping
to the kernel's settings. A later run with the same key takes the values from the cache and
replays the unknown-key warnings; any difference (an edited file, an upgrade) or an unreadable
cache validates in full again. So a config that is refused is refused on every run (a refusal is
never cached), and a valid one is read the same as before.

Not cached: PostgreSQL storage (its DSN is a secret, read from the environment each run) and a
process whose environment overrides the storage (``RELAYBOARD_STORAGE``), nor a config file
that names other files (a ``*_file`` key: what those files hold and their modes are checked on
every load, so the key would not cover them). The cache is trusted
as ``config.yaml`` beside it is (the same private home, the same owner; a sandboxed worker may
write neither), and a cached workspace root must still be absolute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kanban import BoardOptions, Storage

if TYPE_CHECKING:
    from gateway.config import Config
    from kanban.retention import RetentionSettings

CACHE_FILE = Path(".cache") / "board-settings.json"
FORMAT = 1
# The modules whose code decides what a config file means for the board verbs.
_GATEWAY = Path(__file__).resolve().parent.parent
_SOURCES = (_GATEWAY / "config.py", _GATEWAY / "config_schema.py",
            _GATEWAY / "kernel_settings.py", Path(__file__).resolve())
_STORAGE_OVERRIDE = "RELAYBOARD_STORAGE"


@dataclass(frozen=True)
class BoardSettings:
    """The config values a board verb reads (see the module docstring)."""

    default_board: str
    options: BoardOptions
    storage: Storage
    workspace_roots: tuple[Path, ...]
    retention: dict[str, int]  # kanban.retention as RetentionSettings' fields
    timezone: str | None  # kanban.timezone as configured (None: the host's)
    members_may_schedule: bool

    @classmethod
    def of(cls, config: Config) -> BoardSettings:
        from gateway.kernel_settings import board_options, retention_settings, storage

        k = config.kanban
        return cls(default_board=k.default_board, options=board_options(k, config.delivery),
                   storage=storage(config.storage), workspace_roots=tuple(k.workspace_roots),
                   retention=dataclasses.asdict(retention_settings(k)), timezone=k.timezone,
                   members_may_schedule=k.members_may_schedule)

    def retention_settings(self) -> RetentionSettings:
        from kanban.retention import RetentionSettings

        return RetentionSettings(**self.retention)


def load(home: Path, config_file: Path | None, environ: Mapping[str, str],
         full: Any) -> BoardSettings:
    """The board settings of ``home``'s config (``config_file``, else ``<home>/config.yaml``):
    from the cache when its key matches, else from ``full()`` (the validated :class:`Config`),
    then cached."""
    key = _key(home, config_file, environ)
    if key is not None:
        cached = _read(home / CACHE_FILE, key)
        if cached is not None:
            settings, source, warnings = cached
            for warning in warnings:  # as load_config logs them
                logging.getLogger("gateway.config").warning("%s: %s", source, warning)
            return settings
    config: Config = full()
    settings = BoardSettings.of(config)
    if key is not None and not settings.storage.is_postgres:
        source = config.path.name if config.path is not None else "config"
        _write(home, key, settings, source, config.warnings)
    return settings


def _key(home: Path, config_file: Path | None, environ: Mapping[str, str]) -> str | None:
    if environ.get(_STORAGE_OVERRIDE):
        return None
    file = config_file if config_file is not None else home / "config.yaml"
    digest = hashlib.sha256(f"{FORMAT}\0{file.absolute()}\0{os.environ.get('HOME', '')}\0"
                            .encode())
    try:
        text = file.read_bytes()
        if b"_file" in text:
            return None  # a key naming another file (a secret's): its checks run every time
        digest.update(b"file\0" + text)
    except FileNotFoundError:
        if config_file is not None:
            return None  # a named file that is missing: the full load says so
        digest.update(b"absent\0")
    except OSError:
        return None
    try:
        for source in _SOURCES:
            digest.update(source.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def _read(path: Path, key: str) -> tuple[BoardSettings, str, list[str]] | None:
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        s = data["settings"]
        options = BoardOptions(**s["options"])
        if set(s["options"]) != {f.name for f in dataclasses.fields(BoardOptions)}:
            return None
        roots = tuple(Path(p) for p in s["workspace_roots"])
        if not all(root.is_absolute() for root in roots):
            return None  # as the schema requires: never widened by a hand-edited cache
        settings = BoardSettings(
            default_board=str(s["default_board"]), options=options, storage=Storage(),
            workspace_roots=roots,
            retention={str(k): int(v) for k, v in s["retention"].items()},
            timezone=None if s["timezone"] is None else str(s["timezone"]),
            members_may_schedule=bool(s["members_may_schedule"]))
        return settings, str(data["source"]), [str(w) for w in data["warnings"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # absent, torn or from another version: validate in full


def _write(home: Path, key: str, settings: BoardSettings, source: str,
           warnings: tuple[str, ...]) -> None:
    if not home.is_dir():
        return  # the home is made by the verbs that write to it; the next run caches
    s = dataclasses.asdict(settings)
    s["options"] = dataclasses.asdict(settings.options)
    del s["storage"]
    s["workspace_roots"] = [str(p) for p in settings.workspace_roots]
    text = json.dumps({"key": key, "source": source, "warnings": list(warnings), "settings": s})
    folder = home / CACHE_FILE.parent
    try:
        import tempfile

        folder.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".board-settings-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, home / CACHE_FILE)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only home: every run validates in full, as before
