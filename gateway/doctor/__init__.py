"""``relayboard doctor``: every check of an installation in one pass, one line each.

Checks, in order: the config (and unknown keys), the token variables of enabled platforms,
where each secret comes from (a variable or a file, never its value),
each platform's answer to its "who am I" call, the dashboard's address, the home's gateway
lock, each SQLite board's integrity, stale staging folders, the worker sandbox the kernel
allows, the profiles' commands, and PostgreSQL (connection and schema versions) when it is
the storage. A check never changes anything; every message is scrubbed of the secrets the
config resolved. See docs/maintenance.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from gateway.config import Config
from gateway.doctor.boards import integrity_checks, postgres_check, staging_checks
from gateway.doctor.local import (
    config_check,
    lock_check,
    port_check,
    profile_checks,
    sandbox_check,
    secret_checks,
    token_checks,
)
from gateway.doctor.platforms import reachability_checks
from gateway.doctor.report import MARKS, Check, redacted

__all__ = ["MARKS", "Check", "run_checks"]

PLATFORM_TIMEOUT = 10.0


async def run_checks(home: Path, config_file: Path | None, environ: Mapping[str, str], *,
                     platform_timeout: float = PLATFORM_TIMEOUT) -> list[Check]:
    """Every check, in order. With a config that does not load, the checks that need one run
    on the defaults (the config's own line says what is wrong)."""
    first, loaded = config_check(home, config_file, environ)
    config = loaded or Config(home=home, path=None)
    checks = [first]
    if loaded is not None:
        checks += token_checks(config)
        checks += secret_checks(config)
        checks += await reachability_checks(config, platform_timeout)
    lock, gateway_pid = await asyncio.to_thread(lock_check, home)
    checks.append(port_check(config, gateway_pid))
    checks.append(lock)
    if config.storage.backend == "sqlite":
        checks += await asyncio.to_thread(integrity_checks, home)
    checks += await asyncio.to_thread(staging_checks, home)
    checks.append(sandbox_check(config))
    checks += await asyncio.to_thread(profile_checks, home, environ)
    if loaded is not None:  # without a config, which storage is meant is unknown
        checks.append(await asyncio.to_thread(postgres_check, config))
    secrets = config.secret_values()
    return [redacted(check, secrets) for check in checks]
