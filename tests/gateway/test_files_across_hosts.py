"""Files across hosts on a PostgreSQL board: a worker on host A completes with a PNG and a CSV
through the real CLI; the notifier and the dashboard of host B — another home, and host A's
folder gone — deliver and serve the same bytes. An artifact over ``delivery.max_attachment_bytes``
is refused at ``complete`` with one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from gateway.config import load_config
from gateway.dashboard import create_app
from gateway.kernel_settings import board_options, storage
from gateway.notifier import DeliverySettings, Notifier, NotifierSettings
from kanban import Boards
from kanban.storage.pg import drop_namespace
from platforms.base import Destination
from platforms.fake import FakeAdapter
from platforms.receipts import Receipt
from tests.gateway.conftest import Cli, assert_one_error_line
from tests.gateway.test_notifier import png_bytes
from tests.storage_backends import pg_dsn

pytestmark = pytest.mark.postgres_only

ORIGIN = "http://127.0.0.1:8765"


@dataclass
class Hosts:
    dsn: str
    namespace: str
    a: Path
    b: Path

    def env(self) -> dict[str, str]:
        return {"RELAYBOARD_PG_DSN": self.dsn}


def home(path: Path, namespace: str, max_bytes: int = 50 * 1024 * 1024) -> Path:
    path.mkdir()
    (path / "config.yaml").write_text(
        "storage:\n  backend: postgresql\n  dsn_env: RELAYBOARD_PG_DSN\n"
        f"  namespace: {namespace}\n"
        f"delivery:\n  max_attachment_bytes: {max_bytes}\n", encoding="utf-8")
    return path


@dataclass(kw_only=True)
class Recording(FakeAdapter):
    """The fake platform, also keeping the bytes of every file it was handed (delivery hands
    over a private copy that is gone once the send returns)."""

    received: dict[str, bytes] = field(default_factory=dict)

    def _keep(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.received[path.name] = path.read_bytes()

    async def send_document(self, dest: Destination, path: Path,
                            caption: str | None = None) -> Receipt:
        self._keep([path])
        return await super().send_document(dest, path, caption)

    async def send_multiple_images(self, dest: Destination, paths: Sequence[Path],
                                   caption: str | None = None) -> list[Receipt]:
        self._keep(paths)
        return await super().send_multiple_images(dest, paths, caption)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    dsn = pg_dsn()
    namespace = "x" + secrets.token_hex(5)
    try:
        yield Hosts(dsn, namespace, home(tmp_path / "host-a", namespace, max_bytes=2 * 1024 * 1024),
                    home(tmp_path / "host-b", namespace))
    finally:
        drop_namespace(dsn, namespace)


def host_a(hosts: Hosts) -> Cli:
    return Cli(home=hosts.a, runner=CliRunner())


def claim_on_a(hosts: Hosts) -> tuple[int, dict[str, Any]]:
    """Host A: create a task and claim it (a manual lane: the worker is this test)."""
    made = host_a(hosts).sub("kanban", "create", "Quarterly report", "--json", env=hosts.env())
    assert made.returncode == 0, made.stderr
    task_id = int(json.loads(made.stdout)["id"])
    claimed = host_a(hosts).sub("kanban", "claim", str(task_id), "--json", env=hosts.env())
    assert claimed.returncode == 0, claimed.stderr
    return task_id, json.loads(claimed.stdout)


def complete_on_a(hosts: Hosts, task_id: int, claim: dict[str, Any],
                  files: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    """Host A: the worker writes its files in its workspace and completes with them."""
    workspace = Path(claim["workspace"])
    workspace.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (workspace / name).write_bytes(data)
    a = host_a(hosts)
    try:
        env = {**hosts.env(), **a.worker_env(claim, task_id, environ=hosts.env())}
        args = [arg for name in files for arg in ("--artifact", str(workspace / name))]
        return a.sub("kanban", "complete", "--summary", "Revenue up", *args, env=env)
    finally:
        a.close()


async def test_host_b_delivers_and_serves_what_a_worker_on_host_a_made(hosts: Hosts) -> None:
    chart = png_bytes() + os.urandom(1500 * 1024)  # two chunks in the database
    csv = b"region,revenue\nnorth,12\nsouth,7\n"
    config_b = load_config(None, hosts.env(), home=hosts.b)
    boards_b = Boards(hosts.b, board_options(config_b.kanban, config_b.delivery),
                      storage(config_b.storage))
    try:
        board_b = await boards_b.open()
        task_id, claim = await asyncio.to_thread(claim_on_a, hosts)
        await board_b.subscribe(task_id, platform="fake", chat="c1")  # a chat on host B
        done = await asyncio.to_thread(complete_on_a, hosts, task_id, claim,
                                       {"chart.png": chart, "data.csv": csv})
        assert done.returncode == 0, done.stderr
        recorded = (await board_b.get_task(task_id)).artifacts
        assert [Path(p).name for p in recorded] == ["chart.png", "data.csv"]
        assert all(Path(p).is_relative_to(hosts.a) for p in recorded)
        # Host A's disk is out of reach from host B: take it away altogether.
        shutil.rmtree(hosts.a / "boards")

        fake = Recording(platform="fake")
        user_home = hosts.b.parent / "user"
        user_home.mkdir()
        notifier = Notifier(lambda: [board_b], board_b.changes, {"fake": fake},
                            DeliverySettings(relayboard_home=hosts.b, user_home=user_home),
                            NotifierSettings(backoff_base=0.0, backoff_cap=0.0))
        assert await notifier.pump() == 1
        assert [c.method for c in fake.calls] == ["send", "send_multiple_images",
                                                  "send_document"]
        assert "not sent" not in (fake.calls[0].text or "")
        assert fake.received == {"chart.png": chart, "data.csv": csv}
        # Written back on host B, where its own files live.
        here = board_b.attachments_path(task_id)
        assert sorted(p.name for p in here.iterdir()) == ["chart.png", "data.csv"]
        [row] = [r for r in await board_b.outbox() if r["task_id"] == task_id]
        assert row["state"] == "sent"

        # The dashboard of host B serves the same bytes (from a fresh copy: the cache is gone).
        shutil.rmtree(board_b.attachments_path(task_id))
        app = create_app(hosts.b, config_b, boards=boards_b)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=ORIGIN,
                headers={"Origin": ORIGIN}) as client:
            shown = (await client.get(f"/api/tasks/{task_id}")).json()
            files = {f["name"]: f for f in shown["artifacts"]}
            assert files["chart.png"]["available"] and files["chart.png"]["size"] == len(chart)
            got = await client.get(files["data.csv"]["url"] + "?download=1")
            assert got.status_code == 200 and got.content == csv
            got = await client.get(files["chart.png"]["url"])
            assert got.status_code == 200 and got.content == chart
            assert str(hosts.b) not in got.headers.get("content-disposition", "")
    finally:
        await boards_b.close()


def test_an_artifact_over_the_limit_is_refused_at_complete(hosts: Hosts) -> None:
    task_id, claim = claim_on_a(hosts)
    done = complete_on_a(hosts, task_id, claim, {"big.csv": b"x" * 3_000_000, "ok.csv": b"a\n"})
    line = assert_one_error_line(done, contains="big.csv is 3,000,000 bytes")
    assert "at most 2,097,152 bytes" in line and "delivery.max_attachment_bytes" in line
    # The worker keeps its files and its task: nothing was completed.
    assert (Path(claim["workspace"]) / "big.csv").stat().st_size == 3_000_000
    shown = host_a(hosts).sub("kanban", "show", str(task_id), "--json", env=hosts.env())
    assert json.loads(shown.stdout)["status"] == "running"


async def test_files_that_cannot_be_written_back_are_retried_not_sent_missing(
        hosts: Hosts) -> None:
    config_b = load_config(None, hosts.env(), home=hosts.b)
    boards_b = Boards(hosts.b, board_options(config_b.kanban, config_b.delivery),
                      storage(config_b.storage))
    try:
        board_b = await boards_b.open()
        task_id, claim = await asyncio.to_thread(claim_on_a, hosts)
        await board_b.subscribe(task_id, platform="fake", chat="c1")
        done = await asyncio.to_thread(complete_on_a, hosts, task_id, claim, {"r.csv": b"1\n"})
        assert done.returncode == 0, done.stderr
        await board_b.db.write(lambda tx: tx.execute(
            "UPDATE artifact_blobs SET data = ? WHERE task_id = ?", (b"2\n", task_id)))
        fake = Recording(platform="fake")
        user_home = hosts.b.parent / "user"
        user_home.mkdir()
        notifier = Notifier(lambda: [board_b], board_b.changes, {"fake": fake},
                            DeliverySettings(relayboard_home=hosts.b, user_home=user_home))
        assert await notifier.pump() == 1
        assert fake.calls == []
        [row] = await board_b.outbox()
        assert row["state"] == "retry"
        assert "could not be written here" in row["last_error"]
        assert "do not match their size and checksum" in row["last_error"]
    finally:
        await boards_b.close()
