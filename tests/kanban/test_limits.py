"""Bad numbers and text get one clear InvalidInput (or TaskNotFound), never a traceback."""

from __future__ import annotations

import math

import pytest

from kanban.board import Board
from kanban.errors import CycleError, InvalidInput, KanbanError, TaskNotFound
from kanban.testing import make_chain, make_task
from kanban.validation import (
    MAX_JSON_DEPTH,
    MAX_TEXT_BYTES,
    MAX_TITLE,
    parse_json_object,
)

BAD_UTF8 = b"\xff".decode("utf-8", "surrogateescape")  # how argv carries undecodable bytes


def one_line(exc: pytest.ExceptionInfo[KanbanError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 300, text
    return text


@pytest.mark.parametrize("ttl", [math.nan, math.inf, -math.inf, 1e308, 0, -5, 30 * 86400 + 1])
async def test_claim_and_heartbeat_ttl_must_be_finite_and_bounded(board: Board,
                                                                  ttl: float) -> None:
    task = await make_task(board, "t")
    with pytest.raises(InvalidInput, match="claim ttl") as exc:
        await board.claim(task.id, ttl=ttl)
    one_line(exc)
    claim = await board.claim(task.id, ttl=30 * 86400)
    with pytest.raises(InvalidInput, match="heartbeat ttl"):
        await board.heartbeat(task.id, lease=claim.lease, ttl=ttl)
    assert (await board.get_run(claim.run_id)).expires_at is not None


async def test_priority_and_ids_beyond_64_bits(board: Board) -> None:
    with pytest.raises(InvalidInput, match="priority 9223372036854775808 is out of range") as e:
        await make_task(board, "t", priority=2**63)
    one_line(e)
    assert (await make_task(board, "max", priority=2**63 - 1)).priority == 2**63 - 1
    huge = 99999999999999999999
    for call in (board.get_task(huge), board.show_task(huge), board.claim(huge),
                 board.unblock([huge]), board.archive([huge]), board.assign(huge, "p"),
                 board.complete(huge, as_operator=True), board.comment(huge, "x", author="a")):
        with pytest.raises(TaskNotFound):
            await call
    with pytest.raises(KanbanError):
        await board.link(huge, 1)
    with pytest.raises(InvalidInput, match="parent id"):
        await make_task(board, "child", parents=[huge])


@pytest.mark.parametrize("metadata, message", [
    ({"x": math.nan}, "only finite numbers"),
    ({"x": [1, math.inf]}, "only finite numbers"),
    ({"x": 2**70}, "beyond 64 bits"),
    ({"x": {1, 2}}, "not JSON"),
    ({"x": BAD_UTF8}, "not valid UTF-8"),
    ({"x" * 10: "y" * (MAX_TEXT_BYTES + 1)}, "the limit is 1,000,000"),
])
async def test_metadata_must_be_a_finite_bounded_json_object(
    board: Board, metadata: dict[str, object], message: str
) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    with pytest.raises(InvalidInput, match=message) as exc:
        await board.complete(task.id, lease=claim.lease, metadata=metadata)
    one_line(exc)
    assert (await board.get_task(task.id)).status == "running"


async def test_deep_metadata_is_refused_without_recursion_errors(board: Board) -> None:
    task = await make_task(board, "t")
    deep: dict[str, object] = {}
    cursor = deep
    for _ in range(5000):
        cursor["x"] = {}
        cursor = cursor["x"]  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match=f"more than {MAX_JSON_DEPTH} levels"):
        await board.complete(task.id, as_operator=True, metadata=deep)
    text = "[" * 5000 + "]" * 5000
    with pytest.raises(InvalidInput, match=r"JSON object|levels deep"):
        parse_json_object(text)
    with pytest.raises(InvalidInput, match="NaN; only finite numbers"):
        parse_json_object('{"x": NaN}')
    assert parse_json_object('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}


async def test_text_size_caps_name_the_field_and_limit(board: Board) -> None:
    with pytest.raises(InvalidInput, match=f"title is {MAX_TITLE + 1} characters; the limit is"):
        await make_task(board, "t" * (MAX_TITLE + 1))
    big = "é" * (MAX_TEXT_BYTES // 2 + 1)  # 2 bytes each: over the byte cap, under in chars
    with pytest.raises(InvalidInput, match="body is 1,000,002 bytes; the limit is 1,000,000"):
        await make_task(board, "t", body=big)
    task = await make_task(board, "t", body="é" * 1000)
    with pytest.raises(InvalidInput, match="comment is"):
        await board.comment(task.id, big, author="me")
    claim = await board.claim(task.id)
    for field in ("result", "summary"):
        with pytest.raises(InvalidInput, match=f"{field} is 1,000,002 bytes"):
            await board.complete(task.id, lease=claim.lease, **{field: big})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="block reason is"):
        await board.block(task.id, big, lease=claim.lease)


async def test_lone_surrogates_are_invalid_utf8_not_tracebacks(board: Board) -> None:
    with pytest.raises(InvalidInput, match=r"^title is not valid UTF-8 text$"):
        await make_task(board, f"bad {BAD_UTF8}")
    with pytest.raises(InvalidInput, match="body is not valid UTF-8"):
        await make_task(board, "ok", body="\ud800")
    task = await make_task(board, "ok")
    with pytest.raises(InvalidInput, match="comment is not valid UTF-8"):
        await board.comment(task.id, BAD_UTF8, author="me")
    with pytest.raises(InvalidInput, match="assignee is not valid UTF-8"):
        await board.assign(task.id, BAD_UTF8)
    # A field no surface checks still fails as one line, from the storage layer.
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        await board.subscribe(task.id, platform="slack", chat=BAD_UTF8)


async def test_events_limit_is_1_to_10000(board: Board) -> None:
    for limit in (-1, 0, 10_001):
        with pytest.raises(InvalidInput, match="events limit must be 1 to 10,000") as exc:
            await board.events(limit=limit)
        one_line(exc)
    await make_task(board, "t")
    assert len(await board.events(limit=1)) == 1
    assert len(await board.events(limit=10_000)) >= 1


async def test_a_cycle_on_a_long_chain_is_one_short_line(board: Board) -> None:
    chain = await make_chain(board, 300)
    with pytest.raises(CycleError) as exc:
        await board.link(chain[-1].id, chain[0].id)
    text = one_line(exc)  # type: ignore[arg-type]
    assert f"{chain[0].id} → {chain[1].id}" in text and "(301 tasks)" in text
    assert len(exc.value.path) == 300
