"""Metrics and readiness of two gateways sharing a PostgreSQL board: one leads, one stands by."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.test_leader import namespace as namespace  # the fixture, by name
from tests.gateway.test_leader import two_hosts
from tests.gateway.test_operations import parse, value

pytestmark = pytest.mark.postgres_only


async def test_leadership_and_the_board_gauges_on_postgresql(tmp_path: Path,
                                                             namespace: str) -> None:
    async with two_hosts(tmp_path, namespace, "kanban: {auto_decompose: false}\n") as (a, b):
        board = await a.daemon.boards.open("default")
        task = (await board.create_task("waits in triage", triage=True)).task
        await board.subscribe(task.id, platform="fake", chat="c1")
        leader = parse((await a.daemon.metrics.exposition())[0].decode())
        standby = parse((await b.daemon.metrics.exposition())[0].decode())
        assert a.daemon.operations.readiness() == [] and b.daemon.operations.readiness() == []
    assert (value(leader, "relayboard_leader"), value(standby, "relayboard_leader")) == (1, 0)
    assert value(leader, "relayboard_leadership_shared") == 1
    assert value(standby, "relayboard_adapter_state", platform="fake", state="standby") == 1
    for samples in (leader, standby):  # both read the one shared board
        assert value(samples, "relayboard_tasks", board="default", status="triage") == 1
        assert value(samples, "relayboard_outbox_pending", board="default") == 0
        assert value(samples, "relayboard_board_up", board="default") == 1
