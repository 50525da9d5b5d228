"""Configuration: read once, typed, frozen. The only place that reads the environment.

Home: ``--home DIR`` > ``$RELAYBOARD_HOME`` > ``~/.relayboard``. Config: ``<home>/config.yaml`` or
``--config FILE``; every key is optional (see config.example.yaml). Secrets never live in the file:
a ``*_env`` key names the environment variable that holds them, or its ``*_file`` twin a file
holding them (:mod:`gateway.secret_files`); both are resolved here, at every load.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from pydantic import ValidationError

from gateway.config_schema import (
    NAMESPACE,
    AgentConfig,
    AuxiliaryConfig,
    ConfigFile,
    DashboardConfig,
    DeliveryConfig,
    HookConfig,
    KanbanConfig,
    LoggingConfig,
    Section,
    StorageConfig,
    WorkersConfig,
    env_keys,
    problem,
    unknown_keys,
)

# Raised here, defined with the rest of the gateway's tree; ``gateway.config.ConfigError`` stays
# importable for code written before the tree existed.
from gateway.errors import ConfigError as ConfigError
from gateway.host import HOME_ENV as HOME_ENV
from gateway.host import resolve_home as resolve_home
from gateway.secret_files import SecretFileError, file_key, read_secret_file

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class PlatformConfig:
    """One platform as its adapter gets it: the keys of ``platforms.<name>`` and its secrets."""

    name: str
    enabled: bool = False
    allowed_users: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()  # the group chats served; none: every group
    dm_policy: str = "allowlist"  # strangers in one-to-one chats: allowlist or pairing
    base_url: str | None = None
    gateway_url: str | None = None
    # The secrets that are set, by name (token, bot_token, app_token: each key without _env).
    secrets: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # its other keys (history_limit)
    # secret name -> the environment variable it is read from (e.g. token -> TELEGRAM_BOT_TOKEN)
    secret_vars: Mapping[str, str] = field(default_factory=dict)
    # secret name -> the file it was read from instead (its ``*_file`` key)
    secret_files: Mapping[str, Path] = field(default_factory=dict)

    def missing_secrets(self) -> list[str]:
        """The variables of its secrets that are not set (empty: all present)."""
        return [var for key, var in self.secret_vars.items()
                if not self.secrets.get(key) and key not in self.secret_files]

    def secret_source(self, secret: str) -> str:
        """Where ``secret`` comes from, for people: ``file PATH`` or ``$VAR``."""
        if secret in self.secret_files:
            return f"file {self.secret_files[secret]}"
        return f"${self.secret_vars[secret]}"


@dataclass(frozen=True)
class Config:
    """The whole configuration: config.yaml's sections, where it was read, what was ignored."""

    home: Path
    path: Path | None
    kanban: KanbanConfig = field(default_factory=KanbanConfig)
    auxiliary: AuxiliaryConfig = field(default_factory=AuxiliaryConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    platforms: Mapping[str, PlatformConfig] = field(default_factory=dict)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    hooks: Mapping[str, HookConfig] = field(default_factory=dict)  # by name (docs/hooks.md)
    warnings: tuple[str, ...] = ()  # unknown keys, named; logged once at load time

    def secret_values(self) -> list[str]:
        """Every secret this config resolved (for log redaction); never print them."""
        values = [v for p in self.platforms.values() for v in p.secrets.values() if v]
        for item in fields(self):
            section = getattr(self, item.name)
            if isinstance(section, Section):
                values += section.secrets()
        for hook in self.hooks.values():
            values += hook.secrets()
        if self.storage.dsn:
            values += _dsn_passwords(self.storage.dsn)
        return values


def require_platform_secrets(config: Config) -> None:
    """The gateway's check: every enabled platform has its token variables set, and every
    enabled hook its token. (Kanban verbs do not call it: a worker's environment never carries
    the gateway's tokens.)"""
    for name, platform in sorted(config.platforms.items()):
        if platform.enabled:
            missing = platform.missing_secrets()
            if missing:
                raise ConfigError(f"platforms.{name}: {', '.join(missing)} is not set")
    for name, hook in sorted(config.hooks.items()):
        if hook.enabled and not hook.token:
            where = (f"${hook.token_env} (hooks.{name}.token_env) is not set" if hook.token_env
                     else f"it has no token; set hooks.{name}.token_env or token_file")
            raise ConfigError(f"hooks.{name}: {where}")


def load_config(
    path: Path | None, environ: Mapping[str, str] | None = None, *, home: Path | None = None
) -> Config:
    """Load and validate a config file. ``path=None`` means ``<home>/config.yaml`` if present."""
    env = dict(os.environ) if environ is None else environ
    home = home or resolve_home(None, env)
    file = path if path is not None else home / "config.yaml"
    data: dict[str, Any] = {}
    if file.is_file():
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{file.name}: cannot read config: {first}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{file.name}: the top level must be a mapping")
        data = loaded or {}
    elif path is not None:
        raise ConfigError(f"config file {file} does not exist")
    source = file.name if file.is_file() else "config"
    warnings = tuple(f"unknown key {key} (ignored)" for key in sorted(unknown_keys(data)))
    for warning in warnings:
        log.warning("%s: %s", source, warning)
    try:
        read = ConfigFile.model_validate(data, context={"env": env})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {problem(exc.errors()[0], data)}") from None
    agent = read.agent
    if agent.kind == "command" and not agent.command.argv:
        raise ConfigError(f"{source}: agent.kind is command, but agent.command.argv is empty")
    if agent.kind == "openai" and not (agent.openai.base_url and agent.openai.model):
        raise ConfigError(f"{source}: agent.kind is openai, but agent.openai.base_url and "
                          "agent.openai.model are not both set")
    for name, mode in (("telegram", "webhook"), ("slack", "events")):
        block = getattr(read.platforms, name)
        if block is not None and block.enabled and block.mode == mode:
            if not read.dashboard.enabled:
                raise ConfigError(f"{source}: platforms.{name}.mode is {mode}, which the "
                                  "gateway's web server serves, but dashboard.enabled is false")
            telegram = read.platforms.telegram
            if name == "telegram" and telegram is not None and not (
                    telegram.webhook_url or read.dashboard.public_url):
                raise ConfigError(f"{source}: platforms.telegram.mode is webhook; set "
                                  "platforms.telegram.webhook_url or dashboard.public_url")
    sections: dict[str, Any] = {name: value for name, value in read if name != "platforms"}
    return Config(home=home, path=file if file.is_file() else None,
                  **{**sections, "storage": _storage(read.storage, env, source)},
                  platforms={name: _platform(name, value, env, source)
                             for name, value in read.platforms if value is not None},
                  warnings=warnings)


_VIEW = {item.name for item in fields(PlatformConfig)}


# Secrets a platform reads only in some modes: (platform, mode) -> the secrets it does not need.
UNUSED_SECRETS: dict[tuple[str, str], frozenset[str]] = {
    ("telegram", "polling"): frozenset({"webhook_secret"}),
    ("slack", "socket"): frozenset({"signing_secret"}),
    ("slack", "events"): frozenset({"app_token"}),
}


def _platform(name: str, section: Section, env: Mapping[str, str],
              source: str) -> PlatformConfig:
    keys = dict(section)
    unused = UNUSED_SECRETS.get((name, str(keys.get("mode"))), frozenset())
    secret_vars = {key.removesuffix("_env"): var for key, var in keys.items()
                   if key.endswith("_env") and key.removesuffix("_env") not in unused}
    files: dict[str, Path] = {secret: keys[file_key(f"{secret}_env")] for secret in secret_vars
                              if keys.get(file_key(f"{secret}_env")) is not None}
    secrets = {secret: env[var] for secret, var in secret_vars.items()
               if env.get(var) and secret not in files}
    for secret, path in files.items():
        try:
            secrets[secret] = read_secret_file(path)
        except SecretFileError as exc:
            raise ConfigError(f"{source}: platforms.{name}.{secret}_file: {exc}") from None
    return PlatformConfig(
        name=name, **{key: value for key, value in keys.items() if key in _VIEW},
        secrets=secrets,
        options={key: value for key, value in keys.items() if key not in _VIEW
                 and not key.endswith("_env") and not key.endswith("_file")},
        secret_vars=secret_vars, secret_files=files,
    )


@dataclass(frozen=True)
class SecretSource:
    """Where one configured secret comes from (``relayboard doctor`` shows it, never the
    value): ``key`` is dotted (``dashboard.token``), ``source`` is ``$VAR`` or ``file PATH``."""

    key: str
    source: str
    present: bool


def secret_sources(config: Config) -> list[SecretSource]:
    """Every secret the config asks for: of enabled platforms, the dashboard's token when a key
    names one, PostgreSQL's DSN on that backend, endpoints' keys when named, every hook's."""
    found: list[SecretSource] = []
    for name, platform in sorted(config.platforms.items()):
        if platform.enabled:
            found += [SecretSource(f"platforms.{name}.{secret}", platform.secret_source(secret),
                                   bool(platform.secrets.get(secret)))
                      for secret in sorted(platform.secret_vars)]
    for item in fields(config):
        value = getattr(config, item.name)
        if item.name == "storage" and config.storage.backend != "postgresql":
            continue  # its dsn_env has a default, used by nothing on SQLite
        if isinstance(value, Section):
            found += _section_sources(value, item.name)
        elif isinstance(value, Mapping):
            for name, entry in sorted(value.items()):
                if isinstance(entry, Section) and getattr(entry, "enabled", True):
                    found += _section_sources(entry, f"{item.name}.{name}")
    return found


def _section_sources(section: Section, prefix: str) -> list[SecretSource]:
    found: list[SecretSource] = []
    for name, value in section:
        if isinstance(value, Section):
            found += _section_sources(value, f"{prefix}.{name}")
    for name, key in env_keys(type(section)).items():
        path, var = getattr(section, file_key(key), None), getattr(section, key)
        if path is not None or var:
            source = f"file {path}" if path is not None else f"${var}"
            found.append(SecretSource(f"{prefix}.{name}", source,
                                      bool(getattr(section, name))))
    return found


def _storage(storage: StorageConfig, env: Mapping[str, str], source: str) -> StorageConfig:
    if env.get("RELAYBOARD_STORAGE") == "postgresql":
        # How a dispatcher tells its workers where the board is (their own home may say
        # otherwise); it overrides the file for any process that has it.
        dsn = env.get("RELAYBOARD_PG_DSN") or None
        if not dsn:
            raise ConfigError("RELAYBOARD_STORAGE=postgresql but RELAYBOARD_PG_DSN is not set")
        namespace = env.get("RELAYBOARD_PG_NAMESPACE", "")
        if not re.fullmatch(NAMESPACE, namespace):
            raise ConfigError("RELAYBOARD_PG_NAMESPACE: use 1-16 of a-z, 0-9 and '_'")
        return StorageConfig(backend="postgresql", dsn=dsn, namespace=namespace)
    if storage.backend == "postgresql" and not storage.dsn:
        raise ConfigError(f"{source}: storage.backend is postgresql but {storage.dsn_env} "
                          "(storage.dsn_env) is not set; put the DSN in that variable")
    return storage


def _dsn_passwords(dsn: str) -> list[str]:
    """The DSN's password (in each form a message may quote it), masked in logs like the DSN.

    A DSN libpq cannot parse still fails later (when the board opens), and the parser's message
    may quote the very piece it tripped on (``invalid percent-encoded token: "pa%ZZss"``): so
    its password is then found by :func:`_dsn_passwords_by_shape` instead of being dropped."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        value = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return _dsn_passwords_by_shape(dsn)
    return [str(value)] if value else []


_URI_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:(?P<pw>[^/?#]*)@")
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*(?P<pw>'(?:[^'\\]|\\.)*'?|\S+)")


def _dsn_passwords_by_shape(dsn: str) -> list[str]:
    """The password of a DSN libpq refused, read by its shape alone (``scheme://user:PW@…`` or
    ``password=PW``, quoted or not): as written, unquoted and percent-decoded, since a message
    may quote any of them."""
    found = _URI_PASSWORD.match(dsn) or _KEYWORD_PASSWORD.search(dsn)
    if found is None or not found.group("pw"):
        return []
    raw = found.group("pw")
    return sorted({form for form in (raw, raw.strip("'"), unquote(raw)) if form})

