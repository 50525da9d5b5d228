"""config.example.yaml documents every declared key and loads to exactly the defaults; a bad
value is refused with one line that names its key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, load_config
from gateway.config_schema import (
    DashboardConfig,
    DeliveryConfig,
    KanbanConfig,
    StorageConfig,
    declared_keys,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def test_example_config_loads_to_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE, {}, home=tmp_path)
    assert cfg.kanban == KanbanConfig()
    assert cfg.delivery == DeliveryConfig()
    assert cfg.dashboard == DashboardConfig()
    assert cfg.storage == StorageConfig()
    assert cfg.agent.kind == "none"
    assert set(cfg.platforms) == {"telegram", "slack", "discord", "web", "fake"}
    assert cfg.platforms["web"].enabled is True
    assert not any(p.enabled for name, p in cfg.platforms.items() if name != "web")
    assert cfg.auxiliary.kanban_decomposer.configured is False
    assert [hook.enabled for hook in cfg.hooks.values()] == [False]


def test_secrets_come_from_the_named_environment_variables(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(
        "platforms:\n  telegram: {enabled: true, token_env: TG, allowed_users: [42]}\n"
        "auxiliary:\n  kanban_decomposer: {base_url: 'http://127.0.0.1:1/v1', model: m,"
        " api_key_env: KEY}\n",
        encoding="utf-8",
    )
    cfg = load_config(file, {"TG": "secret-token", "KEY": "k"}, home=tmp_path)
    assert cfg.platforms["telegram"].secrets == {"token": "secret-token"}
    assert cfg.platforms["telegram"].allowed_users == ("42",)
    assert cfg.auxiliary.kanban_decomposer.api_key == "k"
    assert cfg.auxiliary.kanban_decomposer.configured


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kanban: [1]", "kanban must be a mapping"),
        ("kanban: {max_spawn: -1}", "kanban.max_spawn must be an integer >= 0"),
        ("kanban: {failure_limit: 'x'}", "kanban.failure_limit"),
        ("dashboard: {enabled: 'yes'}", "dashboard.enabled must be true or false"),
        ("agent: {kind: robot}", "agent.kind must be one of none, openai, command"),
        ("- just a list", "top level must be a mapping"),
        ("kanban: {max_spawn: [", "cannot read config"),
        ("kanban: {claim_ttl_seconds: .nan}", "kanban.claim_ttl_seconds must be a finite number"),
        ("kanban: {dispatch_interval_seconds: .inf}",
         "kanban.dispatch_interval_seconds must be a finite number"),
        ("kanban: {max_artifacts_per_completion: 0}",
         "kanban.max_artifacts_per_completion must be an integer >= 1"),
    ],
)
def test_bad_config_gives_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=None) as info:
        load_config(file, {}, home=tmp_path)
    assert needle in str(info.value)
    assert str(tmp_path) not in str(info.value)


NAMED = ("hooks",)  # mappings of named entries: their keys are declared under "<name>.*."


def dotted_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    """The keys of a loaded YAML mapping that hold a value, dotted."""
    keys: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict) and f"{prefix}{key}" in NAMED:
            for entry in value.values():
                keys |= dotted_keys(entry, f"{prefix}{key}.*.")
        elif isinstance(value, dict):
            keys |= dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_the_example_shows_every_declared_key_and_no_other() -> None:
    shown = dotted_keys(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    declared = set(declared_keys())
    assert "kanban.max_spawn" in declared and "platforms.slack.app_token_env" in declared
    assert not {"auxiliary.kanban_decomposer.api_key", "dashboard.token", "storage.dsn"} & declared
    assert declared - shown == set(), "declared but not in config.example.yaml"
    assert shown - declared == set(), "in config.example.yaml but not declared"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a wrong type
        ("kanban: {failure_limit: 'x'}",
         "config.yaml: kanban.failure_limit must be an integer >= 1 (got 'x')"),
        ("kanban: {auto_decompose: 1}",
         "config.yaml: kanban.auto_decompose must be true or false (got 1)"),
        ("kanban: {host_labels: gpu}",
         "config.yaml: kanban.host_labels must be a list of strings (got 'gpu')"),
        # out of range, and numbers that are none
        ("kanban: {max_spawn_host: 0}",
         "config.yaml: kanban.max_spawn_host must be an integer >= 1 (got 0)"),
        ("kanban: {claim_ttl_seconds: 0.5}",
         "config.yaml: kanban.claim_ttl_seconds must be a finite number >= 1.0 (got 0.5)"),
        ("agent: {command: {timeout: -.inf}}",
         "config.yaml: agent.command.timeout must be a finite number >= 0.01 (got -inf)"),
        # an unknown value of a choice
        ("storage: {backend: mysql}",
         "config.yaml: storage.backend must be one of sqlite, postgresql (got 'mysql')"),
        # in a nested section
        ("auxiliary: {profile_describer: {retries: 1.5}}",
         "config.yaml: auxiliary.profile_describer.retries must be an integer >= 0 (got 1.5)"),
        ("auxiliary: {kanban_decomposer: [x]}",
         "config.yaml: auxiliary.kanban_decomposer must be a mapping (got ['x'])"),
        ("platforms: {web: {history_limit: 0}}",
         "config.yaml: platforms.web.history_limit must be an integer >= 1 (got 0)"),
        ("platforms: {discord: {allowed_users: [[1]]}}",
         "config.yaml: platforms.discord.allowed_users must be a list of strings (got [[1]])"),
        ("platforms: {slack: {admins: [U1, '*']}}",
         'config.yaml: platforms.slack.admins must be a list of user ids (no "*": every admin '
         "is named) (got ['U1', '*'])"),
        ("kanban: {workspace_roots: [/srv, projects]}",
         "config.yaml: kanban.workspace_roots must be a list of absolute paths "
         "(got ['/srv', 'projects'])"),
        ("agent: {command: {argv: 'run \"{message}'}}",
         "config.yaml: agent.command.argv must be a command line (No closing quotation) "
         "(got 'run \"{message}')"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(file, {}, home=tmp_path)
    assert str(info.value) == message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_null_or_empty_takes_the_default_and_numbers_read_as_text(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("kanban: {max_spawn: null, default_board: '', dispatch_interval_seconds: 2}\n"
                    "agent: null\nplatforms:\n  telegram: {allowed_users: [42, U7], admins: [7]}\n"
                    "delivery: {allowed_roots: [~/out]}\n", encoding="utf-8")
    cfg = load_config(file, {}, home=tmp_path)
    assert (cfg.kanban.max_spawn, cfg.kanban.default_board) == (4, "default")
    assert cfg.kanban.dispatch_interval_seconds == 2.0
    assert cfg.agent.kind == "none"
    assert cfg.platforms["telegram"].allowed_users == ("42", "U7")
    assert cfg.platforms["telegram"].admins == ("7",)
    assert cfg.delivery.allowed_roots == (Path("~/out").expanduser(),)


def test_a_secret_is_never_read_from_the_file(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("dashboard: {token: in-the-file}\nstorage: {dsn: 'postgresql://h/db'}\n",
                    encoding="utf-8")
    cfg = load_config(file, {}, home=tmp_path)
    assert (cfg.dashboard.token, cfg.storage.dsn) == (None, None)
    assert cfg.warnings == ("unknown key dashboard.token (ignored)",
                            "unknown key storage.dsn (ignored)")


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", {}, home=tmp_path)


def test_home_resolution_order(tmp_path: Path) -> None:
    from gateway.config import resolve_home

    assert resolve_home(tmp_path / "a", {"RELAYBOARD_HOME": str(tmp_path / "b")}) == tmp_path / "a"
    assert resolve_home(None, {"RELAYBOARD_HOME": str(tmp_path / "b")}) == tmp_path / "b"
    assert resolve_home(None, {"HOME": str(tmp_path)}) == tmp_path / ".relayboard"


def test_the_example_config_has_no_unknown_keys(tmp_path: Path) -> None:
    assert load_config(EXAMPLE, {}, home=tmp_path).warnings == ()


def test_unknown_keys_are_warned_about_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("kanban: {max_spwan: 3}\nplatforms:\n  telegram: {tokn_env: X}\n"
                    "colour: blue\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="gateway.config"):
        cfg = load_config(file, {}, home=tmp_path)
    assert cfg.warnings == ("unknown key colour (ignored)",
                            "unknown key kanban.max_spwan (ignored)",
                            "unknown key platforms.telegram.tokn_env (ignored)")
    assert [r.getMessage() for r in caplog.records] == [f"config.yaml: {w}" for w in cfg.warnings]


def test_an_enabled_platform_without_its_token_names_the_variable(tmp_path: Path) -> None:
    from gateway.config import require_platform_secrets

    file = tmp_path / "config.yaml"
    file.write_text("platforms:\n  telegram: {enabled: true}\n  discord: {token_env: DT}\n",
                    encoding="utf-8")
    cfg = load_config(file, {}, home=tmp_path)  # kanban verbs never need the tokens
    with pytest.raises(ConfigError) as info:
        require_platform_secrets(cfg)
    assert str(info.value) == "platforms.telegram: TELEGRAM_BOT_TOKEN is not set"
    cfg = load_config(file, {"TELEGRAM_BOT_TOKEN": "1:x"}, home=tmp_path)
    require_platform_secrets(cfg)  # discord is not enabled: its missing DT does not matter
    assert cfg.platforms["telegram"].secrets == {"token": "1:x"}
    assert cfg.secret_values() == ["1:x"]


def test_agent_settings_are_typed_and_checked(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "agent:\n  kind: command\n  command: {argv: 'my-agent --user {user}', timeout: 5}\n"
        "  openai: {api_key_env: AGENT_KEY}\n", encoding="utf-8")
    cfg = load_config(cfg_file, {"AGENT_KEY": "k-123"}, home=tmp_path)
    assert cfg.agent.command.argv == ("my-agent", "--user", "{user}")
    assert cfg.agent.command.timeout == 5.0 and cfg.agent.history_messages == 20
    assert "k-123" in cfg.secret_values()  # redacted from logs like every other secret
    for text, needle in (("agent: {kind: command}", "agent.command.argv is empty"),
                         ("agent: {kind: openai}", "agent.openai.base_url"),
                         ("agent: {command: {argv: {a: 1}}}", "agent.command.argv must be")):
        cfg_file.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=needle):
            load_config(cfg_file, {}, home=tmp_path)


def test_postgresql_storage_reads_its_dsn_from_the_named_variable(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("storage: {backend: postgresql, dsn_env: TEAM_DSN, namespace: team_a}\n",
                    encoding="utf-8")
    dsn = "postgresql://rb:pw-1@db.internal/relayboard"
    cfg = load_config(file, {"TEAM_DSN": dsn}, home=tmp_path)
    assert (cfg.storage.backend, cfg.storage.dsn, cfg.storage.namespace) == (
        "postgresql", dsn, "team_a")
    assert dsn in cfg.secret_values() and "pw-1" in cfg.secret_values()  # redacted from logs
    assert "pw-1" not in repr(cfg)
    with pytest.raises(ConfigError, match=re.escape("TEAM_DSN (storage.dsn_env) is not set")):
        load_config(file, {}, home=tmp_path)
    file.write_text("storage: {backend: mysql}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape("storage.backend")):
        load_config(file, {}, home=tmp_path)
    file.write_text("storage: {namespace: 'Bad-Name'}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape("storage.namespace")):
        load_config(file, {}, home=tmp_path)


def test_a_workers_environment_names_its_boards_storage(tmp_path: Path) -> None:
    env = {"RELAYBOARD_STORAGE": "postgresql", "RELAYBOARD_PG_DSN": "postgresql://h/db",
           "RELAYBOARD_PG_NAMESPACE": "ns1"}
    cfg = load_config(None, env, home=tmp_path)  # the worker's own home says nothing
    assert (cfg.storage.backend, cfg.storage.dsn, cfg.storage.namespace) == (
        "postgresql", "postgresql://h/db", "ns1")
    with pytest.raises(ConfigError, match=re.escape("RELAYBOARD_PG_DSN is not set")):
        load_config(None, {"RELAYBOARD_STORAGE": "postgresql"}, home=tmp_path)


@pytest.mark.parametrize(("dsn", "password"), [
    # libpq's parser quotes the very token it trips on: here, the password itself.
    ("postgresql://rb:pw%ZZ-unparsed@db.internal/relayboard", "pw%ZZ-unparsed"),
    ("postgresql://rb:pw-unparsed-2@db.internal/relayboard?no_such_option=1", "pw-unparsed-2"),
    ("host=db.internal password=pw-unparsed-3 no_such_option=1", "pw-unparsed-3"),
    ("host=db.internal password='pw unparsed 4", "pw unparsed 4"),
])
def test_an_unparseable_dsn_keeps_its_password_out_of_logs(dsn: str, password: str) -> None:
    import io
    import logging

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from gateway.daemon.logs import setup_logging

    cfg = load_config(None, {"RELAYBOARD_STORAGE": "postgresql", "RELAYBOARD_PG_DSN": dsn},
                      home=Path("/nonexistent-home"))
    with pytest.raises(psycopg.Error) as refused:
        conninfo_to_dict(dsn)
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = setup_logging(cfg.secret_values(), stream=stream)  # the daemon's own handler
    try:
        log = logging.getLogger("relayboard.test.dsn")
        log.error("storage: %s", refused.value)
        log.error("the password alone: %s; the DSN: %s", password, dsn)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    logged = stream.getvalue()
    assert logged.count("storage: ") == 1 and logged.count("the DSN: ") == 1
    assert password not in logged
