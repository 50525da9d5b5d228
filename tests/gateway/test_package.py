"""The package as installed: ``relayboard --version`` from the distribution's metadata, and
every file the dashboard serves declared as package data (so it is in the wheel; the built
wheel itself is checked by .ci/package-check)."""

from __future__ import annotations

import fnmatch
import tomllib
from importlib.metadata import version
from pathlib import Path

from tests.gateway.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]


def test_version_comes_from_the_installed_distribution(rb: Cli) -> None:
    proc = rb.main("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"relayboard {version('relayboard')}"


def globbed(path: str, pattern: str) -> bool:
    """setuptools' reading of a package-data glob: ``*`` never crosses a ``/``."""
    parts, pats = path.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(fnmatch.fnmatchcase(a, b)
                                           for a, b in zip(parts, pats, strict=True))


def test_every_dashboard_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["gateway.dashboard"]
    package = ROOT / "gateway" / "dashboard"
    files = [p.relative_to(package).as_posix() for p in (package / "static").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert files
    left_out = [f for f in files if not any(globbed(f, pat) for pat in patterns)]
    assert left_out == [], f"add these to [tool.setuptools.package-data]: {left_out}"
