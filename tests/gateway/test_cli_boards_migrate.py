"""``relayboard kanban boards migrate SLUG --to postgresql``: the user's path from a SQLite home
to PostgreSQL through the real entry point, what it prints, and its one-line refusals."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from gateway.commands import ChatUser, NotAllowed, Services, UsageError, execute, parse_command
from kanban import Boards, Storage
from kanban.storage.pg import drop_namespace
from kanban.testing import make_task, open_board
from tests.gateway.conftest import Cli, assert_one_error_line
from tests.storage_backends import pg_dsn

pytestmark = pytest.mark.postgres_only

DSN_VAR = "TEAM_BOARD_DSN"


@pytest.fixture
def namespace() -> Iterator[str]:
    name = "g" + secrets.token_hex(5)
    yield name
    drop_namespace(pg_dsn(), name)


def configure(home: Path, namespace: str, *, backend: str = "sqlite") -> None:
    (home / "config.yaml").write_text(
        f"storage:\n  backend: {backend}\n  dsn_env: {DSN_VAR}\n  namespace: {namespace}\n",
        encoding="utf-8")


def sqlite_board(home: Path, slug: str, titles: list[str], *, claim_first: bool = False
                 ) -> None:
    """A board in this home's SQLite file, made by the kernel (the home's own config may
    already say postgresql)."""

    async def run() -> None:
        board = await open_board(home, slug=slug, storage=Storage())
        try:
            tasks = [await make_task(board, title) for title in titles]
            if claim_first:
                await board.claim(tasks[0].id)
        finally:
            await board.close()

    asyncio.run(run())


def test_a_sqlite_home_moves_its_board_and_then_serves_it_from_postgres(
    rb: Cli, namespace: str,
) -> None:
    configure(rb.home, namespace)
    first = rb.create("collect")
    second = rb.create("chart", "--parent", str(first))
    rb.ok("kanban", "subscribe", str(second), "--platform", "slack", "--chat", "C1")
    rb.ok("kanban", "comment", str(first), "start with Q1")
    rb.ok("kanban", "create", "weekly", "--every", "mondays 09:00")
    rb.ok("kanban", "run-now", "S1")  # an occurrence: a task and its record
    env = {DSN_VAR: pg_dsn()}

    done = rb.sub("kanban", "boards", "migrate", "default", "--to", "postgresql",
                  "--dsn-env", DSN_VAR, env=env)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    # The server as the DSN names it: CI's on 5432, or the suite's throwaway one on a free port.
    server = conninfo_to_dict(env[DSN_VAR])
    assert (f"Moved board default to PostgreSQL {server['host']}:{server['port']}/"
            f"{server['dbname']}") in out
    assert "every table verified" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.startswith("  ") and len(line.split()) == 4}
    assert rows["tasks"] == ["3", "3", str(second + 1)]
    assert rows["schedules"] == ["1", "1", "1"]
    assert rows["schedule_occurrences"][:2] == ["1", "1"]
    assert rows["task_links"][:2] == ["1", "1"]
    assert rows["notify_subs"][:2] == ["1", "1"]
    assert rows["task_comments"][:2] == ["1", "1"]
    assert "This home still uses SQLite: set storage.backend: postgresql with " \
           f"storage.dsn_env: {DSN_VAR}" in out
    db = rb.home / "boards" / "default" / "kanban.db"
    assert f"The SQLite file is kept, untouched: {db}" in out and f"rm -f {db}" in out
    assert "relayboard:relayboard@" not in out + done.stderr  # never the DSN's password
    assert db.is_file()

    # The user switches config; the same board now comes from PostgreSQL and keeps working.
    configure(rb.home, namespace, backend="postgresql")
    listed = rb.sub("kanban", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(t["id"], t["title"], t["status"]) for t in json.loads(listed.stdout)] == [
        (first, "collect", "ready"), (second, "chart", "todo"), (second + 1, "weekly", "ready")]
    more = rb.sub("kanban", "create", "appendix", "--parent", str(second), "--json", env=env)
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["id"] == second + 2
    schedules = rb.sub("kanban", "schedules", "--json", env=env)
    assert [s["ref"] for s in json.loads(schedules.stdout)] == ["S1"]
    again = rb.sub("kanban", "create", "daily", "--every", "daily 09:00", "--json", env=env)
    assert json.loads(again.stdout)["ref"] == "S2"  # the identity continues after the copy


def test_json_output_on_a_home_already_configured_for_postgres(
    rb: Cli, namespace: str,
) -> None:
    configure(rb.home, namespace, backend="postgresql")
    sqlite_board(rb.home, "ops", ["one", "two", "three"])
    env = {DSN_VAR: pg_dsn()}

    data = rb.json("kanban", "boards", "migrate", "ops", "--to", "postgresql", env=env)

    assert data["verified"] is True and data["configured"] is True
    assert data["slug"] == "ops" and data["schema"] == f"rb_{namespace}_ops"
    tasks = next(t for t in data["tables"] if t["table"] == "tasks")
    assert tasks == {"table": "tasks", "source_rows": 3, "target_rows": 3, "source_max_id": 3,
                     "target_max_id": 3, "matches": True}
    assert [b["slug"] for b in rb.json("kanban", "boards", "list", env=env)] == [
        "default", "ops"]
    assert [t["title"] for t in rb.json("kanban", "--board", "ops", "list", env=env)] == [
        "one", "two", "three"]
    # A second move would overwrite what the PostgreSQL board holds now: refused.
    again = rb.main("kanban", "boards", "migrate", "ops", "--to", "postgresql", env=env)
    assert_one_error_line(again, contains="already holds data (3 task(s)); nothing was copied "
                                          "(use --replace")
    replaced = rb.json("kanban", "boards", "migrate", "ops", "--to", "postgresql",
                       "--replace", env=env)
    assert replaced["verified"] is True and replaced["replaced_rows"] >= 3


def test_refusals_are_one_line(rb: Cli, namespace: str) -> None:
    configure(rb.home, namespace)
    rb.create("waiting")
    no_target = rb.main("kanban", "boards", "migrate", "default", "--to", "postgresql")
    assert_one_error_line(no_target, contains="no PostgreSQL to move to: this home's "
                                              "storage.backend is sqlite")
    unset = rb.main("kanban", "boards", "migrate", "default", "--to", "postgresql",
                    "--dsn-env", "NOT_SET_ANYWHERE")
    assert_one_error_line(unset, contains="--dsn-env names NOT_SET_ANYWHERE, which is not set")
    secret = "postgresql://u:hunter2@db.internal/x"
    literal = rb.main("kanban", "boards", "migrate", "default", "--to", "postgresql",
                      "--dsn-env", secret)
    line = assert_one_error_line(literal, contains="the NAME of an environment variable")
    assert "hunter2" not in line
    missing = rb.main("kanban", "boards", "migrate", "ops", "--to", "postgresql",
                      "--dsn-env", DSN_VAR, env={DSN_VAR: pg_dsn()})
    assert_one_error_line(missing, contains="board 'ops' has no SQLite database")
    no_to = rb.main("kanban", "boards", "migrate", "default")
    assert_one_error_line(no_to, contains="Missing option '--to'", code=2)

    sqlite_board(rb.home, "busy", ["running"], claim_first=True)
    busy = rb.main("kanban", "boards", "migrate", "busy", "--to", "postgresql",
                   "--dsn-env", DSN_VAR, env={DSN_VAR: pg_dsn()})
    assert_one_error_line(busy, contains="board 'busy' has 1 active run(s) (task 1)")


async def test_chat_cannot_move_a_board(tmp_path: Path) -> None:
    request = parse_command("boards migrate default --to postgresql")
    services = Services(boards=Boards(tmp_path, storage=Storage()))
    try:
        with pytest.raises(NotAllowed, match="by an operator"):
            await execute(request, ChatUser("slack", "U1", role="admin"), services)
    finally:
        await services.aclose()
    with pytest.raises(UsageError, match="dsn-env"):
        parse_command("boards migrate default --to postgresql --dsn-env X")
