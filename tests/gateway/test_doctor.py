"""``relayboard doctor``: each check in its good and its bad state, the platforms through their
real SDKs against the loopback fakes, ``--json``, the exit code, and no secret in the output."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import kanban.runtime.sandbox as sandbox
from gateway.daemon.lock import HomeLock
from gateway.doctor import Check, run_checks
from kanban.storage import pg_schema
from tests.fakes import discord_server, slack_server, telegram_server
from tests.fakes.common import free_port
from tests.gateway.conftest import Cli

pytestmark = pytest.mark.sqlite_only


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(text, encoding="utf-8")


async def checks(home: Path, environ: Mapping[str, str] | None = None,
                 **options: Any) -> dict[str, Check]:
    env = {"PATH": "/usr/bin:/bin", **(environ or {})}
    found = await run_checks(home, None, env, platform_timeout=5.0, **options)
    return {c.name: c for c in found}


def checks_now(home: Path) -> dict[str, Check]:
    """:func:`checks` from a synchronous test (one that drives the CLI)."""
    return asyncio.run(checks(home))


def quiet_dashboard(home: Path, extra: str = "") -> None:
    """A config whose dashboard port is free (the default one may be taken on a test host)."""
    write_config(home, f"dashboard:\n  port: {free_port()}\n{extra}")


# ---- the whole pass, through the CLI --------------------------------------------------------

def test_a_healthy_home_passes_and_exits_0(rb: Cli) -> None:
    quiet_dashboard(rb.home)
    rb.create("a task")
    proc = rb.main("doctor")
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert all(line.startswith(("✓", "⚠")) for line in lines[:-1]), lines
    assert any(line.startswith("✓ board:default: quick_check ok, 1 task(s)") for line in lines)
    assert lines[-1].endswith("0 failure(s)")


def test_json_for_scripts_and_exit_1_on_any_failure(rb: Cli) -> None:
    write_config(rb.home, "kanban: {max_spawn: -1}\n")
    proc = rb.main("doctor", "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    first = data["checks"][0]
    assert first == {"name": "config", "status": "fail",
                     "message": "config.yaml: kanban.max_spawn must be an integer >= 0 (got -1)",
                     "fix": first["fix"]}
    assert "config.example.yaml" in first["fix"]
    # The rest still ran, on the defaults.
    names = {c["name"] for c in data["checks"]}
    assert {"lock", "sandbox", "boards", "profile:alice"} <= names
    assert "storage" not in names  # which storage is meant is unknown without a config


# ---- config and tokens ----------------------------------------------------------------------

async def test_config_unknown_keys_warn(tmp_path: Path) -> None:
    write_config(tmp_path, "kanban:\n  max_spwan: 3\n")
    found = await checks(tmp_path)
    assert found["config"].status == "warn"
    assert "unknown key kanban.max_spwan" in found["config"].message


async def test_tokens_missing_then_set(tmp_path: Path) -> None:
    write_config(tmp_path, "platforms:\n  slack: {enabled: true}\n")
    found = await checks(tmp_path)
    check = found["tokens:slack"]
    assert check.status == "fail"
    assert check.message == "SLACK_BOT_TOKEN, SLACK_APP_TOKEN are not set"
    assert "reach:slack" not in found  # nothing to call without a token
    env = {"SLACK_BOT_TOKEN": "xoxb-secret-value", "SLACK_APP_TOKEN": "xapp-secret-value"}
    async with slack_server.SlackServer() as server:
        write_config(tmp_path, f"platforms:\n  slack: {{enabled: true, base_url: "
                               f"'{server.api_base}'}}\n")
        found = await checks(tmp_path, env)
    assert found["tokens:slack"].status == "ok"
    assert found["tokens:slack"].message == "SLACK_APP_TOKEN, SLACK_BOT_TOKEN set"
    assert "secret-value" not in json.dumps([c.to_dict() for c in found.values()])


# ---- platforms through their SDKs -------------------------------------------------------------

PLATFORMS = {
    "telegram": (telegram_server.TelegramServer, "TELEGRAM_BOT_TOKEN", telegram_server.TOKEN,
                 "@relay_bot"),
    "slack": (slack_server.SlackServer, "SLACK_BOT_TOKEN", slack_server.BOT_TOKEN,
              "relay (T1)"),
    "discord": (discord_server.DiscordServer, "DISCORD_BOT_TOKEN", discord_server.TOKEN,
                "relay"),
}


@pytest.mark.parametrize("name", sorted(PLATFORMS))
async def test_each_platform_answers_or_refuses_its_token(tmp_path: Path, name: str) -> None:
    server_cls, var, token, who = PLATFORMS[name]
    async with server_cls() as server:
        write_config(tmp_path, f"platforms:\n  {name}: {{enabled: true, base_url: "
                               f"'{server.api_base}'}}\n")
        env = {var: token, "SLACK_APP_TOKEN": slack_server.APP_TOKEN}
        good = (await checks(tmp_path, env))[f"reach:{name}"]
        assert good.status == "ok", good
        assert good.message.startswith(f"127.0.0.1:{server.port}")
        assert who in good.message
        wrong = "999:WRONG-secret-token" if name == "telegram" else "wrong-secret-token"
        bad = (await checks(tmp_path, {**env, var: wrong}))[f"reach:{name}"]
    assert bad.status == "fail", bad
    assert "refused the token" in bad.message
    assert var in bad.fix
    assert "WRONG" not in bad.line() and "wrong-secret" not in bad.line()


async def test_an_unreachable_platform_fails(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, f"platforms:\n  slack: {{enabled: true, base_url: "
                           f"'http://127.0.0.1:{port}/api/'}}\n")
    found = await checks(tmp_path, {"SLACK_BOT_TOKEN": "x", "SLACK_APP_TOKEN": "y"})
    check = found["reach:slack"]
    assert check.status == "fail"
    assert check.message.startswith(f"127.0.0.1:{port}: ")
    assert "base_url" in check.fix


# ---- the dashboard's port and the lock ---------------------------------------------------------

async def test_dashboard_port_free_then_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_config(tmp_path, f"dashboard: {{port: {port}}}\n")
        busy = (await checks(tmp_path))["dashboard"]
    assert busy.status == "fail"
    assert busy.message.startswith(f"cannot bind 127.0.0.1:{port}")
    assert "dashboard.port" in busy.fix
    free = (await checks(tmp_path))["dashboard"]
    assert (free.status, free.message) == ("ok", f"127.0.0.1:{port} is free")


async def test_dashboard_beyond_loopback_without_a_token_fails(tmp_path: Path) -> None:
    write_config(tmp_path, "dashboard: {host: 0.0.0.0}\n")
    check = (await checks(tmp_path))["dashboard"]
    assert check.status == "fail" and "bearer token" in check.message


async def test_lock_free_held_and_broken(tmp_path: Path) -> None:
    quiet_dashboard(tmp_path)
    assert (await checks(tmp_path))["lock"].status == "ok"
    with HomeLock(tmp_path):
        held = (await checks(tmp_path))["lock"]
    assert held.status == "ok" and "a gateway runs on this home (pid" in held.message
    (tmp_path / "gateway.lock").unlink()
    (tmp_path / "gateway.lock").mkdir()
    broken = (await checks(tmp_path))["lock"]
    assert broken.status == "fail"
    assert broken.message.startswith("cannot open ")


# ---- boards ---------------------------------------------------------------------------------

def test_board_integrity_ok_then_corrupt(rb: Cli) -> None:
    for i in range(200):
        rb.create(f"task {i}", "--body", "x" * 500)
    db = rb.home / "boards" / "default" / "kanban.db"
    good = checks_now(rb.home)["board:default"]
    assert good.status == "ok" and "200 task(s)" in good.message
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data) - page, page):  # every page but the header
        data[offset + 8:offset + 200] = b"\xff" * 192
    db.write_bytes(bytes(data))
    bad = checks_now(rb.home)["board:default"]
    assert bad.status == "fail"
    assert bad.message.startswith("quick_check: ")
    assert "boards restore" in bad.fix


def test_stale_staging_folders_warn(rb: Cli) -> None:
    task = rb.create("x")
    assert checks_now(rb.home)["staging"].status == "ok"
    dead = rb.home / "boards" / "default" / "attachments" / str(task) / \
        ".staging-p999999999-1-abcdef"
    dead.mkdir(parents=True)
    check = checks_now(rb.home)["staging:default"]
    assert check.status == "warn"
    assert check.message == "1 staging folder(s) left by killed processes"
    assert "gc" in check.fix
    assert dead.exists()  # the doctor only looks


# ---- sandbox and profiles ---------------------------------------------------------------------

@pytest.mark.parametrize(("level", "abi", "status"), [
    ("auto", 7, "ok"), ("auto", 0, "warn"), ("required", 0, "fail"), ("off", 7, "warn"),
])
async def test_sandbox_levels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str,
                              abi: int, status: str) -> None:
    monkeypatch.setattr(sandbox, "_abi", abi)
    write_config(tmp_path, f"workers: {{sandbox: '{level}'}}\n")
    check = (await checks(tmp_path))["sandbox"]
    assert check.status == status, check


async def test_profiles_whose_command_is_not_on_path(tmp_path: Path) -> None:
    for name, command in (("good", "sh -c 'echo {task_id}'"),
                          ("gone", "no-such-agent-cli --task {task_id}")):
        folder = tmp_path / "profiles" / name
        folder.mkdir(parents=True)
        (folder / "profile.yaml").write_text(f"command: {command}\n", encoding="utf-8")
    found = await checks(tmp_path)
    assert found["profile:good"].status == "ok"
    assert found["profile:good"].message.startswith("command sh is /")
    gone = found["profile:gone"]
    assert gone.status == "fail"
    assert gone.message == "command no-such-agent-cli is not found on PATH"
    assert "profile.yaml" in gone.fix


# ---- PostgreSQL -----------------------------------------------------------------------------

async def test_postgresql_unreachable_fails_without_echoing_the_password(
        tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, "storage: {backend: postgresql}\n")
    dsn = f"postgresql://rb:hunter2-secret@127.0.0.1:{port}/rb"
    found = await checks(tmp_path, {"RELAYBOARD_PG_DSN": dsn})
    check = found["postgresql"]
    assert check.status == "fail"
    assert f"127.0.0.1:{port}" in check.message
    assert "RELAYBOARD_PG_DSN" in check.fix
    assert "hunter2" not in json.dumps([c.to_dict() for c in found.values()])


@pytest.mark.postgres_only
async def test_postgresql_connection_and_schema(tmp_path: Path) -> None:
    from kanban import Boards
    from kanban.storage.backend import Storage
    from kanban.storage.pg import drop_namespace
    from tests.storage_backends import pg_dsn

    dsn = pg_dsn()
    write_config(tmp_path, "storage: {backend: postgresql, namespace: doctor1}\n")
    boards = Boards(tmp_path, storage=Storage.postgres(dsn, namespace="doctor1"))
    try:
        await boards.create("team")
    finally:
        await boards.close()
    try:
        check = (await checks(tmp_path, {"RELAYBOARD_PG_DSN": dsn}))["postgresql"]
    finally:
        drop_namespace(dsn, "doctor1")
    assert check.status == "ok", check
    assert f"1 board(s), schema {pg_schema.MIGRATIONS[-1].name}" in check.message
