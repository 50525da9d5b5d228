"""Secrets from files: every ``*_env`` key has a ``*_file`` twin, read (stripped) at load and on
every reload, refused with one line when loose, missing, empty or doubled; the doctor names each
secret's source and never its value."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from gateway.config import ConfigError, load_config
from gateway.config_schema import declared_keys
from gateway.daemon.watcher import ConfigFollower
from gateway.doctor import run_checks
from gateway.secret_files import file_key

pytestmark = pytest.mark.sqlite_only


def secret(tmp_path: Path, value: str, mode: int = 0o600, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(value, encoding="utf-8")
    path.chmod(mode)
    return path


def config(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "config.yaml"
    file.write_text(text, encoding="utf-8")
    return file


def refused(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(config(tmp_path, text), environ or {}, home=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_env_key_has_a_file_twin() -> None:
    keys = set(declared_keys())
    env = {k for k in keys if k.endswith("_env") and not k.startswith("agent.command.env")}
    assert "platforms.slack.app_token_env" in env and "storage.dsn_env" in env
    missing = {k for k in env if k.rsplit(".", 1)[0] + "." + file_key(k.rsplit(".", 1)[1])
               not in keys}
    assert missing == set()


def test_each_kind_of_secret_is_read_from_its_file_stripped(tmp_path: Path) -> None:
    token = secret(tmp_path, "  tok-1\n", name="tok")
    dsn = secret(tmp_path, "postgresql://u:pw@127.0.0.1/db\n", name="dsn")
    key = secret(tmp_path, "sk-abc\n", name="key")
    slack = secret(tmp_path, "xoxb-1", name="slack")
    cfg = load_config(config(tmp_path, f"""
dashboard: {{token_file: {token}}}
storage: {{backend: postgresql, dsn_file: {dsn}}}
auxiliary: {{kanban_decomposer: {{base_url: 'http://127.0.0.1:1/v1', model: m,
                                  api_key_file: {key}}}}}
platforms:
  telegram: {{enabled: true, token_file: {token}}}
  slack: {{enabled: true, bot_token_file: {slack}}}
