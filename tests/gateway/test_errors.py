"""The gateway's error tree (gateway/errors.py): every gateway error is a ``GatewayError``, the
CLI turns each into one ``error: …`` line and exit code 1, the dashboard into its status and a
one-line JSON body. Also: the platforms and kernel classes that used to stand outside a tree."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from starlette.responses import Response

import platforms.errors
from gateway.cli.invocation import fail_cleanly
from gateway.dashboard.api import endpoint, status_for
from gateway.errors import ApiError, ConfigError, DashboardUnavailable, GatewayError, LockHeld
from kanban import KanbanError
from platforms.errors import AdapterConfigError, PlatformError, WebChatError
from tests.gateway.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]

SAMPLES: list[GatewayError] = [
    ConfigError("config.yaml: kanban.max_spawn must be an integer (got 'x')"),
    LockHeld(Path("/home/rb/gateway.lock"), 4242),
    LockHeld(Path("/home/rb/gateway.lock"), None),
    DashboardUnavailable("127.0.0.1", 8765, "Address already in use"),
    ApiError(413, "body too large"),
]

# What each answers in the dashboard; unchanged from before the tree existed.
STATUSES = [400, 400, 400, 400, 413]


def test_the_old_import_names_are_the_tree_classes() -> None:
    import gateway.config
    import gateway.daemon
    import gateway.daemon.http_server
    import gateway.dashboard.api
    import platforms.web

    assert gateway.config.ConfigError is ConfigError
    assert gateway.daemon.LockHeld is LockHeld
    assert gateway.daemon.http_server.DashboardUnavailable is DashboardUnavailable
    assert gateway.dashboard.api.ApiError is ApiError
    assert platforms.web.WebChatError is WebChatError


@pytest.mark.parametrize("exc", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_gateway_error_is_a_gateway_error_with_one_line(exc: GatewayError) -> None:
    assert isinstance(exc, GatewayError)
    assert not isinstance(exc, KanbanError | PlatformError)
    assert str(exc) and "\n" not in str(exc)


def test_typed_attributes() -> None:
    held = LockHeld(Path("/h/gateway.lock"), 7)
    assert (held.path, held.pid) == (Path("/h/gateway.lock"), 7)
    assert "pid 7" in str(held)
    busy = DashboardUnavailable("::1", 9000, None)
    assert (busy.host, busy.port, busy.reason) == ("::1", 9000, None)
    assert "::1:9000" in str(busy)
    assert ApiError(404, "no such file").status == 404


def test_no_gateway_module_defines_an_exception_outside_the_trees() -> None:
    # A class deriving from Exception (or BaseException) directly is a new root: the gateway has
    # one, GatewayError. Others derive from it, from KanbanError or from a library's class.
    roots = {}
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id in ("Exception", "BaseException")
                    for b in node.bases):
                roots[node.name] = str(path.relative_to(ROOT))
    assert roots == {"GatewayError": "gateway/errors.py"}


def test_platforms_config_error_no_longer_shares_the_gateway_name() -> None:
    assert not hasattr(platforms.errors, "ConfigError")
    assert issubclass(AdapterConfigError, PlatformError)
    assert not issubclass(AdapterConfigError, GatewayError)


def test_web_chat_error_is_a_platform_error_with_a_status() -> None:
    exc = WebChatError(413, "big.bin: too large")
    assert isinstance(exc, PlatformError)
    assert (exc.status, str(exc), exc.platform) == (413, "big.bin: too large", "web")


def test_unsafe_file_is_a_kanban_error_and_still_an_os_error() -> None:
    from kanban.fsutil import UnsafeFile

    exc = UnsafeFile("notes.txt: is a symbolic link")
    assert isinstance(exc, KanbanError) and isinstance(exc, OSError)
    assert str(exc) == "notes.txt: is a symbolic link"


# ---- the CLI -----------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", SAMPLES, ids=lambda e: type(e).__name__)
def test_cli_prints_one_line_and_exits_1(exc: GatewayError) -> None:
    @click.command()
    def raises() -> None:
        with fail_cleanly():
            raise exc

    result = CliRunner().invoke(raises, [])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: {exc}\n"


def test_a_bad_config_file_is_one_line_through_the_real_cli(rb: Cli) -> None:
    (rb.home / "config.yaml").write_text("kanban: [not, a, mapping]\n", encoding="utf-8")
    done = rb.main("kanban", "list")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert "kanban must be a mapping" in done.stderr


# ---- the dashboard -----------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "status"), list(zip(SAMPLES, STATUSES, strict=True)),
                         ids=lambda v: type(v).__name__)
async def test_dashboard_maps_each_to_its_status_and_one_line(exc: GatewayError,
                                                              status: int) -> None:
    assert status_for(exc) == status

    async def raises(request: Any) -> Response:
        raise exc

    response = await endpoint(raises)(None)  # type: ignore[arg-type]
    assert response.status_code == status
    assert json.loads(bytes(response.body)) == {"error": str(exc)}
