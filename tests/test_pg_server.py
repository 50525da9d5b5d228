"""The throwaway PostgreSQL server (tests/pg_server.py): with the server binaries installed and no
``RELAYBOARD_TEST_PG_DSN``, the suite's PostgreSQL half runs on a server it starts itself — only
when a PostgreSQL test runs — and leaves neither a process nor a directory behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from tests import pg_server
from tests.pg_server import NoServer, ThrowawayPostgres, find_bindir, server_user
from tests.storage_backends import PG_DSN_ENV

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 300.0
SUMMARY = re.compile(r"PostgreSQL tests ran on a throwaway server \(.*\) in (\S+), now stopped")


def needs_binaries() -> None:
    """Skip (before anything starts) where no throwaway server could run; under CI, which
    installs PostgreSQL, fail instead."""
    reason = None
    if find_bindir() is None:
        reason = "no PostgreSQL server binaries installed"
    else:
        try:
            server_user()
        except NoServer as exc:
            reason = str(exc)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs PostgreSQL")
        pytest.skip(reason)


def without_dsn() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (PG_DSN_ENV, "PYTEST_ADDOPTS")}


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env=without_dsn(), capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (a server runs with ``-D <its data>``)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(path) in a for a in cmdline):
            found.append(" ".join(cmdline))
    return found


def test_without_a_dsn_the_postgresql_tests_run_on_a_throwaway_server(tmp_path: Path) -> None:
    needs_binaries()
    report = tmp_path / "report.xml"
    proc = run_pytest("tests/kanban/test_postgres.py", f"--junitxml={report}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) > 0
    assert (suite.get("skipped"), suite.get("failures"), suite.get("errors")) == ("0", "0", "0")
    match = SUMMARY.search(proc.stdout)
    assert match, proc.stdout[-3000:]
    root = Path(match.group(1))
    assert root.name.startswith(pg_server.TEMP_PREFIX)
    assert not root.exists()
    assert processes_using(root) == []


def test_a_sqlite_only_run_starts_no_server() -> None:
    needs_binaries()
    proc = run_pytest("tests/kanban/test_create.py", "-k", "sqlite")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
    assert "throwaway server" not in proc.stdout


def test_a_process_that_never_stops_its_server_removes_it_at_exit() -> None:
    # The atexit backstop: the session fixture never ran here.
    needs_binaries()
    code = ("from tests.storage_backends import throwaway_server\n"
            "server = throwaway_server()\n"
            "assert server is not None\n"
            "print(server.root)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=without_dsn(),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    root = Path(proc.stdout.strip())
    assert root.name.startswith(pg_server.TEMP_PREFIX)
    assert not root.exists()
    assert processes_using(root) == []


def test_without_binaries_the_reason_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_server, "find_bindir", lambda: None)
    with pytest.raises(NoServer) as caught:
        ThrowawayPostgres.start()
    assert "no PostgreSQL server binaries" in str(caught.value)
    assert "\n" not in str(caught.value)