"""), {"SLACK_APP_TOKEN": "xapp-1"}, home=tmp_path)
    assert cfg.dashboard.token == "tok-1"
    assert cfg.storage.dsn == "postgresql://u:pw@127.0.0.1/db"
    assert cfg.auxiliary.kanban_decomposer.api_key == "sk-abc"
    assert cfg.platforms["telegram"].secrets == {"token": "tok-1"}
    assert cfg.platforms["telegram"].missing_secrets() == []
    assert cfg.platforms["slack"].secrets == {"bot_token": "xoxb-1", "app_token": "xapp-1"}
    # the path is no adapter option
    assert not [key for key in cfg.platforms["slack"].options if key.endswith("_file")]
    # every secret read from a file is masked in logs like the others
    assert {"tok-1", "sk-abc", "xoxb-1", "pw"} <= set(cfg.secret_values())


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
@pytest.mark.parametrize("where", ["dashboard: {{token_file: {}}}",
                                   "platforms: {{telegram: {{token_file: {}}}}}"])
def test_a_file_others_may_read_is_refused_with_one_line(tmp_path: Path, mode: int,
                                                         where: str) -> None:
    path = secret(tmp_path, "tok", mode)
    message = refused(tmp_path, where.format(path))
    key = "dashboard.token_file" if "dashboard" in where else "platforms.telegram.token_file"
    assert message == (f"config.yaml: {key}: {path} is readable by its group or others (mode "
                       f"{mode:04o}); run chmod 600 {path} (in Kubernetes, mount the secret "
                       "with defaultMode: 0400)")
    assert "tok" not in message.replace("token", "")


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    for mode in (0o400, 0o600, 0o620):  # group may write, not read: the issue is reading
        path = secret(tmp_path, "tok", mode)
        cfg = load_config(config(tmp_path, f"dashboard: {{token_file: {path}}}"), {},
                          home=tmp_path)
        assert cfg.dashboard.token == "tok"
        path.unlink()


def test_both_sources_for_one_secret_is_an_error(tmp_path: Path) -> None:
    path = secret(tmp_path, "tok")
    assert refused(tmp_path, f"dashboard: {{token_env: DASH, token_file: {path}}}",
                   {"DASH": "x"}) == ("config.yaml: dashboard.token_env and dashboard.token_file "
                                      "are both set; keep one")
    assert refused(tmp_path, f"platforms: {{discord: {{token_env: D, token_file: {path}}}}}") == (
        "config.yaml: platforms.discord.token_env and platforms.discord.token_file are both "
        "set; keep one")


def test_a_file_with_a_defaulted_variable_wins_over_it(tmp_path: Path) -> None:
    path = secret(tmp_path, "from-file")
    cfg = load_config(config(tmp_path, f"storage: {{backend: postgresql, dsn_file: {path}}}\n"
                                       f"platforms: {{telegram: {{token_file: {path}}}}}"),
                      {"RELAYBOARD_PG_DSN": "from-env", "TELEGRAM_BOT_TOKEN": "from-env"},
                      home=tmp_path)
    assert cfg.storage.dsn == "from-file"
    assert cfg.platforms["telegram"].secrets == {"token": "from-file"}


def test_missing_empty_and_relative_files_are_one_line_each(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    assert refused(tmp_path, f"dashboard: {{token_file: {gone}}}") == (
        f"config.yaml: dashboard.token_file: {gone} does not exist")
    empty = secret(tmp_path, " \n", name="empty")
    assert refused(tmp_path, f"dashboard: {{token_file: {empty}}}") == (
        f"config.yaml: dashboard.token_file: {empty} is empty")
    assert refused(tmp_path, "dashboard: {token_file: secrets/tok}") == (
        "config.yaml: dashboard.token_file must be an absolute path to a file holding the "
        "secret (got 'secrets/tok')")
    assert refused(tmp_path, f"dashboard: {{token_file: {tmp_path}}}") == (
        f"config.yaml: dashboard.token_file: {tmp_path} is not a regular file")


def test_a_reload_reads_the_file_again(tmp_path: Path) -> None:
    path = secret(tmp_path, "first")
    file = config(tmp_path, f"dashboard: {{token_file: {path}}}\n")
    follower = ConfigFollower(load_config(file, {}, home=tmp_path), file, {})
    assert follower.current().dashboard.token == "first"
    path.write_text("second\n", encoding="utf-8")  # a rotated secret
    file.write_text(f"dashboard: {{token_file: {path}, port: 8766}}\n", encoding="utf-8")
    stamp = file.stat().st_mtime_ns
    os.utime(file, ns=(stamp + 10**9, stamp + 10**9))
    assert follower.current().dashboard.token == "second"
    path.chmod(0o644)  # a loose file on reload: the change is ignored, the old config kept
    os.utime(file, ns=(stamp + 2 * 10**9, stamp + 2 * 10**9))
    assert follower.current().dashboard.token == "second"


async def test_the_dashboard_accepts_the_token_from_the_file(tmp_path: Path) -> None:
    from gateway.dashboard import create_app

    path = secret(tmp_path, "file-token\n")
    cfg = load_config(config(tmp_path, f"dashboard: {{host: 0.0.0.0, token_file: {path}}}"),
                      {}, home=tmp_path)
    app = create_app(tmp_path, cfg)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
        assert (await client.get("/api/session")).status_code == 401
        ok = await client.get("/api/session", headers={"Authorization": "Bearer file-token"})
        assert ok.status_code == 200


async def test_the_doctor_names_each_source_and_never_a_value(tmp_path: Path) -> None:
    path = secret(tmp_path, "very-secret-token")
    config(tmp_path, f"dashboard: {{port: 0, token_file: {path}}}\n"
                     "platforms: {slack: {enabled: true}}\n"
                     "auxiliary: {profile_describer: {api_key_env: DESCRIBE_KEY}}\n")
    found = {c.name: c for c in await run_checks(
        tmp_path, None, {"PATH": "/usr/bin:/bin", "SLACK_BOT_TOKEN": "xoxb-very-secret"},
        platform_timeout=0.5)}
    assert found["secret:dashboard.token"].status == "ok"
    assert found["secret:dashboard.token"].message == f"from file {path}"
    assert found["secret:platforms.slack.bot_token"].message == "from $SLACK_BOT_TOKEN"
    assert found["secret:platforms.slack.app_token"].status == "warn"
    assert found["secret:platforms.slack.app_token"].message == (
        "from $SLACK_APP_TOKEN, which is not set")
    assert found["secret:auxiliary.profile_describer.api_key"].status == "warn"
    assert "secret:storage.dsn" not in found  # SQLite needs none
    text = repr(list(found.values()))
    assert "very-secret" not in text
