"""``relayboard security audit``: the risks of an installation, each with its fix.

A finding has a severity (``high``, ``medium``, ``low``), a stable ``check`` name, ``what`` was
found and the ``fix``. ``high`` means someone who should not could run code or read the boards
(the command exits 1 on any, so CI can gate on it). The checks read the config
(:mod:`gateway.audit.settings`), the profiles and PostgreSQL's role, and the modes of the files
under the home (:mod:`gateway.audit.modes`, the only thing ``--fix`` changes). An audit never
prints a secret. See docs/security.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from gateway.audit.findings import SEVERITIES, Finding
from gateway.audit.modes import Tightened, loose_paths, mode_findings, tighten
from gateway.audit.settings import config_findings, postgres_findings, profile_findings
from gateway.config import Config, ConfigError, load_config

__all__ = ["SEVERITIES", "Finding", "Tightened", "audit", "fix_modes"]


async def audit(home: Path, config_file: Path | None,
                environ: Mapping[str, str]) -> list[Finding]:
    """Every finding, the most severe first. A config that does not load is itself a finding
    (the other checks then read the defaults)."""
    findings: list[Finding] = []
    try:
        config = load_config(config_file, environ, home=home)
    except ConfigError as exc:
        config = Config(home=home, path=None)
        findings.append(Finding("config", "high", str(exc),
                                "fix the config (relayboard doctor names the key)"))
    findings += config_findings(config)
    findings += await asyncio.to_thread(profile_findings, home)
    findings += await asyncio.to_thread(mode_findings, home, config, config_file)
    findings += await asyncio.to_thread(postgres_findings, config)
    secrets = config.secret_values()
    return sorted((f.redacted(secrets) for f in findings),
                  key=lambda f: SEVERITIES.index(f.severity))


def fix_modes(home: Path, config_file: Path | None,
              environ: Mapping[str, str]) -> list[Tightened]:
    """Take group and other bits off every loose path the audit checks (the owner's own files
    only; links are never followed). Returns what changed."""
    try:
        config: Config = load_config(config_file, environ, home=home)
    except ConfigError:
        config = Config(home=home, path=None)
    return tighten(loose_paths(home, config, config_file))
