"""``relayboard security audit``: each finding present and absent, ``--fix`` on real file modes,
``--json``, the exit code, and PostgreSQL's role on a real server."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

import kanban.runtime.sandbox as sandbox
from gateway.audit import Finding, audit
from kanban.agents.profiles import Profiles
from tests.gateway.conftest import Cli

pytestmark = pytest.mark.sqlite_only

LONG = "x" * 40


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private home on a kernel with the sandbox (each test loosens one thing)."""
    monkeypatch.setattr(sandbox, "_abi", 7)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    return home


def configure(home: Path, text: str) -> None:
    path = home / "config.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


async def found(home: Path, environ: Mapping[str, str] | None = None) -> dict[str, Finding]:
    return {f.check: f for f in await audit(home, None, dict(environ or {}))}


async def test_a_private_default_home_has_no_findings(home: Path) -> None:
    configure(home, "dashboard: {port: 0}\n")
    assert await found(home) == {}


@pytest.mark.parametrize(("text", "env", "check", "severity"), [
    ("dashboard: {host: 0.0.0.0}", {}, "dashboard.public", "high"),
    ("dashboard: {host: 0.0.0.0, token_env: T}", {"T": "short"}, "dashboard.short_token",
     "high"),
    ("dashboard: {token_env: T}", {"T": "short"}, "dashboard.short_token", "medium"),
])
async def test_the_dashboard(home: Path, text: str, env: dict[str, str], check: str,
                             severity: str) -> None:
    configure(home, text)
    finding = (await found(home, env))[check]
    assert finding.severity == severity
    assert "short" not in finding.what + finding.fix  # never the token itself
    configure(home, text.replace("0.0.0.0", "127.0.0.1"))
    safe = {"T": LONG}
    assert check not in await found(home, safe)
    configure(home, "dashboard: {host: 0.0.0.0, token_env: T}")
    assert await found(home, safe) == {}


async def test_everyone_allowed_where_members_create_tasks(home: Path) -> None:
    configure(home, "platforms: {telegram: {enabled: true, allowed_users: ['*'], admins: [1]}}")
    finding = (await found(home))["platforms.telegram.everyone"]
    assert finding.severity == "high"
    assert "members create tasks" in finding.what
    configure(home, "platforms: {telegram: {enabled: true, allowed_users: [42], admins: [1]}}")
    assert await found(home) == {}
    configure(home, "platforms: {telegram: {enabled: false, allowed_users: ['*']}}")
    assert await found(home) == {}


async def test_no_admins(home: Path) -> None:
    configure(home, "platforms: {slack: {enabled: true, allowed_users: [U1]},\n"
                    "            discord: {enabled: true, allowed_users: [2]}}")
    finding = (await found(home))["platforms.no_admins"]
    assert finding.severity == "low"
    assert "discord, slack" in finding.what
    configure(home, "platforms: {slack: {enabled: true, allowed_users: [U1], admins: [U1]},\n"
                    "            discord: {enabled: true, allowed_users: [2]}}")
    assert "platforms.no_admins" not in await found(home)


@pytest.mark.parametrize(("level", "abi", "severity"), [
    ("off", 7, "high"), ("auto", 0, "high"), ("required", 0, "medium"),
    ("auto", 7, None), ("required", 7, None),
])
async def test_the_sandbox(home: Path, monkeypatch: pytest.MonkeyPatch, level: str, abi: int,
                           severity: str | None) -> None:
    monkeypatch.setattr(sandbox, "_abi", abi)
    configure(home, f"workers: {{sandbox: '{level}'}}")
    finding = (await found(home)).get("workers.sandbox")
    assert (finding.severity if finding else None) == severity


async def test_workspace_roots_covering_the_home(home: Path, tmp_path: Path) -> None:
    for root in ("/", str(tmp_path), str(home)):
        configure(home, f"kanban: {{workspace_roots: ['{root}']}}")
        finding = (await found(home))["kanban.workspace_roots"]
        assert finding.severity == "high" and root in finding.what
    projects = tmp_path / "projects"
    projects.mkdir()
    configure(home, f"kanban: {{workspace_roots: ['{projects}']}}")
    assert await found(home) == {}


async def test_profiles_with_literal_secrets_in_env(home: Path) -> None:
    profiles = Profiles(home)
    profiles.create("analyst")
    (profiles.path("analyst") / "profile.yaml").write_text(
        "env:\n  OPENAI_API_KEY: sk-live-123\n  DB_PASSWORD: hunter2\n  AGENT_MODE: fast\n",
        encoding="utf-8")
    configure(home, "")
    finding = (await found(home))["profiles.analyst.env"]
    assert finding.severity == "medium"
    assert "DB_PASSWORD, OPENAI_API_KEY" in finding.what and "AGENT_MODE" not in finding.what
    assert "sk-live" not in finding.what + finding.fix and "hunter2" not in finding.what
    (profiles.path("analyst") / "profile.yaml").write_text(
        "env:\n  OPENAI_API_KEY: {from_env: ANALYST_KEY}\n  AGENT_MODE: fast\n",
        encoding="utf-8")
    assert await found(home) == {}


