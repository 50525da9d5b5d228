"""``logging.format: json``: one object per line with the record's context, secrets masked in
every value — also where JSON escaping would change how a secret is spelt."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.daemon.logs import JsonLines, RedactSecrets, apply_config, setup_logging
from gateway.errors import ConfigError
from kanban.agents.profiles import Profiles
from platforms.fake import FakeAdapter
from tests.gateway.test_operations import gateway
from tests.kanban.workers.harness import AGENT_PATHS, agent, wait_until

TOKEN = 'tok"en\\with-json-specials-9f3a'  # a quote and a backslash: escaped in JSON
PASSWORD = "pg-pass-7c1e"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """The daemon's own handler writing to a buffer; every logger it touches restored
    afterwards (later tests read library records at their usual levels)."""
    root = logging.getLogger()
    touched = [logging.getLogger(name) for name in (
        "httpx", "aiohttp.access", "telegram.ext", "discord.gateway", "slack_sdk",
        "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in [root, *touched]]
    stream = io.StringIO()
    handler = setup_logging((), stream=stream)
    try:
        yield stream, handler
    finally:
        root.removeHandler(handler)
        for lg, level, handlers, propagate in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            for own in handlers:
                if own not in lg.handlers:
                    lg.addHandler(own)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_context_and_mask_secrets(
    tmp_path: Path, captured: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, handler = captured
    (tmp_path / "config.yaml").write_text(
        "dashboard: {token_env: DASH_TOKEN}\nstorage: {backend: postgresql}\n"
        "logging: {format: json}\n", encoding="utf-8")
    env = {"DASH_TOKEN": TOKEN,
           "RELAYBOARD_PG_DSN": f"postgresql://rb:{PASSWORD}@db.internal/relayboard"}
    config = load_config(tmp_path / "config.yaml", env, home=tmp_path)
    assert config.logging.format == "json"
    apply_config(config.logging.format, config.secret_values())  # as gateway run does
    assert isinstance(handler.formatter, JsonLines)

    log = logging.getLogger("gateway.notifier.pump")
    log.warning("notification failed: %s", f"401 for token {TOKEN}",
                extra={"board": "ops", "task_id": 12, "run_id": 7, "platform": "telegram"})
    try:
        raise ConfigError(f"cannot connect with {PASSWORD}")
    except ConfigError:
        logging.getLogger("gateway.daemon.components").exception("storage failed")
    logging.getLogger("kanban.runtime.dispatcher").info("dispatch ops: spawned=1",
                                                        extra={"board": "ops"})

    raw = stream.getvalue()
    escaped = json.dumps(TOKEN)[1:-1]
    for secret in (TOKEN, escaped, PASSWORD):
        assert secret not in raw
    first, second, third = lines(stream)
    assert first == {"time": first["time"], "level": "WARNING",
                     "component": "gateway.notifier.pump",
                     "message": "notification failed: 401 for token ***", "board": "ops",
                     "task_id": 12, "run_id": 7, "platform": "telegram"}
    assert first["time"].endswith("Z") and first["time"][:2] == "20"
    assert second["level"] == "ERROR" and second["message"] == "storage failed"
    assert "ConfigError: cannot connect with ***" in second["exception"]
    assert "board" not in second and "task_id" not in second
    assert third["board"] == "ops" and third["component"] == "kanban.runtime.dispatcher"


def test_switching_formats_keeps_the_secrets_already_known(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, handler = captured
    apply_config("text", [TOKEN])
    apply_config("json", [PASSWORD])  # the second config read adds to what the first knew
    logging.getLogger("x").error("%s and %s", TOKEN, PASSWORD)
    assert lines(stream)[0]["message"] == "*** and ***"
    apply_config("text", [])
    logging.getLogger("x").error("back to text: %s", TOKEN)
    assert type(handler.formatter) is RedactSecrets
    assert stream.getvalue().splitlines()[-1].endswith("x: back to text: ***")


def test_an_unknown_format_is_refused_with_the_key_named(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("logging: {format: xml}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"logging\.format must be one of text, json"):
        load_config(tmp_path / "config.yaml", {}, home=tmp_path)


async def test_a_gateway_logs_a_task_s_life_with_board_task_and_run(
    tmp_path: Path, captured: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, _ = captured
    apply_config("json", [])
    home = tmp_path / "home"
    Profiles(home).create("w", command=agent("complete", "fine"), read_paths=AGENT_PATHS)
    Profiles(home).create("bad", command=[sys.executable, "-c", "import sys; sys.exit(4)"])
    fake = FakeAdapter(platform="fake")
    config = "kanban: {auto_decompose: false, failure_limit: 1}\ndashboard: {enabled: false}\n"
    async with gateway(home, config, {"fake": lambda: fake}) as daemon:
        board = await daemon.boards.open("default")
        task = (await board.create_task("logged")).task
        await board.subscribe(task.id, platform="fake", chat="c1")
        await board.assign(task.id, "w")
        failing = (await board.create_task("fails", assignee="bad")).task

        async def logged() -> list[dict[str, Any]] | None:
            entries = lines(stream)
            done = any(e["message"].startswith("notified") for e in entries)
            tripped = any("blocked by the breaker" in e["message"] for e in entries)
            return entries if done and tripped else None

        entries = await wait_until(logged, within=30, what="the task's life in the log")
    about = [e for e in entries if e.get("task_id") == task.id]
    run = next(e["run_id"] for e in about if e["message"].startswith(f"task #{task.id} claimed"))
    life = [e["message"].split(" (")[0] for e in about
            if e["component"] == "gateway.metrics.lifecycle"]
    assert life == [f"task #{task.id} claimed", f"task #{task.id} started",
                    f"task #{task.id} completed"]
    assert all(e["board"] == "default" and e["run_id"] == run for e in about
               if e["component"] == "gateway.metrics.lifecycle")
    notified = next(e for e in about if e["message"].startswith("notified"))
    assert (notified["platform"], notified["board"], notified["run_id"]) == ("fake", "default",
                                                                             run)
    crashed = next(e for e in entries if e.get("task_id") == failing.id and "crashed" in
                   e["message"])
    assert crashed["level"] == "WARNING" and "exited with code 4" in crashed["message"]
    dispatch = next(e for e in entries if e["component"] == "kanban.runtime.dispatcher")
    assert dispatch["board"] == "default"


async def test_the_web_server_s_own_warnings_are_json_lines_too(
    tmp_path: Path, captured: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, _ = captured
    apply_config("json", [])
    async with gateway(tmp_path / "home", "dashboard: {port: 0}\n", {}) as daemon:
        server = daemon.dashboard
        assert server is not None

        async def port() -> int | None:
            return server.port

        reader, writer = await asyncio.open_connection("127.0.0.1", await wait_until(port))
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)  # uvicorn answers 400 and hangs up
        writer.close()

        async def warned() -> dict[str, Any] | None:
            return next((e for e in lines(stream) if e["component"].startswith("uvicorn")),
                        None)

        entry = await wait_until(warned, within=10, what="uvicorn's warning")
    assert entry["level"] == "WARNING" and "Invalid HTTP request" in entry["message"]
