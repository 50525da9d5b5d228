"""What the configuration, the profiles and PostgreSQL's role let others do."""

from __future__ import annotations

import os
import re
from pathlib import Path

from gateway.audit.findings import Finding
from gateway.config import Config
from gateway.dashboard.security import is_loopback

# A token shorter than this can be guessed offline from a leaked hash, or online given time.
MIN_TOKEN_CHARS = 32
# Names that say "this is a secret" (OPENAI_API_KEY, GITHUB_TOKEN, DB_PASSWORD, AWS_SECRET…).
SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|PASS|PASSWD|PAT|CREDENTIALS?)$|SECRET|PASSWORD",
                         re.IGNORECASE)
CHAT_ONLY = ("web", "fake")  # the dashboard's own chat, and the in-memory test platform


def config_findings(config: Config) -> list[Finding]:
    return [*_dashboard(config), *_platforms(config), *_sandbox(config), *_roots(config),
            *_hooks(config)]


def _dashboard(config: Config) -> list[Finding]:
    dash = config.dashboard
    if not dash.enabled:
        return []
    if not is_loopback(dash.host) and not dash.token:
        return [Finding(
            "dashboard.public", "high",
            f"the dashboard is bound to {dash.host} without a token: anyone who reaches the "
            "port would have the operator's rights (the gateway refuses to start so)",
            "set dashboard.token_env (or token_file) to a long random token, or bind "
            "dashboard.host: 127.0.0.1")]
    if dash.token and len(dash.token) < MIN_TOKEN_CHARS:
        where = "on " + dash.host if not is_loopback(dash.host) else "on loopback"
        return [Finding(
            "dashboard.short_token", "high" if not is_loopback(dash.host) else "medium",
            f"the dashboard's token ({where}) has {len(dash.token)} characters; a token holder "
            "has the operator's rights",
            f"use at least {MIN_TOKEN_CHARS} random characters (python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\")")]
    return []


def _platforms(config: Config) -> list[Finding]:
    findings = []
    enabled = {n: p for n, p in sorted(config.platforms.items())
               if p.enabled and n not in CHAT_ONLY}
    for name, platform in enabled.items():
        if "*" in platform.allowed_users:
            findings.append(Finding(
                f"platforms.{name}.everyone", "high",
                f'platforms.{name}.allowed_users is ["*"]: anyone who can write to the bot is '
                "a member, and members create tasks that workers run",
                f"list the user ids in platforms.{name}.allowed_users"))
    if enabled and not any(p.admins for p in enabled.values()):
        findings.append(Finding(
            "platforms.no_admins", "low",
            f"no chat platform has admins ({', '.join(enabled)}): nobody can archive, assign "
            "or stop a task from chat, only from the host",
            "name the operators' user ids in platforms.<name>.admins"))
    return findings


def _sandbox(config: Config) -> list[Finding]:
    from kanban.runtime.sandbox import sandbox_status

    level = config.workers.sandbox
    status = sandbox_status(level)
    if status == "off":
        return [Finding("workers.sandbox", "high",
                        "workers.sandbox is off: every worker (and the model driving it) may "
                        "read and write anything this user can, the home's boards included",
                        "set workers.sandbox: auto (or required)")]
    if status.startswith("unavailable"):
        reason = status.removeprefix("unavailable: ")
        return [Finding("workers.sandbox", "high" if level == "auto" else "medium",
                        f"the kernel cannot confine workers: {reason}",
                        "run on Linux 5.19 or later with Landlock enabled (lsm=…,landlock)")]
    return []


def _roots(config: Config) -> list[Finding]:
    home = Path(os.path.realpath(config.home))
    wide = [root for root in config.kanban.workspace_roots
            if home == Path(os.path.realpath(root))
            or home.is_relative_to(os.path.realpath(root))]
    if not wide:
        return []
    names = ", ".join(str(r) for r in wide)
    return [Finding("kanban.workspace_roots", "high",
                    f"kanban.workspace_roots includes {names}, which covers the home "
                    f"({config.home}): chat admins, the dashboard and orchestrator workers may "
                    "name a workspace holding the boards, profiles and config",
                    "list only the folders that hold projects (e.g. /srv/projects)")]


def _hooks(config: Config) -> list[Finding]:
    findings = []
    for name, hook in sorted(config.hooks.items()):
        if not hook.enabled:
            continue
        if not hook.token:
            findings.append(Finding(f"hooks.{name}.token", "medium",
                                    f"hook {name} has no token (the gateway refuses to start)",
                                    f"set hooks.{name}.token_env or token_file"))
        elif len(hook.token) < MIN_TOKEN_CHARS:
            findings.append(Finding(
                f"hooks.{name}.token", "high" if len(hook.token) < 16 else "medium",
                f"hook {name}'s token has {len(hook.token)} characters; whoever guesses it "
                "creates tasks that workers run",
                f"use at least {MIN_TOKEN_CHARS} random characters (python -c \"import "
                "secrets; print(secrets.token_urlsafe(32))\")"))
    return findings


def profile_findings(home: Path) -> list[Finding]:
    """Profiles whose ``env:`` holds a secret as a literal value in profile.yaml."""
    from kanban.agents.profiles import Profiles

    findings = []
    profiles = Profiles(home)
    for profile in profiles.list():
        names = sorted(n for n in profile.env if SECRET_NAME.search(n))
        if names:
            findings.append(Finding(
                f"profiles.{profile.name}.env", "medium",
                f"profile {profile.name} passes {', '.join(names)} as a literal value in "
                "profile.yaml (readable wherever the file is copied or backed up)",
                f"keep it in the gateway's environment and write {names[0]}: "
                f"{{from_env: {names[0]}}}",
                (str(profiles.path(profile.name) / "profile.yaml"),)))
    return findings


def postgres_findings(config: Config) -> list[Finding]:
    """On PostgreSQL: the gateway's role should not be a superuser."""
    storage = config.storage
    if storage.backend != "postgresql" or not storage.dsn:
        return []
    from kanban.errors import StorageError
    from kanban.storage.pg import connect, describe_dsn

    where = describe_dsn(storage.dsn)
    try:
        with connect(storage.dsn) as conn:
            row = conn.execute("SELECT current_user::text, rolsuper FROM pg_roles "
                               "WHERE rolname = current_user").fetchone()
    except StorageError as exc:
        return [Finding("storage.role", "low", f"could not check the role: {exc}",
                        "run the audit where the database is reachable")]
    if row is None or not row[1]:
        return []
    return [Finding("storage.role", "high",
                    f"the gateway connects to {where} as {row[0]}, a superuser: a flaw in any "
                    "query, or a stolen DSN, owns the whole server (and can run programs on it)",
                    "connect as a role that owns only Relayboard's schemas (CREATE ROLE "
                    "relayboard LOGIN; GRANT CREATE ON DATABASE … TO relayboard)")]
