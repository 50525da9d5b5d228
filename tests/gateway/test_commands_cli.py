"""The CLI over the command layer: first page of the list, escaped human output, profile JSON
without secrets, one line for each bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from kanban import Boards
from kanban.agents import Profiles
from tests.gateway.conftest import Cli, assert_one_error_line, clean_environ

EVIL = "evil \x1b[2J\x1b]0;owned\x07 title"


def make_tasks(rb: Cli, count: int) -> None:
    async def go() -> None:
        boards = Boards(rb.home)
        try:
            board = await boards.open("default")
            for i in range(count):
                await board.create_task(f"task {i}")
        finally:
            await boards.close()

    asyncio.run(go())


def test_list_shows_the_first_100_rows_then_says_how_many_more(rb: Cli) -> None:
    make_tasks(rb, 103)
    out = rb.ok("kanban", "list")
    assert "task 99" in out and "task 100 " not in out
    assert out.rstrip().endswith("… 3 more, --all to show")
    everything = rb.ok("kanban", "list", "--all")
    assert "task 102" in everything and "more, --all" not in everything
    assert len(rb.json("kanban", "list")) == 103


def test_list_json_is_the_same_task_objects(rb: Cli) -> None:
    rb.create("a", "--body", "with a body", "--assignee", "alice")
    [task] = rb.json("kanban", "list")
    shown = rb.show(1)
    for key in ("id", "title", "body", "status", "assignee", "parents", "children", "metadata"):
        assert task[key] == shown[key], key


def test_control_characters_are_escaped_in_human_output_only(rb: Cli) -> None:
    task_id = rb.create(EVIL, "--body", "body\x1b[31m red\nsecond line")
    rb.ok("kanban", "comment", str(task_id), "note \x9b6n")
    for args in (("list",), ("show", str(task_id)), ("events",)):
        out = rb.ok("kanban", *args)
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, args
        assert "\\x1b" in out, args
    shown = rb.ok("kanban", "show", str(task_id))
    assert "\\x1b[31m red\nsecond line" in shown  # bodies keep their lines
    assert "note \\x9b6n" in shown
    assert rb.show(task_id)["title"] == EVIL.strip()
    assert rb.json("kanban", "list")[0]["title"] == EVIL.strip()


def test_profile_json_prints_no_secret_values(rb: Cli) -> None:
    Profiles(rb.home).create("bot", env={"SLACK_TOKEN": "xoxb-secret-value"})
    listed = rb.ok("profile", "list", "--json")
    shown = rb.ok("profile", "show", "bot", "--json")
    for out in (listed, shown):
        assert "xoxb-secret-value" not in out
    [bot] = [p for p in json.loads(listed) if p["name"] == "bot"]
    assert bot["env"] == {"SLACK_TOKEN": "***"}


def test_typo_in_assignee_is_refused_with_the_closest_profile(rb: Cli) -> None:
    proc = rb.main("kanban", "create", "Quarterly report", "--assignee", "alcie")
    assert proc.returncode == 1
    assert proc.stderr == "error: no profile 'alcie' — did you mean 'alice'?\n"
    assert rb.json("kanban", "list") == []
    assert "did you mean 'bob'" in rb.main("kanban", "assign", "1", "bobb").stderr


def test_unquoted_title_words_form_the_title(rb: Cli) -> None:
    out = rb.json("kanban", "create", "Quarterly", "report", "--assignee", "alice")
    assert rb.show(out["id"])["title"] == "Quarterly report"


@pytest.mark.parametrize(("args", "code", "contains"), [
    (("kanban", "create", "t", "--priority", "9223372036854775808"), 2, "out of range"),
    (("kanban", "show", "99999999999999999999"), 2, "out of range"),
    (("kanban", "claim", "1", "--ttl", "nan"), 2, "finite"),
    (("kanban", "claim", "1", "--ttl", "inf"), 2, "finite"),
    (("kanban", "claim", "1", "--ttl", "1e308"), 2, "finite"),
    (("kanban", "events", "--limit", "-1"), 2, "out of range"),
    (("kanban", "complete", "1", "--metadata", '{"x": NaN}'), 1, "NaN is not a JSON number"),
    (("kanban", "complete", "1", "--metadata", "[" * 5000 + "]" * 5000), 1, "nested too deeply"),
    (("kanban", "create", "bad \udcff byte"), 1, "not valid UTF-8"),
    (("kanban", "create", "t", "--assignee", "../x"), 1, "no profile '../x'"),
])
def test_every_bad_input_is_one_line(rb: Cli, args: tuple[str, ...], code: int,
                                     contains: str) -> None:
    rb.create("one")
    proc = rb.main(*args)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and contains in lines[0], lines
    assert rb.show(1)["status"] == "ready"


def test_body_file_is_read_with_a_cap(rb: Cli, tmp_path: Path) -> None:
    proc = rb.main("kanban", "create", "t", "--body-file", "/dev/zero")
    assert proc.returncode == 1 and "must be a regular file" in proc.stderr  # a device
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 1_000_001)
    proc = rb.main("kanban", "create", "t", "--body-file", str(big))
    assert proc.returncode == 1 and "1,000,000-byte limit" in proc.stderr
    assert rb.json("kanban", "list") == []


def test_body_file_on_a_fifo_is_one_line_not_a_hang(rb: Cli, tmp_path: Path) -> None:
    fifo = tmp_path / "body.fifo"
    os.mkfifo(fifo)  # nobody will ever write to it
    try:
        proc = subprocess.run(rb.argv("kanban", "create", "t", "--body-file", str(fifo)),
                              env=clean_environ(), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("kanban create --body-file FIFO hung")
    assert_one_error_line(proc, contains="--body-file must be a regular file ('-' for stdin); "
                                         f"{fifo} is a FIFO")
    assert rb.json("kanban", "list") == []
