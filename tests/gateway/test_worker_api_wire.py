"""The worker API's socket: binding under a long home, stale sockets, a live server kept, answers
per line, and the client's retries until it gives up with exit code 75."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from gateway.errors import WorkerApiUnavailable
from gateway.worker_api.client import ApiError, Connection, call
from gateway.worker_api.server import WorkerApiServer
from gateway.worker_api.wire import EXIT_UNAVAILABLE, reachable


async def echo(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("verb") == "fail":
        return {"ok": False, "kind": "invalid", "error": "no such thing"}
    return {"ok": True, "result": {"json": message["args"], "text": message["verb"]}}


def long_home(tmp_path: Path) -> Path:
    home = tmp_path
    while len(str(home)) < 150:
        home = home / "a-rather-long-folder-name"
    return home


async def test_a_home_deeper_than_a_socket_path_may_be_is_served(tmp_path: Path) -> None:
    path = long_home(tmp_path) / "run" / "worker-api.sock"
    assert len(os.fsencode(path)) > 107
    server = WorkerApiServer(path, echo)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(10):
            await server.serving.wait()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        answer = await anyio.to_thread.run_sync(
            lambda: call(path, "show", {"task_id": 3}, task_id=1, lease="L", board=None))
        assert answer == {"json": {"task_id": 3}, "text": "show"}
        with pytest.raises(ApiError) as refused:
            await anyio.to_thread.run_sync(
                lambda: call(path, "fail", {}, task_id=1, lease="L", board=None))
        assert refused.value.kind == "invalid" and str(refused.value) == "no such thing"
        group.cancel_scope.cancel()
    assert not path.exists()


async def test_many_lines_on_one_connection_each_get_their_answer(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    server = WorkerApiServer(path, echo)
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        await server.serving.wait()
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"verb":"a","args":{"n":1},"id":7}\n{"verb":"b","args":{},"id":8}\n'
                     b'not json\n')
        await writer.drain()
        lines = [await reader.readline() for _ in range(3)]
        writer.close()
        assert b'"id":7' in lines[0] and b'"n":1' in lines[0]
        assert b'"id":8' in lines[1]
        assert b'"ok":false' in lines[2] and b"not a JSON line" in lines[2]
        group.cancel_scope.cancel()


async def test_a_stale_socket_is_replaced_and_a_live_one_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "run" / "worker-api.sock"
    path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens: a server that died
    first = WorkerApiServer(path, echo)
    second = WorkerApiServer(path, echo)
    async with anyio.create_task_group() as group:
        group.start_soon(first.serve)
        with anyio.fail_after(10):
            await first.serving.wait()
        group.start_soon(second.serve)
        with anyio.fail_after(10):
            await second.served.wait()
        assert not second.serving.is_set()  # the live server keeps its socket
        answer = await anyio.to_thread.run_sync(
            lambda: call(path, "x", {}, task_id=1, lease="L", board=None))
        assert answer["text"] == "x"
        group.cancel_scope.cancel()


def test_the_client_waits_for_a_server_that_comes_back(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.worker_api import client

    path = tmp_path / "api.sock"
    started = threading.Event()
    missed = threading.Event()
    exchange = client.Connection._exchange

    def counted(*args: Any) -> dict[str, Any]:
        try:
            return exchange(*args)
        except OSError:
            missed.set()
            raise

    monkeypatch.setattr(client.Connection, "_exchange", counted)

    def late_server() -> None:
        async def main() -> None:
            server = WorkerApiServer(path, echo)
            async with anyio.create_task_group() as group:
                group.start_soon(server.serve)
                await server.serving.wait()
                started.set()
                await anyio.to_thread.run_sync(answered.wait, 20)
                group.cancel_scope.cancel()

        assert missed.wait(10)  # the client's first attempt found no socket at all
        asyncio.run(main())

    answered = threading.Event()
    thread = threading.Thread(target=late_server)
    thread.start()
    try:
        answer = call(path, "later", {}, task_id=1, lease="L", board=None, patience=20)
    finally:
        answered.set()
        thread.join()
    assert started.is_set()
    assert answer["text"] == "later"


async def test_a_kept_connection_carries_every_call_and_is_replaced_when_the_server_restarts(
        tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    seen: list[asyncio.Task[Any] | None] = []

    async def recording(message: dict[str, Any]) -> dict[str, Any]:
        seen.append(asyncio.current_task())  # each connection is served by a task of its own
        return await echo(message)

    def calls(connection: Connection, *verbs: str) -> list[str]:
        # patience 0: a reconnect that had to wait for a server would give up at once
        return [connection.call(verb, {}, task_id=1, lease="L", board=None,
                                patience=0)["text"] for verb in verbs]

    async def serve_until(done: anyio.Event, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        server = WorkerApiServer(path, recording)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve)
            await server.serving.wait()
            task_status.started()
            await done.wait()
            group.cancel_scope.cancel()

    with Connection(path) as connection:
        for round_ in range(2):
            seen.clear()
            done = anyio.Event()
            async with anyio.create_task_group() as group:
                with anyio.fail_after(10):
                    await group.start(serve_until, done)
                    answers = await anyio.to_thread.run_sync(calls, connection, "a", "b", "c")
                done.set()
            assert answers == ["a", "b", "c"]
            # One connection for all three calls; in the second round, the one kept from the
            # first was closed by the stopped server and a new one took its place at once.
            assert len(seen) == 3 and len(set(map(id, seen))) == 1, round_


def test_with_nobody_serving_the_client_gives_up_with_the_exit_code_for_later(
        tmp_path: Path) -> None:
    with pytest.raises(WorkerApiUnavailable) as gone:
        call(tmp_path / "none.sock", "show", {}, task_id=1, lease="L", board=None,
             patience=0.3)
    assert gone.value.exit_code == EXIT_UNAVAILABLE == 75
    assert "none.sock" in str(gone.value) and str(tmp_path) not in str(gone.value)


def test_reachable_uses_the_path_itself_when_short(tmp_path: Path) -> None:
    with reachable(tmp_path / "s.sock") as address:
        assert address == str(tmp_path / "s.sock")
    deep = long_home(tmp_path) / "s.sock"
    deep.parent.mkdir(parents=True)
    with reachable(deep) as address:
        assert address.startswith("/proc/self/fd/") and address.endswith("/s.sock")
