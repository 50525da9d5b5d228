"""The command layer without a terminal: chat-text parsing, execution for each kind of caller,
refusals, and the short chat text of results. Real boards in a temporary home."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.commands import (
    ArchiveRequest,
    AssignRequest,
    BlockRequest,
    ChatUser,
    ClaimRequest,
    CommentRequest,
    CompleteRequest,
    CreateRequest,
    HeartbeatRequest,
    LinkRequest,
    ListRequest,
    NotAllowed,
    Operator,
    Services,
    SetModelRequest,
    ShowRequest,
    UnblockRequest,
    UnknownProfile,
    UnlinkRequest,
    UsageError,
    Worker,
    execute,
    parse_command,
    printable,
    render_text,
    split_words,
)
from gateway.commands import results as r
from kanban import Boards, InvalidInput, KanbanError
from kanban.agents import Profiles

OPERATOR = Operator("tester")
CHAT = ChatUser("slack", "U1", "Ann")  # a member
ADMIN = ChatUser("slack", "U1", "Ann", role="admin")


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    profiles = Profiles(tmp_path)
    for name in ("reporter", "charts"):
        profiles.create(name)
    made = Services(boards=Boards(tmp_path), profiles=profiles)
    try:
        yield made
    finally:
        await made.aclose()


async def run(services: Services, text: str, caller: object = OPERATOR) -> r.Result:
    assert isinstance(caller, Operator | Worker | ChatUser)
    return await execute(parse_command(text), caller, services)


# ---- parsing chat text -----------------------------------------------------------------------

def test_unquoted_title_is_the_words_before_the_first_flag() -> None:
    request = parse_command("create Quarterly report --assignee reporter")
    assert request == CreateRequest(title="Quarterly report", assignee="reporter")


def test_prefix_is_accepted_and_board_is_the_group_option() -> None:
    request = parse_command("/kanban --board ops create Fix it")
    assert request == CreateRequest(title="Fix it", board="ops")


@pytest.mark.parametrize("text", [
    "create “Quarterly report” --assignee reporter",
    "create ‘Quarterly report’ --assignee reporter",
    'create "Quarterly report" --assignee reporter',
    "create 'Quarterly report' --assignee reporter",
])
def test_typographic_and_straight_quotes(text: str) -> None:
    assert parse_command(text) == CreateRequest(title="Quarterly report", assignee="reporter")


def test_apostrophes_inside_words_stay_literal() -> None:
    assert split_words("create Don’t panic it's fine") == [
        "create", "Don’t", "panic", "it's", "fine"]
    assert parse_command("comment 3 don't ship").words == ("3", "don't", "ship")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "line"), [
    ("create", "create needs a title — try: /kanban create Chart the sales --assignee charts"),
    ("show", "show needs a task id — try: /kanban show 12"),
    ("show twelve", "show: Invalid value for 'TASK_ID': 'twelve' is not a valid integer "
                    "— try: /kanban show 12"),
    ("subscribe 3 --platform slack", "subscribe needs --chat — try: /kanban subscribe 12 "
                                     "--platform slack --chat C123"),
    ("create “unclosed", "a quote is not closed — put the closing quote after the last word"),
])
def test_usage_errors_are_one_short_line_with_a_hint(text: str, line: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_command(text)
    assert str(caught.value) == line
    assert "\n" not in str(caught.value)


def test_unknown_verb_lists_the_verbs() -> None:
    with pytest.raises(UsageError) as caught:
        parse_command("frobnicate 3")
    message = str(caught.value)
    assert "frobnicate" in message and "verbs: archive, assign, block" in message
    assert len(message) < 300


@pytest.mark.parametrize("text", [
    "complete 3 --artifact /etc/passwd",   # a host path: never from chat
    "create x --body-file /etc/passwd",    # the CLI's own option
    "events --follow",
    "comment 3 hi --author someone-else",
    "create x --help",
])
def test_terminal_only_options_do_not_exist_in_chat(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_command(text)
    assert "No such option" in str(caught.value)


def test_empty_text_asks_for_a_verb() -> None:
    with pytest.raises(UsageError, match="which verb"):
        parse_command("  ")


def test_numbers_out_of_range_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="range"):
        parse_command("show 99999999999999999999")
    with pytest.raises(UsageError, match="range"):
        parse_command("create t --priority 9223372036854775808")
    with pytest.raises(UsageError, match="finite"):
        parse_command("claim 3 --ttl nan")
    with pytest.raises(UsageError, match="finite"):
        parse_command("claim 3 --ttl 1e308")
    with pytest.raises(UsageError, match="range"):
        parse_command("events --limit -1")


# ---- executing for each caller ---------------------------------------------------------------

async def test_chat_create_and_render_text(services: Services) -> None:
    result = await run(services, "create Quarterly report --assignee reporter", CHAT)
    assert isinstance(result, r.TaskCreated)
    assert render_text(result) == "Created #1 Quarterly report · ready · @reporter"
    task = (await run(services, "show 1")).detail.task  # type: ignore[union-attr]
    assert task.title == "Quarterly report" and task.created_by == "Ann (slack)"


async def test_typo_in_assignee_names_the_closest_profile(services: Services) -> None:
    with pytest.raises(UnknownProfile) as caught:
        await run(services, "create Quarterly report --assignee reportr", CHAT)
    assert str(caught.value) == "no profile 'reportr' — did you mean 'reporter'?"
    assert caught.value.suggestion == "reporter"
    with pytest.raises(UnknownProfile, match="did you mean 'charts'"):
        await run(services, "create t", OPERATOR) and await run(services, "assign 1 chart")
    listed = await run(services, "list")
    assert isinstance(listed, r.TaskList) and [t.assignee for t in listed.tasks] == [None]


async def test_no_profiles_at_all_says_how_to_create_one(tmp_path: Path) -> None:
    services = Services(boards=Boards(tmp_path), profiles=Profiles(tmp_path))
    try:
        with pytest.raises(UnknownProfile) as caught:
            await run(services, "create t --assignee reporter")
        assert "relayboard profile create reporter" in str(caught.value)
        with pytest.raises(UnknownProfile):
            await run(services, "create t --assignee ../x")
    finally:
        await services.aclose()


async def test_worker_writes_its_own_task_with_its_lease(services: Services) -> None:
    await run(services, "create mine")
    claimed = await run(services, "claim 1")
    assert isinstance(claimed, r.Claimed)
    worker = Worker(task_id=1, run_id=claimed.claim.run_id, lease=claimed.claim.lease,
                    profile="reporter")
    comment = await execute(CommentRequest(words=("on", "it"), author="operator"), worker,
                            services)
    assert isinstance(comment, r.CommentAdded) and comment.comment.author_kind == "worker"
    # A worker comments as its run, whatever --author it passes.
    assert comment.comment.author != "operator"
    beat = await execute(HeartbeatRequest(note="half"), worker, services)
    assert isinstance(beat, r.LeaseExtended) and beat.run.id == claimed.claim.run_id
    done = await execute(CompleteRequest(result="ok"), worker, services)
    assert isinstance(done, r.TaskUpdated) and done.task.status == "done"
    shown = await run(services, "show 1")
    assert isinstance(shown, r.TaskShown)
    assert shown.detail.runs[0].status == "completed"
    assert shown.detail.task.result == "ok"


@pytest.mark.parametrize("request_", [
    CompleteRequest(task_id=2),
    BlockRequest(words=("2", "stop")),
    ArchiveRequest(task_ids=(2,)),
    ArchiveRequest(task_ids=(1,)),
    UnblockRequest(task_ids=(2,)),
    AssignRequest(task_id=2, profile="reporter"),
    SetModelRequest(task_id=2, model="m"),
    LinkRequest(parent=1, child=2),
    UnlinkRequest(parent=1, child=2),
    ClaimRequest(task_id=2),
    HeartbeatRequest(task_id=2),
], ids=lambda q: type(q).__name__)
async def test_worker_may_not_change_another_task(services: Services, request_: object) -> None:
    await run(services, "create mine")
    await run(services, "create other")
    claimed = await run(services, "claim 1")
    assert isinstance(claimed, r.Claimed)
    worker = Worker(task_id=1, run_id=claimed.claim.run_id, lease=claimed.claim.lease)
    before = await run(services, "show 2")
    with pytest.raises(NotAllowed) as caught:
        await execute(request_, worker, services)  # type: ignore[arg-type]
    assert "worker" in str(caught.value) and "\n" not in str(caught.value)
    after = await run(services, "show 2")
    assert isinstance(before, r.TaskShown) and isinstance(after, r.TaskShown)
    assert after.detail.task == before.detail.task
    assert len(after.detail.events) == len(before.detail.events)


async def test_operator_and_chat_admin_complete_any_open_task(services: Services) -> None:
    await run(services, "create a")
    await run(services, "create b")
    done = await run(services, "complete 1 --summary fine")
    assert isinstance(done, r.TaskUpdated) and done.task.status == "done"
    by_chat = await run(services, "complete 2", ADMIN)
    assert isinstance(by_chat, r.TaskUpdated) and by_chat.task.status == "done"
    shown = await run(services, "show 2")
    assert isinstance(shown, r.TaskShown)
    assert [e.payload.get("by") for e in shown.detail.events if e.kind == "completed"] == [
        "Ann (slack)"]


async def test_chat_user_may_not_declare_artifacts(services: Services) -> None:
    await run(services, "create a")
    with pytest.raises(NotAllowed, match="artifacts"):
        await execute(CompleteRequest(task_id=1, artifacts=("/etc/passwd",)), ADMIN, services)


async def test_block_and_comment_need_an_id_outside_a_worker(services: Services) -> None:
    await run(services, "create a")
    with pytest.raises(UsageError, match="block needs text after the task id"):
        await run(services, "block 1")
    with pytest.raises(UsageError, match="try: comment 12"):
        await run(services, "comment hello there")
    with pytest.raises(UsageError, match="complete needs a task id"):
        await run(services, "complete")


@pytest.mark.parametrize(("metadata", "message"), [
    ('{"x": NaN}', "NaN is not a JSON number"),
    ('{"x": Infinity}', "Infinity is not a JSON number"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ("[1]", "must be a JSON object"),
])
async def test_bad_metadata_is_one_line(services: Services, metadata: str, message: str) -> None:
    await run(services, "create a")
    with pytest.raises(InvalidInput) as caught:
        await execute(CompleteRequest(task_id=1, metadata=metadata), OPERATOR, services)
    assert message in str(caught.value) and "\n" not in str(caught.value)


async def test_undecodable_and_oversized_text_is_refused(services: Services) -> None:
    with pytest.raises(InvalidInput, match="the title is not valid UTF-8"):
        await execute(CreateRequest(title="bad \udcff byte"), OPERATOR, services)
    with pytest.raises(InvalidInput, match="--body is 1,000,001 bytes"):
        await execute(CreateRequest(title="t", body="x" * 1_000_001), OPERATOR, services)


async def test_list_without_bodies_still_lists(services: Services) -> None:
    await run(services, "create a --body long")
    listed = await execute(ListRequest(with_bodies=False), OPERATOR, services)
    assert isinstance(listed, r.TaskList) and [t.title for t in listed.tasks] == ["a"]
    assert listed.tasks[0].body == ""  # never read
    full = await execute(ListRequest(), OPERATOR, services)  # what `list --json` prints
    assert isinstance(full, r.TaskList) and full.tasks[0].body == "long"


async def test_show_text_escapes_control_characters(services: Services) -> None:
    await execute(CreateRequest(title="evil \x1b[2J title", body="b\x07ody"), OPERATOR,
                  services)
    shown = await execute(ShowRequest(task_id=1), OPERATOR, services)
    text = render_text(shown)
    assert "\x1b" not in text and "\\x1b[2J" in text and "\\x07" in text
    # The JSON keeps the text exactly.
    assert shown.to_json()["title"] == "evil \x1b[2J title"


def test_printable() -> None:
    assert printable("a\x1b[31mred\x9b\u202eb") == "a\\x1b[31mred\\x9b\\u202eb"
    assert printable("line\nnext\ttab") == "line\\x0anext\\x09tab"
    assert printable("line\nnext\ttab", multiline=True) == "line\nnext\ttab"
    assert printable("lone \udcff") == "lone \\udcff"


async def test_kanban_errors_are_the_only_refusals(services: Services) -> None:
    for text in ("show 404", "link 1 1", "unblock 7", "archive --rm 9"):
        with pytest.raises(KanbanError):
            await run(services, text)