async def test_hooks_with_short_tokens(home: Path) -> None:
    text = "hooks: {ci: {token_env: H, title: x}}"
    configure(home, text)
    assert (await found(home, {"H": "abc"}))["hooks.ci.token"].severity == "high"
    assert (await found(home, {"H": "a" * 20}))["hooks.ci.token"].severity == "medium"
    assert await found(home, {"H": LONG}) == {}
    configure(home, "hooks: {ci: {enabled: false, token_env: H, title: x}}")
    assert await found(home, {"H": "abc"}) == {}


async def test_loose_file_modes(home: Path, tmp_path: Path) -> None:
    configure(home, "")
    (home / "config.yaml").chmod(0o644)
    board = home / "boards" / "default"
    board.mkdir(parents=True, mode=0o700)
    (home / "boards").chmod(0o700)
    db = board / "kanban.db"
    db.write_text("x")
    db.chmod(0o600)
    findings = await found(home)
    assert set(findings) == {"files.readable"}
    assert findings["files.readable"].paths == (f"{home / 'config.yaml'} (0644)",)
    db.chmod(0o664)
    findings = await found(home)
    assert findings["files.writable"].severity == "high"
    assert findings["files.writable"].paths == (f"{db} (0664)",)
    # a link is never judged (nor followed by --fix)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    outside.chmod(0o666)
    (board / "link").symlink_to(outside)
    assert "link" not in repr(await found(home))


def test_the_command_fixes_modes_says_so_and_exits_by_severity(
        home: Path, tmp_path: Path) -> None:
    rb = Cli(home=home, runner=CliRunner())
    configure(home, "")
    (home / "config.yaml").chmod(0o644)
    secret = tmp_path / "dash-token"
    secret.write_text(LONG)
    secret.chmod(0o640)
    configure(home, f"dashboard: {{token_file: {secret}}}")
    (home / "config.yaml").chmod(0o666)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    outside.chmod(0o666)
    (home / "run").mkdir(mode=0o755)
    (home / "run" / "elsewhere").symlink_to(outside)

    proc = rb.main("security", "audit", "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["fixed"] == []
    checks = {f["check"]: f for f in data["findings"]}
    assert checks["config"]["severity"] == "high"  # the secret file is refused
    assert "readable by its group or others" in checks["config"]["what"]
    assert f"{home / 'config.yaml'} (0666)" in checks["files.writable"]["paths"]
    assert f"{secret} (0640)" in checks["files.readable"]["paths"]
    assert f"{home / 'run'} (0755)" in checks["files.readable"]["paths"]
    assert [f["severity"] for f in data["findings"]] == sorted(
        (f["severity"] for f in data["findings"]), key=("high", "medium", "low").index)

    fixed = rb.main("security", "audit", "--fix")
    assert fixed.returncode == 0, fixed.stdout
    lines = fixed.stdout.splitlines()
    assert f"fixed: chmod 0600 {home / 'config.yaml'} (was 0666)" in lines
    assert f"fixed: chmod 0600 {secret} (was 0640)" in lines
    assert f"fixed: chmod 0700 {home / 'run'} (was 0755)" in lines
    assert lines[-1] == "no findings"
    assert oct(outside.stat().st_mode & 0o777) == "0o666"  # the link's target untouched
    assert LONG not in fixed.stdout + proc.stdout

    again = rb.main("security", "audit")
    assert (again.returncode, again.stdout.strip()) == (0, "no findings")


def test_medium_findings_alone_exit_0(home: Path) -> None:
    rb = Cli(home=home, runner=CliRunner())
    configure(home, "dashboard: {token_env: T}")
    proc = rb.main("security", "audit", env={"T": "short"})
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0].startswith("MEDIUM dashboard.short_token: ")
    assert proc.stdout.splitlines()[-1] == "0 high, 1 medium, 0 low"


@pytest.fixture
def superuser_dsn() -> str:
    dsn = os.environ.get("RELAYBOARD_TEST_PG_DSN")
    if not dsn:
        pytest.skip("RELAYBOARD_TEST_PG_DSN is not set (a superuser's DSN)")
    return dsn


async def test_a_superuser_dsn_is_high_and_an_ordinary_role_is_not(
        home: Path, superuser_dsn: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                           ).fetchone()
        if not row or not row[0]:
            pytest.skip("RELAYBOARD_TEST_PG_DSN's role is no superuser")
        role = f"rb_audit_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'plain-pw-1'")
    try:
        configure(home, "storage: {backend: postgresql, dsn_env: DSN}")
        finding = (await found(home, {"DSN": superuser_dsn}))["storage.role"]
        assert finding.severity == "high"
        password = conninfo_to_dict(superuser_dsn).get("password")
        assert not password or str(password) not in finding.what
        ordinary = make_conninfo(superuser_dsn, user=role, password="plain-pw-1")
        assert "storage.role" not in await found(home, {"DSN": ordinary})
        unreachable = make_conninfo(superuser_dsn, port="1", password="plain-pw-1")
        down = (await found(home, {"DSN": unreachable}))["storage.role"]
        assert down.severity == "low" and "plain-pw-1" not in down.what
    finally:
        with psycopg.connect(superuser_dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
