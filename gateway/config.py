"""Configuration: read once, typed, frozen. The only place that reads the environment.

Home: ``--home DIR`` > ``$RELAYBOARD_HOME`` > ``~/.relayboard``. Config: ``<home>/config.yaml`` or
``--config FILE``; every key is optional (see config.example.yaml). Secrets never live in the file:
a ``*_env`` key names the environment variable that holds them, resolved here.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

# Raised here, defined with the rest of the gateway's tree; ``gateway.config.ConfigError`` stays
# importable for code written before the tree existed.
from gateway.errors import ConfigError as ConfigError

log = logging.getLogger(__name__)

HOME_ENV = "RELAYBOARD_HOME"


@dataclass(frozen=True)
class KanbanConfig:
    default_board: str = "default"
    dispatch_in_gateway: bool = True
    dispatch_interval_seconds: float = 5.0
    # Live per-board concurrency cap: running tasks on the board, not spawns per cycle.
    max_spawn: int = 4
    # Host-wide cap on concurrent workers across boards; None derives it from cores and memory.
    max_spawn_host: int | None = None
    failure_limit: int = 2
    claim_ttl_seconds: float = 900.0
    auto_decompose: bool = True
    auto_decompose_per_tick: int = 3
    auto_promote_children: bool = True
    orchestrator_profile: str | None = None
    default_assignee: str | None = None
    max_fanout: int = 8
    decompose_cooldown_seconds: float = 300.0
    # Labels of the workspaces this host's dispatcher can reach; a task created with
    # `--host LABEL` is spawned only by a dispatcher that has LABEL (PostgreSQL boards span hosts).
    host_labels: tuple[str, ...] = ()
    # Where a `dir:`/`worktree:PATH` workspace may point when it is named from chat or the
    # dashboard (only the operator's own command line names any path). Empty: nowhere.
    workspace_roots: tuple[Path, ...] = ()
    # What one `complete` may stage: files (a declared folder counts each file) and their bytes.
    max_artifacts_per_completion: int = 100
    max_completion_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class AuxSlot:
    """One auxiliary LLM use: an OpenAI-compatible chat-completions endpoint."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    api_key: str | None = None  # resolved from api_key_env at load time; never printed
    timeout: float = 60.0
    retries: int = 2

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


@dataclass(frozen=True)
class AuxiliaryConfig:
    kanban_decomposer: AuxSlot = field(default_factory=AuxSlot)
    profile_describer: AuxSlot = field(default_factory=AuxSlot)


@dataclass(frozen=True)
class PlatformConfig:
    name: str
    enabled: bool = False
    allowed_users: tuple[str, ...] = ()
    # Users who act with the operator's rights in chat (served even when not in allowed_users).
    admins: tuple[str, ...] = ()
    base_url: str | None = None
    gateway_url: str | None = None
    # Secrets resolved from the *_env keys (token_env, bot_token_env, app_token_env).
    secrets: Mapping[str, str | None] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    # secret name -> the environment variable it is read from (e.g. token -> TELEGRAM_BOT_TOKEN)
    secret_vars: Mapping[str, str] = field(default_factory=dict)

    def missing_secrets(self) -> list[str]:
        """The variables of required secrets that are not set (empty: all present)."""
        return [var for key, var in self.secret_vars.items()
                if key in REQUIRED_SECRETS.get(self.name, ()) and not self.secrets.get(key)]


@dataclass(frozen=True)
class DeliveryConfig:
    allowed_roots: tuple[Path, ...] = ()
    max_attachment_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True)
class StorageConfig:
    """``storage``: where boards live. The DSN (with its password) is read from the variable
    ``dsn_env`` names, never from the file."""

    backend: str = "sqlite"
    dsn_env: str = "RELAYBOARD_PG_DSN"
    dsn: str | None = field(default=None, repr=False)
    # Keeps several installations apart in one database (schemas rb_<namespace>_<slug>).
    namespace: str = ""


