"""The config keys, each declared once: its type, default and bounds, as a pydantic field.

The rest is derived from these models: validation and its one-line messages (:func:`problem`),
the unknown-key warnings (:func:`unknown_keys`) and the list of keys that config.example.yaml
must show (:func:`declared_keys`). A field excluded from dumps is no key: the loader fills it (a
secret read from the variable a ``*_env`` key names, or from the file its ``*_file`` twin names;
see :func:`from_env` and :mod:`gateway.secret_files`).
"""

from __future__ import annotations

import shlex
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from gateway.hooks.template import TemplateError, check_path, fields_of
from gateway.secret_files import SecretFileError, file_key, read_secret_file

# A storage namespace: schemas are named rb_<namespace>_<slug>.
NAMESPACE = r"^[a-z0-9_]{0,16}$"


def from_env(key: str) -> Any:
    """A field that is no key: the secret in the variable that the key ``key`` names."""
    return Field(None, exclude=True, repr=False, json_schema_extra={"from_env": key})


def _command_line(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:  # "config" errors say what the key must be, see problem()
            raise PydanticCustomError("config", "{expected}",
                                      {"expected": f"a command line ({exc})"}) from None
    return value


def _no_star(admins: tuple[str, ...]) -> tuple[str, ...]:
    if "*" in admins:
        raise ValueError("every admin is named")
    return admins


def _absolute(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    if not all(path.is_absolute() for path in paths):
        raise ValueError("relative path")
    return paths


def _time_zone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone") from None
    return name


def _absolute_file(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_absolute():
        raise ValueError("relative path")
    return path


Flag = Annotated[bool, Strict()]  # true or false; not "yes", not 1
Int = Annotated[int, Strict()]  # not 4.0, "4" or true
Number = Annotated[float, Strict()]  # an integer will do; .nan and .inf never (allow_inf_nan)
Names = tuple[str, ...]  # a list; numbers in it are read as strings (user ids)
Paths = Annotated[tuple[Path, ...], AfterValidator(lambda ps: tuple(p.expanduser() for p in ps))]
Roots = Annotated[Paths, AfterValidator(_absolute), Field(description="a list of absolute paths")]
Admins = Annotated[Names, AfterValidator(_no_star),
                   Field(description='a list of user ids (no "*": every admin is named)')]
TimeZone = Annotated[str, AfterValidator(_time_zone),
                    Field(description="an IANA time zone name such as Europe/Berlin or UTC")]
Argv = Annotated[Names, BeforeValidator(_command_line),
                 Field(description="a list of strings or one command line")]
# The ``*_file`` twin of a ``*_env`` key: the file holding the secret (gateway.secret_files).
SecretFile = Annotated[Path | None, AfterValidator(lambda p: p if p is None else _absolute_file(p)),
                       Field(description="an absolute path to a file holding the secret")]


def key_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The fields of ``model`` that are keys of the file."""
    return {name: f for name, f in model.model_fields.items() if not f.exclude}


def env_keys(model: type[BaseModel]) -> dict[str, str]:
    """Field -> the key naming the variable it is read from, for each :func:`from_env` field."""
    return {name: str(f.json_schema_extra["from_env"]) for name, f in model.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and "from_env" in f.json_schema_extra}


class Section(BaseModel):
    """One mapping of config.yaml: frozen; a key that is left out, null or ``''`` takes its
    default; unknown keys are ignored here (the loader names them)."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False,
                              coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _given(cls, data: Any, info: ValidationInfo) -> Any:
        """Read from a file (validated with a context): what the file really sets."""
        if info.context is None or not isinstance(data, dict):
            return data
        keys = key_fields(cls)
        return {k: v for k, v in data.items() if k in keys and v is not None and v != ""}

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> Self:
        """Read from a file: each secret from the file its ``*_file`` key names, else from the
        variable its ``*_env`` key names; one source per secret."""
        env: Mapping[str, str] | None = (info.context or {}).get("env")
        if env is None:
            return self
        for key in type(self).model_fields:
            twin = file_key(key) if key.endswith("_env") else None
            if (twin in type(self).model_fields and key in self.model_fields_set
                    and getattr(self, twin) is not None):
                raise PydanticCustomError("secret_twice", "{key} and {twin} are both set",
                                          {"key": key, "twin": twin})
        found: dict[str, str | None] = {}
        for name, key in env_keys(type(self)).items():
            path = getattr(self, file_key(key), None)
            if path is None:
                found[name] = env.get(getattr(self, key) or "") or None
                continue
            try:
                found[name] = read_secret_file(path)
            except SecretFileError as exc:
                raise _secret_error(file_key(key), str(exc)) from None
        return self.model_copy(update=found) if found else self

    def secrets(self) -> Iterator[str]:
        """Every secret this section and those in it resolved."""
        for name, value in self:
            if isinstance(value, Section):
                yield from value.secrets()
            elif name in env_keys(type(self)) and value:
                yield str(value)


def _secret_error(key: str, message: str) -> PydanticCustomError:
    """A secret's source that cannot be used; :func:`problem` prefixes the section's path."""
    return PydanticCustomError("secret", "{message}", {"key": key, "message": message})


class RetentionConfig(Section):
    """``kanban.retention``: what the gateway forgets once a day (``relayboard kanban gc`` on
    demand). A number of days; 0 keeps that record forever (docs/maintenance.md)."""

    enabled: Flag = True  # the gateway applies it every interval_hours
    interval_hours: Number = Field(default=24.0, ge=0.01)
    events_days: Int = Field(default=0, ge=0)
    files_days: Int = Field(default=0, ge=0)
    outbox_days: Int = Field(default=30, ge=0)


class KanbanConfig(Section):
    """``kanban``: the boards, the dispatcher and decomposition."""

    default_board: str = "default"
    dispatch_in_gateway: Flag = True
    dispatch_interval_seconds: Number = Field(default=5.0, ge=0.05)
    # Live per-board concurrency cap: running tasks on the board, not spawns per cycle.
    max_spawn: Int = Field(default=4, ge=0)
    # Host-wide cap on concurrent workers across boards; None derives it from cores and memory.
    max_spawn_host: Int | None = Field(default=None, ge=1)
    failure_limit: Int = Field(default=2, ge=1)
    claim_ttl_seconds: Number = Field(default=900.0, ge=1.0)
    auto_decompose: Flag = True
    auto_decompose_per_tick: Int = Field(default=3, ge=0)
    auto_promote_children: Flag = True
    orchestrator_profile: str | None = None
    default_assignee: str | None = None
    max_fanout: Int = Field(default=8, ge=1)
    decompose_cooldown_seconds: Number = Field(default=300.0, ge=0.0)
    # Labels of the workspaces this host's dispatcher can reach; a task created with
    # `--host LABEL` is spawned only by a dispatcher that has LABEL (PostgreSQL boards span hosts).
    host_labels: Names = ()
    # Where a `dir:`/`worktree:PATH` workspace may point when it is named from chat or the
    # dashboard (only the operator's own command line names any path). Empty: nowhere.
    workspace_roots: Roots = ()
    # What one `complete` may stage: files (a declared folder counts each file) and their bytes.
    max_artifacts_per_completion: Int = Field(default=100, ge=1)
    max_completion_bytes: Int = Field(default=512 * 1024 * 1024, ge=1)
    retention: RetentionConfig = RetentionConfig()
    # The zone of `--at` times and `--every` schedules, and of the times chat and the dashboard
    # show; None: the host's.
    timezone: TimeZone | None = None
    # Whether chat members (not only admins) may create and manage recurring schedules.
    members_may_schedule: Flag = False


class AuxSlot(Section):
    """``auxiliary.<slot>``: one OpenAI-compatible chat-completions endpoint."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    api_key_file: SecretFile = None
    api_key: str | None = from_env("api_key_env")
    timeout: Number = Field(default=60.0, ge=0.01)
    retries: Int = Field(default=2, ge=0)

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


class AuxiliaryConfig(Section):
    kanban_decomposer: AuxSlot = AuxSlot()
    profile_describer: AuxSlot = AuxSlot()


class CommandAgentConfig(Section):
    """``agent.command``: an external agent CLI, one process per chat message."""

    # argv template with ``{message}``, ``{user}``, ``{platform}``, ``{chat}``, ``{thread}``,
    # filled by the command-template rule (kanban.runtime.template.fill_words): a placeholder
    # that is a word of its own goes in verbatim; inside a script or a larger word only plain
    # values go, so no value can change the command.
    argv: Argv = ()
    timeout: Number = Field(default=120.0, ge=0.01)
    max_output_bytes: Int = Field(default=64_000, ge=1)
    # Variables passed through from the gateway's environment, beyond the worker allowlist
    # (PATH, HOME, LANG, …). The gateway's own tokens never travel unless named here.
    env: Names = ()


class OpenAIAgentConfig(AuxSlot):
    """``agent.openai``: an OpenAI-compatible endpoint (an auxiliary slot's keys) with tools."""

    max_tool_rounds: Int = Field(default=5, ge=1)
    system_prompt: str | None = None


class TranscriptionConfig(Section):
    """``agent.transcription``: an OpenAI-compatible ``/audio/transcriptions`` endpoint that
    turns voice notes from chat into text (unset: voice notes are answered "not set up")."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    api_key_file: SecretFile = None
    api_key: str | None = from_env("api_key_env")
    timeout: Number = Field(default=120.0, ge=0.01)
    # The largest recording sent (OpenAI's endpoint takes 25 MB); a longer one is refused.
    max_bytes: Int = Field(default=25 * 1024 * 1024, ge=1)

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


class AgentConfig(Section):
    kind: Literal["none", "openai", "command"] = "none"
    history_messages: Int = Field(default=20, ge=0)  # kept per chat thread, given to the agent
    command: CommandAgentConfig = CommandAgentConfig()
    openai: OpenAIAgentConfig = OpenAIAgentConfig()
    transcription: TranscriptionConfig = TranscriptionConfig()


class ChatPlatform(Section):
    """``platforms.<name>`` of a chat platform. Each ``*_env`` key of one names the variable of
    a secret it needs; the default is the variable read when the block names none."""

    enabled: Flag = False
    allowed_users: Names = ()
    # Users who act with the operator's rights in chat (served even when not in allowed_users).
    admins: Admins = ()
    # The group chats / channels served (chat or channel ids); none listed: every group the bot
    # is in. One-to-one chats are not affected.
    channels: Names = ()
    # Strangers in one-to-one chats: allowlist (one polite refusal) or pairing (a code the
    # operator approves with `relayboard pairing approve CODE`).
    dm_policy: Literal["allowlist", "pairing"] = "allowlist"


class TelegramConfig(ChatPlatform):
    base_url: str | None = None
    token_env: str = "TELEGRAM_BOT_TOKEN"
    token_file: SecretFile = None
    # polling (getUpdates, the default) or webhook: Telegram POSTs to webhook_url (default
    # dashboard.public_url + /webhooks/telegram), checked against the secret in the variable
    # webhook_secret_env names (read only in webhook mode).
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_secret_env: str = "TELEGRAM_WEBHOOK_SECRET"
    webhook_secret_file: SecretFile = None


class SlackConfig(ChatPlatform):
    base_url: str | None = None
    bot_token_env: str = "SLACK_BOT_TOKEN"
    bot_token_file: SecretFile = None
    app_token_env: str = "SLACK_APP_TOKEN"  # Socket Mode only
    app_token_file: SecretFile = None
    # socket (Socket Mode, the default) or events: the Events API POSTs to
    # dashboard.public_url + /webhooks/slack, signed with the app's signing secret (read only in
    # events mode, from the variable signing_secret_env names).
    mode: Literal["socket", "events"] = "socket"
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    signing_secret_file: SecretFile = None


class DiscordConfig(ChatPlatform):
    base_url: str | None = None
    gateway_url: str | None = None
    token_env: str = "DISCORD_BOT_TOKEN"
    token_file: SecretFile = None


class WebChatConfig(Section):
    """``platforms.web``: the built-in web chat, in the dashboard."""

    enabled: Flag = True
    history_limit: Int = Field(default=500, ge=1)


class PlatformsConfig(Section):
    telegram: TelegramConfig | None = None
    slack: SlackConfig | None = None
    discord: DiscordConfig | None = None
    web: WebChatConfig = WebChatConfig()
    fake: ChatPlatform | None = None  # platforms.fake: in memory, for tests and demos


class DeliveryConfig(Section):
    allowed_roots: Paths = ()
    max_attachment_bytes: Int = Field(default=50 * 1024 * 1024, ge=1)


class DashboardConfig(Section):
    enabled: Flag = True
    host: str = "127.0.0.1"
    port: Int = Field(default=8765, ge=0)
    token_env: str | None = None
    token_file: SecretFile = None
    token: str | None = from_env("token_env")
    # The address people and platforms reach the dashboard at (https://relay.example.com/),
    # when a proxy puts it on the internet; webhooks are served under it (/webhooks/<platform>).
    public_url: str | None = None


class StorageConfig(Section):
    """``storage``: where boards live. The DSN (with its password) is read from the variable
    ``dsn_env`` names, never from the file."""

    backend: Literal["sqlite", "postgresql"] = "sqlite"
    dsn_env: str = "RELAYBOARD_PG_DSN"
    dsn_file: SecretFile = None
    dsn: str | None = from_env("dsn_env")
    # Keeps several installations apart in one database (schemas rb_<namespace>_<slug>).
    namespace: str = Field(default="", pattern=NAMESPACE, description="1-16 of a-z, 0-9 and '_'")


def _yaml_off(value: Any) -> Any:
    """YAML reads an unquoted ``off`` as false: ``sandbox: off`` means the word."""
    return "off" if value is False else value


class WorkersConfig(Section):
    """``workers``: how worker processes are confined (docs/worker.md, "The sandbox")."""

    sandbox: Annotated[Literal["auto", "required", "off"], BeforeValidator(_yaml_off)] = "auto"


class LoggingConfig(Section):
    """``logging``: how the daemon writes its log on stderr (docs/operations.md, "Logs")."""

    format: Literal["text", "json"] = "text"


def _template(text: str) -> str:
    try:
        fields_of(text)
    except TemplateError as exc:
        raise PydanticCustomError("config", "{expected}", {
            "expected": f"a template whose fields are plain dotted paths ({exc})"}) from None
    return text


def _plain_path(path: str | None) -> str | None:
    try:
        return None if path is None else check_path(path)
    except TemplateError:
        raise PydanticCustomError("config", "{expected}", {
            "expected": "a plain dotted path of keys and list indices (such as "
                        "check_suite.id)"}) from None


Template = Annotated[str, AfterValidator(_template)]
HOOK_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class HookThread(Section):
    """One chat thread a hook's tasks are posted to (as ``kanban subscribe`` names one)."""

    platform: str
    chat: str
    thread: str | None = None


class HookConfig(Section):
    """``hooks.<name>``: ``POST /hooks/<name>`` creates a task from this template
    (docs/hooks.md). Only ``title`` and ``body`` take ``{json.PATH}`` fields; the other keys
    are fixed here, so a request can never choose the workspace, the assignee or the board."""

    enabled: Flag = True
    token_env: str | None = None
    token_file: SecretFile = None
    token: str | None = from_env("token_env")
    title: Annotated[Template, Field(min_length=1, description=(
        "a template whose fields are plain dotted paths, such as 'CI failed: {json.repo}'"))]
    body: Template = ""
    assignee: str | None = None
    board: str | None = None  # None: kanban.default_board
    workspace: str = "scratch"  # a dir:/worktree: path must lie under kanban.workspace_roots
    priority: Int = 0
    triage: Flag = False
    subscribe: Annotated[tuple[HookThread, ...], Field(
        description="a list of {platform, chat, thread} mappings")] = ()
    # A body field whose value is the idempotency key when no Idempotency-Key header is sent.
    idempotency_field: Annotated[str | None, AfterValidator(_plain_path)] = None
    # The token bucket: `burst` requests at once, refilled at `rate_per_minute`.
    rate_per_minute: Number = Field(default=60.0, ge=0.01)
    burst: Int = Field(default=10, ge=1)
    max_body_bytes: Int = Field(default=64 * 1024, ge=1, le=16 * 1024 * 1024)
    max_field_chars: Int = Field(default=2000, ge=1)  # each filled-in value is cut here


HookName = Annotated[str, Field(pattern=HOOK_NAME)]


class ConfigFile(Section):
    """The top level of config.yaml."""

    kanban: KanbanConfig = KanbanConfig()
    auxiliary: AuxiliaryConfig = AuxiliaryConfig()
    agent: AgentConfig = AgentConfig()
    platforms: PlatformsConfig = PlatformsConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    dashboard: DashboardConfig = DashboardConfig()
    storage: StorageConfig = StorageConfig()
    workers: WorkersConfig = WorkersConfig()
    logging: LoggingConfig = LoggingConfig()
    hooks: Annotated[dict[HookName, HookConfig],
                     Field(description="a mapping of hook names to hooks")] = {}


def _named_section_of(field: FieldInfo) -> type[Section] | None:
    """The section each entry of a mapping of named sections holds (``hooks``)."""
    if get_origin(field.annotation) is dict:
        kind = get_args(field.annotation)[1]
        if isinstance(kind, type) and issubclass(kind, Section):
            return kind
    return None


def _section_of(field: FieldInfo) -> type[Section] | None:
    """The section a key holds (``X`` or ``X | None``), if it holds one."""
    union = get_origin(field.annotation) in (Union, types.UnionType)
    for kind in (field.annotation, *(get_args(field.annotation) if union else ())):
        if get_origin(kind) is None and isinstance(kind, type) and issubclass(kind, Section):
            return kind
    return None


def declared_keys(model: type[BaseModel] = ConfigFile, prefix: str = "") -> Iterator[str]:
    """Every key that holds a value, dotted (``kanban.max_spawn``)."""
    for name, field in key_fields(model).items():
        section, named = _section_of(field), _named_section_of(field)
        if named is not None:  # shown once, under the placeholder name "*"
            yield from declared_keys(named, f"{prefix}{name}.*.")
        elif section is None:
            yield prefix + name
        else:
            yield from declared_keys(section, f"{prefix}{name}.")


def unknown_keys(data: Mapping[Any, Any], model: type[BaseModel] = ConfigFile,
                 prefix: str = "") -> Iterator[str]:
    """The keys in ``data`` that are not declared, dotted."""
    known = key_fields(model)
    for key, value in data.items():
        field = known.get(str(key))
        section = _section_of(field) if field is not None else None
        named = _named_section_of(field) if field is not None else None
        if field is None:
            yield f"{prefix}{key}"
        elif section is not None and isinstance(value, dict):
            yield from unknown_keys(value, section, f"{prefix}{key}.")
        elif named is not None and isinstance(value, dict):
            for name, entry in value.items():
                if isinstance(entry, dict):
                    yield from unknown_keys(entry, named, f"{prefix}{key}.{name}.")


def problem(error: ErrorDetails, data: Mapping[str, Any]) -> str:
    """One validation error of ``data`` as ``KEY must be EXPECTED (got VALUE)``."""
    model: type[Section] | None = ConfigFile
    field: FieldInfo | None = None
    path: list[str] = []
    value: Any = data
    named: type[Section] | None = None
    if "[key]" in error["loc"]:  # a name of a mapping of named sections (hooks.<name>)
        where = ".".join(map(str, error["loc"][:error["loc"].index("[key]") - 1]))
        return (f"{where}: {error['loc'][-2]!r} is no name; use 1-64 of a-z, 0-9, '-' and '_', "
                "starting with a letter or a digit")
    for part in error["loc"]:  # down to the key; an index in a list reports the whole list
        if named is not None and isinstance(part, str):  # the name of an entry (hooks.<name>)
            path.append(part)
            value = value.get(part) if isinstance(value, dict) else None
            model, named, field = named, None, None
            continue
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            break
        field = model.model_fields[part]
        path.append(part)
        value = value.get(part) if isinstance(value, dict) else None
        model, named = _section_of(field), _named_section_of(field)
    if error["type"] in ("secret", "secret_twice"):
        ctx = error.get("ctx") or {}
        where = "".join(f"{part}." for part in error["loc"])
        if error["type"] == "secret_twice":  # one source per secret
            return f"{where}{ctx['key']} and {where}{ctx['twin']} are both set; keep one"
        return f"{where}{ctx['key']}: {ctx['message']}"
    if error["type"] == "config":
        expected = str((error.get("ctx") or {})["expected"])
    else:
        expected = _describe(field) if field is not None else "valid"
    return f"{'.'.join(path)} must be {expected} (got {value!r})"


def _describe(field: FieldInfo) -> str:
    """What a key's declaration accepts, in words."""
    if field.description:
        return field.description
    if _section_of(field) is not None:
        return "a mapping"
    kind = _bare(field.annotation)
    floor = next((f" >= {m.ge}" for m in field.metadata if isinstance(m, annotated_types.Ge)), "")
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer" + floor
    if kind is float:
        return "a finite number" + floor
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, get_args(kind)))
    if get_origin(kind) is tuple:
        return "a list of " + ("paths" if _bare(get_args(kind)[0]) is Path else "strings")
    return "a string"


def _bare(kind: Any) -> Any:
    """``kind`` without ``Annotated`` and ``| None``."""
    while get_origin(kind) in (Annotated, Union, types.UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    return kind
