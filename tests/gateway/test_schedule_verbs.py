"""The verbs of time through the command layer (chat text, each kind of caller) and the CLI:
``create --at/--in/--every/--catch-up/--overlap``, ``schedules``, ``schedule show|pause|resume|
remove``, ``run-now``; who may make schedules; the zone times are read and shown in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.commands import (
    ChatUser,
    CreateRequest,
    NotAllowed,
    Operator,
    Services,
    UnknownProfile,
    UsageError,
    Worker,
    execute,
    parse_command,
)
from gateway.commands import results as r
from gateway.config import load_config
from gateway.errors import ConfigError
from kanban import Boards, Conflict, InvalidInput
from kanban.agents import Profiles
from tests.gateway.conftest import Cli

OPERATOR = Operator("tester")
MEMBER = ChatUser("telegram", "U1", "Ann", chat="-100", thread="7")
ADMIN = ChatUser("telegram", "U2", "Bo", role="admin", chat="-100", thread="7")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    profiles = Profiles(tmp_path)
    profiles.create("charts")
    made = Services(boards=Boards(tmp_path), profiles=profiles, timezone="Europe/Berlin")
    try:
        yield made
    finally:
        await made.aclose()


async def run(services: Services, text: str, caller: object = OPERATOR) -> r.Result:
    assert isinstance(caller, Operator | Worker | ChatUser)
    return await execute(parse_command(text), caller, services)


def test_chat_text_parses_the_time_options() -> None:
    request = parse_command('create Sales chart --every "daily 09:00" --assignee charts '
                            "--catch-up all --overlap")
    assert request == CreateRequest(title="Sales chart", every="daily 09:00", assignee="charts",
                                    catch_up="all", overlap=True)
    assert parse_command("create Report --in 2h") == CreateRequest(title="Report",
                                                                   start_in="2h")


async def test_a_schedule_made_in_chat_says_its_first_run_and_posts_here(
        services: Services) -> None:
    result = await run(services, 'create Sales chart --every "weekdays 09:00" '
                                 "--assignee charts", ADMIN)
    assert isinstance(result, r.ScheduleCreated)
    text = result.text()
    assert text.startswith("Scheduled #S1 Sales chart · weekdays 09:00 (Europe/Berlin) · "
                           "first run ")
    assert text.endswith(" 09:00 · results will be posted here")
    schedule = result.schedule
    assert schedule.subscriptions == [{"platform": "telegram", "chat": "-100", "thread": "7",
                                       "silent": False}]
    assert schedule.created_by == "Bo (telegram)" and schedule.catch_up == "last"
    local = datetime.fromtimestamp(schedule.next_run_at or 0, BERLIN)
    assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert result.to_json()["label"] == "weekdays 09:00"


async def test_members_make_schedules_only_where_the_operator_allows(
        services: Services) -> None:
    with pytest.raises(NotAllowed, match="members_may_schedule"):
        await run(services, 'create Chart --every "daily 09:00"', MEMBER)
    made = await run(services, 'create Chart --every "daily 09:00"', ADMIN)
    assert isinstance(made, r.ScheduleCreated)
    with pytest.raises(NotAllowed, match="members_may_schedule"):
        await run(services, "schedule pause S1", MEMBER)
    # A member still creates one-off tasks, reads schedules and may start a task now.
    assert isinstance(await run(services, "schedules", MEMBER), r.ScheduleList)
    later = await run(services, "create Report --in 2h", MEMBER)
    assert isinstance(later, r.TaskCreated)
    assert isinstance(await run(services, f"run-now {later.task.id}", MEMBER), r.TaskUpdated)

    services.members_may_schedule = True
    made = await run(services, 'create Chart --every "daily 10:00"', MEMBER)
    assert isinstance(made, r.ScheduleCreated) and made.here
    assert isinstance(await run(services, "schedule pause S2", MEMBER), r.ScheduleChanged)


async def test_a_worker_never_makes_or_manages_schedules(services: Services) -> None:
    board = await services.boards.open("default")
    task = (await board.create_task("orchestrate")).task
    claim = await board.claim(task.id, may_create=True)
    worker = Worker(task.id, claim.run_id, claim.lease)
    with pytest.raises(NotAllowed, match="may not create schedules"):
        await run(services, 'create Chart --every "daily 09:00"', worker)
    await run(services, 'create Chart --every "daily 09:00"')
    for verb in ("schedule pause S1", "schedule remove S1", "run-now S1"):
        with pytest.raises(NotAllowed, match="worker may not"):
            await run(services, verb, worker)
    # A one-off start time is a task like any other: the orchestrator's run may make one.
    made = await run(services, "create Later --in 30m", worker)
    assert isinstance(made, r.TaskCreated) and made.task.not_before is not None


async def test_at_is_read_in_the_configured_zone_and_shown_in_it(services: Services) -> None:
    result = await run(services, "create Report --at 2030-01-02T09:00")
    assert isinstance(result, r.TaskCreated)
    assert result.task.not_before == datetime(2030, 1, 2, 9, 0, tzinfo=BERLIN).timestamp()
    assert "starts Wed 2 Jan 2030 09:00 (Europe/Berlin)" in result.text()
    assert result.to_json()["not_before"] == result.task.not_before
    listed = await run(services, "list")
    assert "starts Wed 2 Jan 2030 09:00 (Europe/Berlin)" in listed.text()
    shown = await run(services, f"show {result.task.id}")
    assert "starts Wed 2 Jan 2030" in shown.text()
    offset = await run(services, "create Report --at 2030-01-02T09:00+00:00")
    assert isinstance(offset, r.TaskCreated)
    assert offset.task.not_before == datetime(2030, 1, 2, 10, 0, tzinfo=BERLIN).timestamp()
    board = await services.boards.open("default")
    before = await board.current_time()
    soon = await run(services, "create Report --in 1h30m")
    assert isinstance(soon, r.TaskCreated) and soon.task.not_before is not None
    assert soon.task.not_before - before == pytest.approx(5400, abs=5)


@pytest.mark.parametrize(("text", "error", "message"), [
    ("create R --at 2001-01-01T09:00", InvalidInput, "is in the past"),
    ("create R --at soonish", InvalidInput, "is not a time"),
    ("create R --in forever", InvalidInput, "is not a duration"),
    ("create R --in 2h --at 09:00", UsageError, "not both"),
    ("create R --overlap", UsageError, "go with --every"),
    ("create R --every hourly --in 2h", UsageError, "--at and --in are for one task"),
    ("create R --every hourly --parent 1", UsageError, "--parent is for one task"),
    ("create R --every hourly --triage", UsageError, "--triage is for one task"),
    ("create R --every 'every 3 fortnights'", InvalidInput, "is not a schedule"),
    ("create R --every hourly --assignee nobody", UnknownProfile, "nobody"),
])
async def test_bad_times_are_refused_in_one_line_and_make_nothing(
        services: Services, text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        await run(services, text)
    assert "\n" not in str(caught.value)
    board = await services.boards.open("default")
    assert await board.list_tasks() == [] and await board.list_schedules() == []


async def test_managing_schedules_and_running_now(services: Services) -> None:
    await run(services, 'create Sales chart --every "daily 09:00" --assignee charts')
    listed = await run(services, "schedules")
    assert isinstance(listed, r.ScheduleList)
    assert listed.text().startswith("S1 Sales chart · daily 09:00 (Europe/Berlin) · next ")
    [data] = listed.to_json()
    assert (data["ref"], data["cron"], data["timezone"], data["state"]) == (
        "S1", "0 9 * * *", "Europe/Berlin", "active")
    shown = await run(services, "schedule show s1")
    assert "catch-up last · overlap no" in shown.text()
    paused = await run(services, "schedule pause S1")
    assert paused.text() == "Paused S1 Sales chart: no occurrence until it resumes"
    assert "· paused" in (await run(services, "schedules")).text()
    with pytest.raises(Conflict, match="paused already"):
        await run(services, "schedule pause S1")
    resumed = await run(services, "schedule resume 1")
    assert resumed.text().startswith("Resumed S1 Sales chart · daily 09:00 (Europe/Berlin)")

    made = await run(services, "run-now S1")
    assert isinstance(made, r.TaskCreated) and made.task.schedule_id == 1
    assert made.task.assignee == "charts" and made.task.status == "ready"
    with pytest.raises(Conflict, match="waits for no time"):
        await run(services, f"run-now {made.task.id}")
    with pytest.raises(UsageError, match=r"task id .* or a schedule id"):
        await run(services, "run-now tomorrow")
    removed = await run(services, "schedule remove S1")
    assert "the tasks it made stay" in removed.text()
    assert (await run(services, "schedules")).text() == "No schedules on board default."
    with pytest.raises(UsageError, match="not a schedule id"):
        parse_command("schedule pause X1")


# ---- the CLI and config ----------------------------------------------------------------------

def test_the_cli_makes_lists_and_manages_schedules(rb: Cli) -> None:
    (rb.home / "config.yaml").write_text("kanban:\n  timezone: Europe/Berlin\n")
    made = rb.json("kanban", "create", "Sales chart", "--every", "0 9 * * MON-FRI",
                   "--assignee", "alice", "--catch-up", "all")
    assert (made["ref"], made["label"], made["timezone"], made["catch_up"]) == (
        "S1", "weekdays 09:00", "Europe/Berlin", "all")
    out = rb.ok("kanban", "schedules")
    assert "S1" in out and "weekdays 09:00" in out and "Europe/Berlin" in out
    assert rb.json("kanban", "schedules")[0]["next_run_at"] == made["next_run_at"]
    assert "Paused S1" in rb.ok("kanban", "schedule", "pause", "S1")
    task = rb.json("kanban", "create", "Report", "--in", "2h")
    assert task["not_before"] > made["created_at"]
    assert "starts " in rb.ok("kanban", "list")
    assert "starts now" in rb.ok("kanban", "run-now", str(task["id"]))
    error = rb.fail("kanban", "schedule", "remove", "S9")
    assert "schedule S9 not found" in str(error)
    assert "not a schedule id" in rb.usage_error("kanban", "schedule", "pause", "X")


def test_an_unknown_time_zone_in_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("kanban:\n  timezone: Mars/Olympus\n")
    with pytest.raises(ConfigError, match="timezone"):
        load_config(config, {}, home=tmp_path)
    config.write_text("kanban:\n  timezone: Europe/Berlin\n  members_may_schedule: true\n")
    loaded = load_config(config, {}, home=tmp_path)
    assert loaded.kanban.timezone == "Europe/Berlin" and loaded.kanban.members_may_schedule


async def test_a_schedule_made_on_the_command_line_can_post_to_a_chat(
        services: Services) -> None:
    await run(services, 'create Sales chart --every "daily 09:00"')
    added = await run(services, "schedule subscribe S1 --platform slack --chat C1 --thread 9")
    assert added.text() == "S1 Sales chart: each later run posts to slack C1 (thread 9)"
    board = await services.boards.open("default")
    task = await board.run_schedule_now(1)
    [sub] = await board.subscriptions(task.id)
    assert (sub.platform, sub.chat, sub.thread) == ("slack", "C1", "9")
    # A member (even where members may schedule) only adds the thread they write in.
    services.members_may_schedule = True
    with pytest.raises(NotAllowed, match="only the thread they write in"):
        await run(services, "schedule subscribe S1 --platform slack --chat C1", MEMBER)
    mine = await run(services, "schedule subscribe S1 --platform telegram --chat -100 "
                               "--thread 7", MEMBER)
    assert isinstance(mine, r.ScheduleChanged) and len(mine.schedule.subscriptions) == 2
    removed = await run(services, "schedule unsubscribe S1 --platform slack --chat C1 "
                                  "--thread 9")
    assert removed.text() == "S1 no longer posts to slack C1 (thread 9)"
    with pytest.raises(Conflict, match="does not post to slack C1"):
        await run(services, "schedule unsubscribe S1 --platform slack --chat C1 --thread 9")
