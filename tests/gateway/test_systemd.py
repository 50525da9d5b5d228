"""systemd's notify protocol, against a real AF_UNIX datagram socket the test binds: the unit's
calls, and ``relayboard gateway run`` as a real process under a fake systemd (READY=1 once
serving, watchdog pings, STOPPING=1 on SIGTERM), logging JSON lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.daemon.systemd import Systemd
from tests.gateway.conftest import clean_environ

WITHIN = 30.0


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in a short directory (socket paths are limited to ~107 bytes)."""
    folder = tempfile.mkdtemp(prefix="rb-sd-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(folder)


async def receive(sock: socket.socket, within: float = WITHIN) -> str:
    loop = asyncio.get_running_loop()
    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), within)
    return data.decode()


async def test_ready_watchdog_and_stopping_reach_the_socket(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    systemd = Systemd({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000",
                       "WATCHDOG_PID": str(os.getpid())})
    assert systemd.enabled and systemd.watchdog_seconds == 0.1
    assert systemd.ready("serving 1 board(s)")
    assert await receive(sock) == "READY=1\nSTATUS=serving 1 board(s)"
    pings = asyncio.create_task(systemd.watchdog())
    try:
        assert [await receive(sock) for _ in range(3)] == ["WATCHDOG=1"] * 3
    finally:
        pings.cancel()
    assert systemd.stopping()
    while (message := await receive(sock)) == "WATCHDOG=1":
        pass  # a ping sent before the cancel
    assert message == "STOPPING=1\nSTATUS=stopping"


async def test_an_abstract_socket_name_starts_with_at() -> None:
    name = f"relayboard-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        assert Systemd({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert await receive(sock) == "READY=1\nSTATUS=up"


async def test_without_systemd_everything_is_a_no_op() -> None:
    systemd = Systemd({"WATCHDOG_USEC": "100000"})
    assert not systemd.enabled and systemd.watchdog_seconds is None
    assert not systemd.ready("up") and not systemd.stopping()
    await asyncio.wait_for(systemd.watchdog(), 1.0)  # returns at once


@pytest.mark.parametrize("environ", [
    {"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"},  # meant for another process
    {"WATCHDOG_USEC": "soon"},
    {"WATCHDOG_USEC": "0"},
    {},
])
def test_a_watchdog_not_meant_for_us_is_not_pinged(environ: dict[str, str]) -> None:
    assert Systemd({"NOTIFY_SOCKET": "/run/systemd/notify", **environ}).watchdog_seconds is None


def test_a_socket_that_went_away_is_reported_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    systemd = Systemd({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="gateway.daemon.systemd"):
        assert not systemd.ready("up")
        assert not systemd.notify("WATCHDOG=1")
    assert [r.message.split(" (")[0] for r in caplog.records] == ["systemd notification failed"]


async def test_gateway_run_under_systemd_notifies_and_logs_json(
    tmp_path: Path, notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(
        "dashboard: {port: 0}\nlogging: {format: json}\n", encoding="utf-8")
    env = clean_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    log = tmp_path / "gateway.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--home", str(home), "gateway", "run"],
            env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    try:
        # WATCHDOG_PID is unset: the ping is meant for whichever process reads it.
        assert (await receive(sock)).startswith("READY=1\nSTATUS=serving 1 board(s)")
        # Ready for systemd means the probes answer already.
        url = next(json.loads(line)["message"].split(" on ")[1].split()[0]
                   for line in log.read_text(encoding="utf-8").splitlines()
                   if "dashboard and web chat on" in line)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert await receive(sock) == "WATCHDOG=1"
        assert await receive(sock) == "WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        while (message := await receive(sock)) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1\nSTATUS=stopping"
        assert await asyncio.to_thread(proc.wait, WITHIN) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WITHIN)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    running = next(entry for entry in lines if entry["message"].startswith("gateway running"))
    assert running["level"] == "INFO" and running["component"] == "gateway.daemon.components"
    assert running["time"].endswith("Z")
    assert any(entry["message"] == "stopping" for entry in lines)
