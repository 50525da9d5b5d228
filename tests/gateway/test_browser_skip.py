"""On a machine without Chromium the browser tests skip, and they skip before they start
anything: no gateway process, no dashboard, nothing left in their temporary folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.gateway.conftest import clean_environ

ROOT = Path(__file__).resolve().parents[2]


def test_browser_tests_skip_cleanly_without_chromium(tmp_path: Path) -> None:
    env = clean_environ({"RELAYBOARD_TEST_CHROMIUM": str(tmp_path / "no-chromium")})
    env.pop("CI", None)
    basetemp = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         f"--basetemp={basetemp}", "tests/gateway/browser"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    summary = out.strip().splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary, summary
    assert "error" not in summary and "failed" not in summary, summary
    assert "headless Chromium" in out
    # Nothing was started: no test left a home, a log or a board behind.
    left = [p.relative_to(basetemp) for p in basetemp.rglob("*") if p.is_file()]
    assert left == [], left
