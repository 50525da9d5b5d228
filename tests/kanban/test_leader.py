"""Leader election (kanban.storage.leader): on SQLite granted at once; on PostgreSQL one holder of
a session advisory lock among many, and a standby that wins within seconds when the holder's
session ends — closed, terminated by the server, or its process gone."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import psycopg
import pytest
from anyio.abc import TaskGroup

from kanban.storage.backend import Storage
from kanban.storage.leader import Leadership, Term
from tests.fakes.common import free_port
from tests.kanban.workers.harness import wait_until
from tests.storage_backends import pg_dsn

WITHIN = 10.0
FAST = {"retry_seconds": 0.2, "check_seconds": 0.2, "check_timeout": 2.0}


@dataclass
class Contender:
    """A Leadership competing in its own cancel scope, with duties that record their terms."""

    leadership: Leadership
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    duties_running: bool = False
    terms_served: list[int] = field(default_factory=list)
    standbys: int = 0

    async def duties(self, term: Term) -> None:
        self.duties_running = True
        self.terms_served.append(term.number)
        try:
            await anyio.sleep_forever()
        finally:
            self.duties_running = False

    async def standby(self) -> None:
        self.standbys += 1

    async def compete(self) -> None:
        with self.scope:
            async with anyio.create_task_group() as group:
                group.start_soon(self.leadership.run)
                group.start_soon(self.leadership.lead, self.duties, self.standby)


async def until(check: Callable[[], bool], what: str, within: float = WITHIN) -> float:
    """Seconds until ``check()`` holds (fails after ``within``)."""
    start = time.monotonic()

    async def probe() -> bool:
        return check()

    await wait_until(probe, within=within, what=what)
    return time.monotonic() - start


@pytest.fixture
def pg_storage() -> Storage:
    return Storage.postgres(pg_dsn(), namespace="l" + secrets.token_hex(5))


@asynccontextmanager
async def contenders(*leaderships: Leadership) -> AsyncIterator[list[Contender]]:
    people = [Contender(x) for x in leaderships]
    group: TaskGroup
    async with anyio.create_task_group() as group:
        for person in people:
            group.start_soon(person.compete)
        try:
            yield people
        finally:
            group.cancel_scope.cancel()


def leaders(people: list[Contender]) -> list[Contender]:
    return [p for p in people if p.leadership.held]


async def terminate(dsn: str, pid: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.sqlite_only
async def test_sqlite_grants_leadership_at_once_and_stopping_ends_the_term() -> None:
    async with contenders(Leadership(Storage(), "gateway")) as [one]:
        await until(lambda: one.duties_running, "duties started")
        term = one.leadership.term
        assert term is not None and term.number == 1 and term.waited == 0.0
        assert one.leadership.status() == {"state": "leader", "since": term.since, "terms": 1,
                                           "shared": False}
        assert one.standbys == 0  # never a standby: nothing to install for one
        one.scope.cancel()
        await until(lambda: term.lost.is_set(), "term ended")
    assert term.reason == "stopped"
    assert not one.duties_running and not one.leadership.held
    assert one.leadership.state == "starting"


@pytest.mark.postgres_only
async def test_postgres_one_of_two_leads_and_the_other_takes_over_when_it_stops(
    pg_storage: Storage,
) -> None:
    a = Leadership(pg_storage, "gateway", **FAST)
    b = Leadership(pg_storage, "gateway", **FAST)
    async with contenders(a, b) as people:
        await until(lambda: len(leaders(people)) == 1
                    and all(p.leadership.state != "starting" for p in people), "one leader")
        [winner] = leaders(people)
        [loser] = [p for p in people if p is not winner]
        # The loser stays a standby across many retries; only the winner's duties ever ran.
        await until(lambda: loser.leadership.state == "standby", "standby")
        await anyio.sleep(5 * FAST["retry_seconds"])
        assert loser.terms_served == [] and not loser.duties_running
        assert winner.terms_served == [1] and winner.duties_running
        assert loser.standbys == 1 and winner.standbys == 0
        assert loser.leadership.status()["shared"] is True

        winner.scope.cancel()  # the leading process stops: its connection closes
        took = await until(lambda: loser.duties_running, "takeover")
        assert loser.terms_served == [1]
        assert loser.leadership.term is not None and loser.leadership.term.waited > 0.5
        assert took < 2.0, took
        assert not winner.duties_running


@pytest.mark.postgres_only
async def test_postgres_a_leader_whose_session_dies_stops_its_duties_and_the_standby_wins(
    pg_storage: Storage,
) -> None:
    a = Leadership(pg_storage, "gateway", **FAST)
    b = Leadership(pg_storage, "gateway", **FAST)
    async with contenders(a, b) as people:
        await until(lambda: len(leaders(people)) == 1
                    and all(p.leadership.state != "starting" for p in people), "one leader")
        [winner] = leaders(people)
        [standby] = [p for p in people if p is not winner]
        term = winner.leadership.term
        pid = winner.leadership.session_pid
        assert term is not None and pid is not None
        await terminate(pg_dsn(), pid)  # the server drops the leader's session (and its lock)
        noticed = await until(lambda: term.lost.is_set(), "the old leader noticed")
        assert noticed < FAST["check_seconds"] + FAST["check_timeout"] + 1.0
        # Cancelled at once, not left running beside the new leader (the cancellation takes a
        # turn or two of the loop to unwind once the loss is recorded).
        stopped = await until(lambda: not winner.duties_running, "the old leader's duties stop")
        assert stopped < 1.0
        assert term.reason is not None and "terminat" in term.reason.lower()
        await until(lambda: standby.duties_running, "takeover")
        # Exactly one leader afterwards: the old one stays a standby while the new one lives.
        await anyio.sleep(5 * FAST["retry_seconds"])
        assert leaders(people) == [standby]
        assert winner.leadership.state == "standby" and winner.terms_served == [1]
        assert winner.standbys == 1


@pytest.mark.postgres_only
async def test_postgres_namespaces_and_names_do_not_compete(pg_storage: Storage) -> None:
    other = Storage.postgres(pg_dsn(), namespace="l" + secrets.token_hex(5))
    people = [Leadership(pg_storage, "gateway", **FAST), Leadership(other, "gateway", **FAST),
              Leadership(pg_storage, "something-else", **FAST)]
    async with contenders(*people) as running:
        await until(lambda: all(p.duties_running for p in running), "three leaders")


@pytest.mark.postgres_only
async def test_postgres_unreachable_is_a_standby_with_one_warning_and_no_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn = f"postgresql://relayboard:s3cret-pw@127.0.0.1:{free_port()}/relayboard"
    leadership = Leadership(Storage.postgres(dsn), "gateway", **FAST)
    with caplog.at_level(logging.WARNING, logger="kanban.storage.leader"):
        async with contenders(leadership) as [one]:
            await until(lambda: one.standbys == 1, "standby")
            await anyio.sleep(5 * FAST["retry_seconds"])
            assert not one.duties_running and leadership.state == "standby"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "cannot reach PostgreSQL 127.0.0.1:" in warnings[0]
    assert "s3cret-pw" not in caplog.text
