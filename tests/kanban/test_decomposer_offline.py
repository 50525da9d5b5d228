"""The offline decomposer: lists become chains or parallel children, routed by description."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanban.agents.decomposer import (
    DecomposeSettings,
    Roster,
    RosterEntry,
    decompose_task,
    decompose_tick,
    list_items,
    route,
)
from kanban.agents.profiles import Profiles
from kanban.board import Board


@pytest.fixture
def profiles(tmp_path: Path) -> Profiles:
    p = Profiles(tmp_path)
    p.create("researcher", description="Searches the web, reads papers and collects sources.")
    p.create("writer", description="Writes reports, articles and documentation.")
    p.create("analyst", description="Analyses data with pandas and plots charts.")
    return p


OFFLINE = DecomposeSettings()  # no endpoint configured


async def triage(board: Board, body: str, title: str = "Solar report") -> int:
    return (await board.create_task(title, body=body, triage=True)).task.id


async def test_numbered_list_becomes_a_chain_routed_by_description(
    board: Board, profiles: Profiles,
) -> None:
    root = await triage(board, "We need this:\n1. Collect sources and papers on solar panels\n"
                               "2. Plot charts of the efficiency data\n"
                               "   using the 2023 dataset\n"
                               "3) Write the final report\n")
    out = await decompose_task(board, root, profiles, OFFLINE)
    assert out.action == "decomposed" and out.decomposer == "offline"
    assert out.note == ("no auxiliary client configured for kanban_decomposer; "
                        "used the offline decomposer")
    assert out.assignees == ("researcher", "analyst", "writer")
    first, second, third = [await board.get_task(i) for i in out.children]
    assert first.title == "Collect sources and papers on solar panels"
    assert (first.parents, second.parents, third.parents) == ([], [first.id], [second.id])
    assert "using the 2023 dataset" in second.body and "Context:\nWe need this:" in second.body
    assert f"Part of #{root}" in third.body
    assert [t.status for t in (first, second, third)] == ["ready", "todo", "todo"]
    comment = (await board.show_task(root)).comments[0]
    assert comment.author == "offline decomposer"
    assert "Decomposed by offline decomposer" in comment.body


async def test_bulleted_list_becomes_parallel_children(board: Board,
                                                       profiles: Profiles) -> None:
    root = await triage(board, "- write the docs for the API\n* plot the charts of sales data\n"
                               "+ [ ] search the web for competitor papers")
    out = await decompose_task(board, root, profiles, OFFLINE)
    assert out.action == "decomposed"
    children = [await board.get_task(i) for i in out.children]
    assert [c.parents for c in children] == [[], [], []]
    assert [c.status for c in children] == ["ready"] * 3
    assert [c.assignee for c in children] == ["writer", "analyst", "researcher"]
    assert children[2].title == "search the web for competitor papers"


async def test_prose_is_promoted_as_a_single_task(board: Board, profiles: Profiles) -> None:
    root = await triage(board, "Please plot charts of the pandas data we collected.",
                        title="Charts")
    out = await decompose_task(board, root, profiles, OFFLINE)
    assert (out.action, out.assignees) == ("promoted", ("analyst",))
    task = await board.get_task(root)
    assert (task.status, task.assignee, task.title) == ("ready", "analyst", "Charts")
    comment = (await board.show_task(root)).comments[0]
    assert comment.author == "offline decomposer" and "single task" in comment.body


async def test_single_item_or_mixed_lists_are_not_split(board: Board,
                                                        profiles: Profiles) -> None:
    one = await triage(board, "1. only one step")
    mixed = await triage(board, "1. first\n- second\n2. third")
    for task_id in (one, mixed):
        out = await decompose_task(board, task_id, profiles, OFFLINE)
        assert out.action == "promoted"


async def test_existing_assignee_is_kept_on_single_promotion(board: Board,
                                                             profiles: Profiles) -> None:
    task_id = (await board.create_task("x", body="plot charts", assignee="writer",
                                       triage=True)).task.id
    out = await decompose_task(board, task_id, profiles, OFFLINE)
    assert out.assignees == ("writer",)


async def test_no_match_goes_to_default_assignee(board: Board, profiles: Profiles) -> None:
    root = await triage(board, "- zzz qqq\n- xxyy vvv")
    out = await decompose_task(board, root, profiles, DecomposeSettings(default_assignee="writer"))
    assert out.assignees == ("writer", "writer")
    root2 = await triage(board, "- zzz qqq\n- xxyy vvv")
    out = await decompose_task(board, root2, profiles, OFFLINE)
    assert out.assignees == ("analyst", "analyst")  # the default profile: first alphabetically


async def test_too_long_list_is_a_recorded_failure(board: Board, profiles: Profiles) -> None:
    root = await triage(board, "\n".join(f"- item {i}" for i in range(5)))
    out = await decompose_task(board, root, profiles, DecomposeSettings(max_fanout=4))
    assert out.action == "failed" and out.reason == (
        "the body lists 5 items; the fan-out limit is 4")
    task = await board.get_task(root)
    assert task.status == "triage" and task.decompose_error == out.reason
    assert len(await board.list_tasks()) == 1


async def test_tick_uses_offline_decomposer(board: Board, profiles: Profiles) -> None:
    ids = [await triage(board, "- write docs\n- plot charts") for _ in range(2)]
    outcomes = await decompose_tick(board, profiles, DecomposeSettings(per_tick=5))
    assert [(o.task_id, o.action, o.decomposer) for o in outcomes] == [
        (ids[0], "decomposed", "offline"), (ids[1], "decomposed", "offline")]
    assert await decompose_tick(board, profiles, DecomposeSettings(per_tick=5)) == []


def test_list_items_shapes() -> None:
    assert list_items("intro\n1. a\n   more a\n2. b") == ("numbered", ["a\nmore a", "b"], "intro")
    assert list_items("- a\n  - nested\n- b")[:2] == ("bulleted", ["a\n- nested", "b"])
    assert list_items("just prose")[0] == ""
    assert list_items("")[0] == ""


def test_route_weights_rare_words_and_breaks_ties_by_name() -> None:
    roster = Roster((RosterEntry("b-data", "data charts", False),
                     RosterEntry("a-data", "data reports", False),
                     RosterEntry("plain", "", False)), fallback="plain", orchestrator="plain")
    assert route("make charts", roster) == "b-data"
    assert route("data", roster) == "a-data"  # both match equally: first by name
    assert route("nothing relevant", roster) == "plain"
    assert route("plain task", roster) == "plain"  # the name counts as a description word
