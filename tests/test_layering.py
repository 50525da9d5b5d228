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


# ---- import circles ---------------------------------------------------------------------------
# A module-level import is an edge; imports inside functions or under ``if TYPE_CHECKING:`` are
# not (they run later, or never). ``from pkg import sub`` is an edge to ``pkg.sub`` when ``sub`` is
# a module, else to ``pkg`` itself: a package's ``__init__`` runs before any of its modules anyway,
# so counting it for every submodule import would make each re-exporting package a false circle.

PACKAGES = tuple(sorted(FORBIDDEN))


def module_files(root: Path = ROOT) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: its top level, including ``if``,
    ``try`` and ``with`` blocks, but not function or class bodies, nor ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += module_level_imports(node.body)
            found += module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(h.body for h in node.handlers)):
                found += module_level_imports(block)
        elif isinstance(node, ast.With):
            found += module_level_imports(node.body)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in module_level_imports(tree.body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_circles() -> None:
    assert circles(import_graph(module_files())) == []


def test_cycle_checker_sees_a_circle_and_ignores_deferred_imports(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "gateway" / "a.py").write_text("from gateway.b import x\n", encoding="utf-8")
    (tmp_path / "gateway" / "b.py").write_text("from . import a\n", encoding="utf-8")
    (tmp_path / "gateway" / "c.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from gateway.d import y\n", encoding="utf-8")
    (tmp_path / "gateway" / "d.py").write_text(
        "import gateway.c\n\ndef f():\n    from gateway.c import z\n", encoding="utf-8")
    assert circles(import_graph(module_files(tmp_path))) == [["gateway.a", "gateway.b"]]
