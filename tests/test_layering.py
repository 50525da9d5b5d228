"""The dependency rule between the three packages, checked on the AST: ``kanban`` imports
neither ``gateway`` nor ``platforms``, ``platforms`` imports neither of the others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "kanban": {"gateway", "platforms"},
    "platforms": {"kanban", "gateway"},
    "gateway": set(),
}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_dependency_rule(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    offenders = {
        str(f.relative_to(ROOT)): sorted(imported_top_levels(f) & FORBIDDEN[package])
        for f in files
        if imported_top_levels(f) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from gateway.cli import main\nimport platforms.base\n", encoding="utf-8")
    assert imported_top_levels(bad) >= {"gateway", "platforms"}


def test_platforms_has_no_top_level_sdk_shadowing_on_path() -> None:
    # platforms/discord.py and platforms/telegram.py would shadow the SDKs if platforms/ itself
    # were on sys.path; the package must only ever be imported as ``platforms.<name>``.
    import sys

    assert str(ROOT / "platforms") not in sys.path
