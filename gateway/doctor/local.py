"""Checks of this host: the config, the token variables, where each secret comes from, the
dashboard's port, the home's lock, the worker sandbox and the profiles' commands."""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from gateway.config import Config, ConfigError, load_config, secret_sources
from gateway.doctor.report import Check, fail, ok, one_line, warn
from gateway.errors import GatewayError

EXTERNAL = ("telegram", "slack", "discord")


def config_check(home: Path, config_file: Path | None,
                 environ: Mapping[str, str]) -> tuple[Check, Config | None]:
    """The config loads (one line naming the bad key otherwise); unknown keys are named."""
    where = config_file or home / "config.yaml"
    try:
        config = load_config(config_file, environ, home=home)
    except ConfigError as exc:
        return fail("config", one_line(exc),
                    f"fix it in {where} (every key is described in config.example.yaml)"), None
    if config.warnings:
        return warn("config", f"{where.name}: " + "; ".join(config.warnings),
                    "remove the key or correct its spelling (see config.example.yaml)"), config
    if config.path is None:
        return ok("config", f"no {where.name}: the embedded defaults apply"), config
    return ok("config", f"{config.path} is valid"), config


def token_checks(config: Config) -> list[Check]:
    """Each enabled platform has every token variable it needs set (values never shown)."""
    checks = []
    for name, platform in sorted(config.platforms.items()):
        if not platform.enabled or name not in EXTERNAL:
            continue
        missing = platform.missing_secrets()
        names = ", ".join(sorted(platform.secret_vars.values()))
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            checks.append(fail(f"tokens:{name}", f"{', '.join(missing)} {verb} not set",
                               f"export {missing[0]}=… in the gateway's environment, or set "
                               f"platforms.{name}.enabled: false"))
        else:
            checks.append(ok(f"tokens:{name}", f"{names} set"))
    if not checks:
        checks.append(ok("tokens", "no external chat platform is enabled"))
    return checks


def secret_checks(config: Config) -> list[Check]:
    """One line per secret the config asks for, naming its source (a variable or a file),
    never its value. A file that cannot be used already failed the config check."""
    checks = []
    for secret in secret_sources(config):
        name = f"secret:{secret.key}"
        if secret.present:
            checks.append(ok(name, f"from {secret.source}"))
        else:
            checks.append(warn(name, f"from {secret.source}, which is not set",
                               f"set {secret.source[1:]} in the gateway's environment, or name "
                               f"a file with {secret.key}_file"))
    return checks


def port_check(config: Config, gateway_pid: int | None) -> Check:
    """The dashboard's address can be bound (or the running gateway holds it)."""
    dash = config.dashboard
    if not dash.enabled:
        return ok("dashboard", "disabled (dashboard.enabled: false)")
    try:
        from gateway.dashboard.security import check_bind

        check_bind(dash.host, dash.token, dash.token_env)
    except GatewayError as exc:
        return fail("dashboard", one_line(exc), "set dashboard.token_env to a variable holding "
                                                "a token, or bind 127.0.0.1")
    where = f"{dash.host}:{dash.port}"
    if dash.port == 0:
        return ok("dashboard", f"{dash.host}, a free port chosen at start")
    family = socket.AF_INET6 if ":" in dash.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((dash.host, dash.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and gateway_pid is not None:
                return ok("dashboard", f"{where} is in use — by the running gateway "
                                       f"(pid {gateway_pid}), presumably")
            reason = exc.strerror or str(exc)
            return fail("dashboard", f"cannot bind {where}: {reason}",
                        "stop the program using it, or choose dashboard.port / "
                        "dashboard.host in config.yaml")
    return ok("dashboard", f"{where} is free")


def lock_check(home: Path) -> tuple[Check, int | None]:
    """Whether a gateway holds ``<home>/gateway.lock`` (and which pid); the check fails when
    the lock cannot be taken at all. Returns the holder's pid, if any."""
    from gateway.daemon.lock import LOCK_NAME, HomeLock, read_pid

    path = home / LOCK_NAME
    if not home.exists():
        return ok("lock", f"no gateway has run here yet ({home} does not exist)"), None
    lock = HomeLock(home)
    try:
        lock.acquire()
    except GatewayError:
        pid = read_pid(path)
        alive = pid is not None and _alive(pid)
        if pid is not None and alive:
            return ok("lock", f"a gateway runs on this home (pid {pid})"), pid
        return (warn("lock", f"{path.name} is held by a process that did not record its pid",
                     "look for a `relayboard gateway run` of this home (ps, systemctl)"),
                pid)
    except OSError as exc:
        return (fail("lock", f"cannot open {path}: {exc.strerror or exc}",
                     "make the home and its gateway.lock a file owned by the user that runs "
                     "relayboard"), None)
    lock.release()
    return ok("lock", "no gateway is running; `relayboard gateway run` can take the lock"), None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sandbox_check(config: Config) -> Check:
    from kanban.runtime.sandbox import sandbox_status

    level = config.workers.sandbox
    status = sandbox_status(level)
    if status == "off":
        return warn("sandbox", "workers.sandbox is off: workers run unconfined",
                    "set workers.sandbox: auto to confine them where the kernel allows")
    if status.startswith("unavailable"):
        if level == "required":
            return fail("sandbox", status, "run on Linux 5.19 or later with Landlock enabled, "
                                           "or set workers.sandbox: auto")
        return warn("sandbox", status, "run on Linux 5.19 or later with Landlock enabled (or "
                                       "set workers.sandbox: required to refuse workers)")
    return ok("sandbox", f"{status} (workers.sandbox: {level})")


def profile_checks(home: Path, environ: Mapping[str, str]) -> list[Check]:
    """Every profile can be read, and its ``command`` is found on the gateway's PATH."""
    from kanban.agents.profiles import Profiles

    path = environ.get("PATH", os.defpath)
    checks = []
    for profile in Profiles(home).list():
        name = f"profile:{profile.name}"
        where = profile.home / "profile.yaml"
        problem = profile.unusable()
        if problem is not None:
            checks.append(fail(name, problem, f"fix {where}"))
            continue
        if not profile.command:
            checks.append(ok(name, "runs the built-in worker"))
            continue
        program = profile.command[0]
        if "{" in program:
            checks.append(warn(name, f"its command starts with a placeholder ({program})",
                               "the program to run should come first in `command:`"))
            continue
        found = shutil.which(program, path=path)
        if found is None:
            checks.append(fail(name, f"command {shlex.quote(program)} is not found on PATH",
                               f"install it, or give its full path in `command:` of {where}"))
        else:
            checks.append(ok(name, f"command {shlex.quote(program)} is {found}"))
    if not checks:
        checks.append(ok("profiles", "no profiles yet: tasks run the built-in worker"))
    return checks