@dataclass(frozen=True)
class DashboardConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    token_env: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class CommandAgentConfig:
    """``agent.command``: an external agent CLI, one process per chat message."""

    # argv template with ``{message}``, ``{user}``, ``{platform}``, ``{chat}``, ``{thread}``,
    # filled by the command-template rule (kanban.runtime.template.fill_words): a placeholder
    # that is a word of its own goes in verbatim; inside a script or a larger word only plain
    # values go, so no value can change the command.
    argv: tuple[str, ...] = ()
    timeout: float = 120.0
    max_output_bytes: int = 64_000
    # Variables passed through from the gateway's environment, beyond the worker allowlist
    # (PATH, HOME, LANG, …). The gateway's own tokens never travel unless named here.
    env: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenAIAgentConfig:
    """``agent.openai``: an OpenAI-compatible chat-completions endpoint with kanban tools."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    api_key: str | None = None  # resolved from api_key_env at load time; never printed
    timeout: float = 60.0
    retries: int = 2
    max_tool_rounds: int = 5
    system_prompt: str | None = None


@dataclass(frozen=True)
class AgentConfig:
    kind: str = "none"
    history_messages: int = 20  # kept per chat thread (in the home), given to the agent
    command: CommandAgentConfig = field(default_factory=CommandAgentConfig)
    openai: OpenAIAgentConfig = field(default_factory=OpenAIAgentConfig)


@dataclass(frozen=True)
class Config:
    home: Path
    path: Path | None
    kanban: KanbanConfig = field(default_factory=KanbanConfig)
    auxiliary: AuxiliaryConfig = field(default_factory=AuxiliaryConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    platforms: Mapping[str, PlatformConfig] = field(default_factory=dict)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    warnings: tuple[str, ...] = ()  # unknown keys, named; logged once at load time

    def secret_values(self) -> list[str]:
        """Every secret this config resolved (for log redaction); never print them."""
        values = [v for p in self.platforms.values() for v in p.secrets.values() if v]
        values += [s.api_key for s in (self.auxiliary.kanban_decomposer,
                                       self.auxiliary.profile_describer) if s.api_key]
        if self.agent.openai.api_key:
            values.append(self.agent.openai.api_key)
        if self.dashboard.token:
            values.append(self.dashboard.token)
        if self.storage.dsn:
            values.append(self.storage.dsn)
            values += _dsn_passwords(self.storage.dsn)
        return values


def require_platform_secrets(config: Config) -> None:
    """The gateway's check: every enabled platform has its token variables set. (Kanban verbs do
    not call it: a worker's environment never carries the gateway's tokens.)"""
    for name, platform in sorted(config.platforms.items()):
        if platform.enabled:
            missing = platform.missing_secrets()
            if missing:
                raise ConfigError(f"platforms.{name}: {', '.join(missing)} is not set")


def resolve_home(cli_home: str | Path | None, environ: Mapping[str, str]) -> Path:
    if cli_home:
        return Path(cli_home).expanduser().resolve()
    if environ.get(HOME_ENV):
        return Path(environ[HOME_ENV]).expanduser().resolve()
    return (Path(environ.get("HOME", str(Path.home()))) / ".relayboard").resolve()


def load_config(
    path: Path | None, environ: Mapping[str, str] | None = None, *, home: Path | None = None
) -> Config:
    """Load and validate a config file. ``path=None`` means ``<home>/config.yaml`` if present."""
    env = dict(os.environ) if environ is None else environ
    home = home or resolve_home(None, env)
    explicit = path is not None
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
    elif explicit:
        raise ConfigError(f"config file {file} does not exist")
    reader = _Reader(file.name if file.is_file() else "config")
    warnings = _unknown_keys(data)
    for warning in warnings:
        log.warning("%s: %s", reader.source, warning)
    return Config(
        home=home,
        path=file if file.is_file() else None,
        kanban=_kanban(reader, reader.section(data, "kanban")),
        auxiliary=_auxiliary(reader, reader.section(data, "auxiliary"), env),
        agent=_agent(reader, reader.section(data, "agent"), env),
        platforms=_platforms(reader, reader.section(data, "platforms"), env),
        delivery=_delivery(reader, reader.section(data, "delivery")),
        dashboard=_dashboard(reader, reader.section(data, "dashboard"), env),
        storage=_storage(reader, reader.section(data, "storage"), env),
        warnings=tuple(warnings),
    )


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, value: object) -> ConfigError:
        return ConfigError(f"{self.source}: {key} must be {expected} (got {value!r})")

    def section(self, data: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(prefix + key, "a mapping", value)
        return value

    def boolean(self, data: Mapping[str, Any], key: str, default: bool, prefix: str) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(prefix + key, "true or false", value)
        return value

    def integer(self, data: Mapping[str, Any], key: str, default: int, prefix: str,
                minimum: int = 0) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(prefix + key, f"an integer >= {minimum}", value)
        return value

    def number(self, data: Mapping[str, Any], key: str, default: float, prefix: str,
               minimum: float = 0.0) -> float:
        value = data.get(key, default)
        # .nan compares false with everything, so it would pass `value < minimum`; .inf is no
        # interval or timeout either.
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < minimum):
            raise self.fail(prefix + key, f"a finite number >= {minimum}", value)
        return float(value)

    def text(self, data: Mapping[str, Any], key: str, prefix: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(prefix + key, "a string", value)
        return str(value)

    def strings(self, data: Mapping[str, Any], key: str, prefix: str) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(prefix + key, "a list", value)
        return tuple(str(v) for v in value)


def _kanban(r: _Reader, d: dict[str, Any]) -> KanbanConfig:
    p = "kanban."
    host_cap = d.get("max_spawn_host")
    if host_cap is not None and (isinstance(host_cap, bool) or not isinstance(host_cap, int)
                                 or host_cap < 1):
        raise r.fail(p + "max_spawn_host", "an integer >= 1", host_cap)
    return KanbanConfig(
        default_board=r.text(d, "default_board", p) or "default",
        dispatch_in_gateway=r.boolean(d, "dispatch_in_gateway", True, p),
        dispatch_interval_seconds=r.number(d, "dispatch_interval_seconds", 5.0, p, 0.05),
        max_spawn=r.integer(d, "max_spawn", 4, p, 0),
        max_spawn_host=host_cap,
        failure_limit=r.integer(d, "failure_limit", 2, p, 1),
        claim_ttl_seconds=r.number(d, "claim_ttl_seconds", 900.0, p, 1.0),
        auto_decompose=r.boolean(d, "auto_decompose", True, p),
        auto_decompose_per_tick=r.integer(d, "auto_decompose_per_tick", 3, p, 0),
        auto_promote_children=r.boolean(d, "auto_promote_children", True, p),
        orchestrator_profile=r.text(d, "orchestrator_profile", p),
        default_assignee=r.text(d, "default_assignee", p),
        max_fanout=r.integer(d, "max_fanout", 8, p, 1),
        decompose_cooldown_seconds=r.number(d, "decompose_cooldown_seconds", 300.0, p),
        host_labels=r.strings(d, "host_labels", p),
        workspace_roots=_roots(r, d, "workspace_roots", p),
        max_artifacts_per_completion=r.integer(d, "max_artifacts_per_completion", 100, p, 1),
        max_completion_bytes=r.integer(d, "max_completion_bytes", 512 * 1024 * 1024, p, 1),
    )


def _roots(r: _Reader, d: dict[str, Any], key: str, prefix: str) -> tuple[Path, ...]:
    roots: list[Path] = []
    for text in r.strings(d, key, prefix):
        path = Path(text).expanduser()
        if not path.is_absolute():
            raise r.fail(prefix + key, "a list of absolute paths", text)
        roots.append(path)
    return tuple(roots)


def _slot(r: _Reader, d: dict[str, Any], prefix: str, env: Mapping[str, str]) -> AuxSlot:
    key_env = r.text(d, "api_key_env", prefix)
    return AuxSlot(
        base_url=r.text(d, "base_url", prefix),
        model=r.text(d, "model", prefix),
        api_key_env=key_env,
        api_key=env.get(key_env) if key_env else None,
        timeout=r.number(d, "timeout", 60.0, prefix, 0.01),
        retries=r.integer(d, "retries", 2, prefix, 0),
    )


def _auxiliary(r: _Reader, d: dict[str, Any], env: Mapping[str, str]) -> AuxiliaryConfig:
    return AuxiliaryConfig(
        kanban_decomposer=_slot(r, r.section(d, "kanban_decomposer", "auxiliary."),
                                "auxiliary.kanban_decomposer.", env),
        profile_describer=_slot(r, r.section(d, "profile_describer", "auxiliary."),
                                "auxiliary.profile_describer.", env),
    )


def _agent(r: _Reader, d: dict[str, Any], env: Mapping[str, str]) -> AgentConfig:
    p = "agent."
    kind = r.text(d, "kind", p) or "none"
    if kind not in ("none", "openai", "command"):
        raise r.fail("agent.kind", "one of none, openai, command", kind)
    c = r.section(d, "command", p)
    cp = "agent.command."
    raw_argv = c.get("argv")
    if raw_argv is None:
        argv: tuple[str, ...] = ()
    elif isinstance(raw_argv, str):
        try:
            argv = tuple(shlex.split(raw_argv))
        except ValueError as exc:
            raise r.fail(cp + "argv", f"a command line ({exc})", raw_argv) from None
    elif isinstance(raw_argv, list) and all(isinstance(a, str | int | float) for a in raw_argv):
        argv = tuple(str(a) for a in raw_argv)
    else:
        raise r.fail(cp + "argv", "a list of strings or one command line", raw_argv)
    if kind == "command" and not argv:
        raise ConfigError(f"{r.source}: agent.kind is command, but agent.command.argv is empty")
    o = r.section(d, "openai", p)
    op = "agent.openai."
    key_env = r.text(o, "api_key_env", op)
    openai = OpenAIAgentConfig(
        base_url=r.text(o, "base_url", op),
        model=r.text(o, "model", op),
        api_key_env=key_env,
        api_key=env.get(key_env) if key_env else None,
        timeout=r.number(o, "timeout", 60.0, op, 0.01),
        retries=r.integer(o, "retries", 2, op, 0),
        max_tool_rounds=r.integer(o, "max_tool_rounds", 5, op, 1),
        system_prompt=r.text(o, "system_prompt", op),
    )
    if kind == "openai" and not (openai.base_url and openai.model):
        raise ConfigError(f"{r.source}: agent.kind is openai, but agent.openai.base_url and "
                          "agent.openai.model are not both set")
    return AgentConfig(
        kind=kind,
        history_messages=r.integer(d, "history_messages", 20, p, 0),
        command=CommandAgentConfig(
            argv=argv,
            timeout=r.number(c, "timeout", 120.0, cp, 0.01),
            max_output_bytes=r.integer(c, "max_output_bytes", 64_000, cp, 1),
            env=r.strings(c, "env", cp),
        ),
        openai=openai,
    )


_SECRET_KEYS = ("token_env", "bot_token_env", "app_token_env")
_PLATFORM_KEYS = {"enabled", "allowed_users", "admins", "base_url", "gateway_url",
                  *_SECRET_KEYS}
# The variables read when a platform block does not name its own.
DEFAULT_SECRET_VARS: dict[str, dict[str, str]] = {
    "telegram": {"token": "TELEGRAM_BOT_TOKEN"},
    "slack": {"bot_token": "SLACK_BOT_TOKEN", "app_token": "SLACK_APP_TOKEN"},
    "discord": {"token": "DISCORD_BOT_TOKEN"},
}
REQUIRED_SECRETS: dict[str, tuple[str, ...]] = {
    "telegram": ("token",), "slack": ("bot_token", "app_token"), "discord": ("token",),
}

# Every key the loader reads, by section; anything else is reported by name.
_KNOWN: dict[str, set[str]] = {
    "": {"kanban", "auxiliary", "agent", "platforms", "delivery", "dashboard", "storage"},
    "kanban": set(KanbanConfig.__dataclass_fields__),
    "auxiliary": {"kanban_decomposer", "profile_describer"},
    "auxiliary.*": {"base_url", "model", "api_key_env", "timeout", "retries"},
    "agent": {"kind", "openai", "command", "history_messages"},
    "agent.command": set(CommandAgentConfig.__dataclass_fields__),
    "agent.openai": set(OpenAIAgentConfig.__dataclass_fields__) - {"api_key"} | {"api_key_env"},
    "platforms": {"telegram", "slack", "discord", "web", "fake"},
    "platforms.telegram": {"enabled", "allowed_users", "admins", "base_url", "token_env"},
    "platforms.slack": {"enabled", "allowed_users", "admins", "base_url", "bot_token_env",
                        "app_token_env"},
    "platforms.discord": {"enabled", "allowed_users", "admins", "base_url", "gateway_url",
                          "token_env"},
    "platforms.web": {"enabled", "history_limit"},
    "platforms.fake": {"enabled", "allowed_users", "admins"},
    "delivery": {"allowed_roots", "max_attachment_bytes"},
    "dashboard": {"enabled", "host", "port", "token_env"},
    "storage": {"backend", "dsn_env", "namespace"},
}


def _unknown_keys(data: Mapping[str, Any]) -> list[str]:
    found: list[str] = []

    def check(section: Mapping[str, Any], where: str, known_as: str) -> None:
        known = _KNOWN.get(known_as)
        if known is None:
            return
        for key in section:
            if str(key) not in known:
                found.append(f"unknown key {(where + '.' if where else '') + str(key)} (ignored)")

    check(data, "", "")
    for name in ("kanban", "auxiliary", "agent", "platforms", "delivery", "dashboard", "storage"):
        section = data.get(name)
        if isinstance(section, dict):
            check(section, name, name)
            if name in ("auxiliary", "platforms", "agent"):
                for sub, value in section.items():
                    if isinstance(value, dict):
                        key = "auxiliary.*" if name == "auxiliary" else f"{name}.{sub}"
                        check(value, f"{name}.{sub}", key)
    return found


def _platforms(r: _Reader, d: dict[str, Any], env: Mapping[str, str]) -> dict[str, PlatformConfig]:
    out: dict[str, PlatformConfig] = {}
    for name in sorted(set(d) | {"web"}):
        p = f"platforms.{name}."
        section = r.section(d, name, "platforms.")
        secrets: dict[str, str | None] = {}
        secret_vars: dict[str, str] = {}
        for key in _SECRET_KEYS:
            secret = key.removesuffix("_env")
            var = r.text(section, key, p) or DEFAULT_SECRET_VARS.get(name, {}).get(secret)
            if var:
                secret_vars[secret] = var
                value = env.get(var)
                if value or key in section:
                    secrets[secret] = value
        admins = r.strings(section, "admins", p)
        if "*" in admins:
            raise r.fail(p + "admins", "a list of user ids (no \"*\": every admin is named)",
                         list(admins))
        out[name] = PlatformConfig(
            name=name,
            enabled=r.boolean(section, "enabled", name == "web", p),
            allowed_users=r.strings(section, "allowed_users", p),
            admins=admins,
            base_url=r.text(section, "base_url", p),
            gateway_url=r.text(section, "gateway_url", p),
            secrets=secrets,
            options={k: v for k, v in section.items() if k not in _PLATFORM_KEYS},
            secret_vars=secret_vars,
        )
    return out


def _delivery(r: _Reader, d: dict[str, Any]) -> DeliveryConfig:
    roots = tuple(Path(s).expanduser() for s in r.strings(d, "allowed_roots", "delivery."))
    return DeliveryConfig(
        allowed_roots=roots,
        max_attachment_bytes=r.integer(d, "max_attachment_bytes", 50 * 1024 * 1024,
                                       "delivery.", 1),
    )


def _storage(r: _Reader, d: dict[str, Any], env: Mapping[str, str]) -> StorageConfig:
    p = "storage."
    if env.get("RELAYBOARD_STORAGE") == "postgresql":
        # How a dispatcher tells its workers where the board is (their own home may say
        # otherwise); it overrides the file for any process that has it.
        dsn = env.get("RELAYBOARD_PG_DSN") or None
        if not dsn:
            raise ConfigError("RELAYBOARD_STORAGE=postgresql but RELAYBOARD_PG_DSN is not set")
        namespace = env.get("RELAYBOARD_PG_NAMESPACE", "")
        if namespace and not re.fullmatch(r"[a-z0-9_]{1,16}", namespace):
            raise ConfigError("RELAYBOARD_PG_NAMESPACE: use 1-16 of a-z, 0-9 and '_'")
        return StorageConfig(backend="postgresql", dsn_env="RELAYBOARD_PG_DSN", dsn=dsn,
                             namespace=namespace)
    backend = r.text(d, "backend", p) or "sqlite"
    if backend not in ("sqlite", "postgresql"):
        raise r.fail(p + "backend", "sqlite or postgresql", backend)
    dsn_env = r.text(d, "dsn_env", p) or "RELAYBOARD_PG_DSN"
    dsn = env.get(dsn_env) or None
    if backend == "postgresql" and not dsn:
        raise ConfigError(f"{r.source}: storage.backend is postgresql but {dsn_env} "
                          "(storage.dsn_env) is not set; put the DSN in that variable")
    namespace = r.text(d, "namespace", p) or ""
    if namespace and not re.fullmatch(r"[a-z0-9_]{1,16}", namespace):
        raise r.fail(p + "namespace", "1-16 of a-z, 0-9 and '_'", namespace)
    return StorageConfig(backend=backend, dsn_env=dsn_env, dsn=dsn, namespace=namespace)


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


def _dashboard(r: _Reader, d: dict[str, Any], env: Mapping[str, str]) -> DashboardConfig:
    p = "dashboard."
    token_env = r.text(d, "token_env", p)
    return DashboardConfig(
        enabled=r.boolean(d, "enabled", True, p),
        host=r.text(d, "host", p) or "127.0.0.1",
        port=r.integer(d, "port", 8765, p, 0),
        token_env=token_env,
        token=env.get(token_env) if token_env else None,
    )
