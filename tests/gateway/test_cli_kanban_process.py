"""The CLI as a program: exit codes, the one ``error:`` line on stderr, no tracebacks, JSON on
stdout, and ``events --follow`` streaming across processes.

Every bad-input case runs through ``gateway.cli.root`` (the console script's function, with its
error mapping) with isolated stdio; a sample of them also runs as a real ``python -m gateway``
process. Interpreter start-up dominates, so the real processes run concurrently.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.gateway.conftest import Cli, assert_one_error_line

LINE_DEADLINE = 15.0


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    contains: str
    code: int = 1
    env: str | None = None  # which prepared worker environment to use


# Prepared board (see `prepared`): 1 ready, 2 todo (child of 1), 3 ready, 4 running (worker
# env "own"), 5 done by an operator while its worker still held a lease (worker env "stale").
CASES = [
    Case("unknown task", ("kanban", "show", "999"), "task 999 not found"),
    Case("unknown parent", ("kanban", "create", "x", "--parent", "999"),
         "unknown parent task(s): 999"),
    Case("negative priority", ("kanban", "create", "x", "--priority", "-1"),
         "priority must be 0 or more"),
    Case("relative dir workspace", ("kanban", "create", "x", "--workspace", "dir:rel/path"),
         "absolute path"),
    Case("bad workspace", ("kanban", "create", "x", "--workspace", "bogus"),
         "invalid workspace 'bogus'"),
    Case("bad initial status", ("kanban", "create", "x", "--initial-status", "done"),
         "--initial-status", code=2),
    Case("invalid slug", ("kanban", "--board", "Not A Slug", "list"), "invalid board slug"),
    Case("invalid slug on create", ("kanban", "boards", "create", "Bad!"), "invalid board slug"),
    Case("missing board", ("kanban", "--board", "ghost", "list"),
         "board 'ghost' does not exist"),
    Case("cycle", ("kanban", "link", "2", "1"), "would create a cycle"),
    Case("toolset skills", ("kanban", "create", "x", "--skill", "web", "--skill", "terminal"),
         "not skills but toolsets: terminal, web."),
    Case("bad metadata JSON", ("kanban", "complete", "3", "--metadata", "{oops"),
         "--metadata is not valid JSON"),
    Case("archive --rm live task", ("kanban", "archive", "--rm", "3"),
         "only archived tasks can be deleted"),
    Case("remove default board", ("kanban", "boards", "remove", "default"),
         "the default board cannot be removed"),
    Case("heartbeat without lease", ("kanban", "heartbeat", "3"), "lease"),
    Case("claim todo", ("kanban", "claim", "2"), "task 2 cannot be claimed"),
    Case("bad ttl", ("kanban", "claim", "3", "--ttl", "0"), "claim ttl must be positive"),
    Case("unblock not blocked", ("kanban", "unblock", "3"), "not blocked"),
    Case("no such subscription",
         ("kanban", "unsubscribe", "3", "--platform", "slack", "--chat", "C1"),
         "no such subscription"),
    Case("not an integer", ("kanban", "show", "abc"), "'abc' is not a valid integer", code=2),
    Case("unknown verb", ("kanban", "frobnicate"), "No such command 'frobnicate'", code=2),
    Case("missing title", ("kanban", "create"), "Missing argument 'TITLE'", code=2),
    Case("worker completes another task", ("kanban", "complete", "3"),
         "a worker may only complete its own task (4), not task 3", env="own"),
    Case("worker blocks another task", ("kanban", "block", "3", "why"),
         "a worker may only block its own task (4), not task 3", env="own"),
    Case("stale worker complete", ("kanban", "complete", "--result", "late"), "stale",
         env="stale"),
    Case("stale worker heartbeat", ("kanban", "heartbeat"), "stale", env="stale"),
    Case("worker on a missing board", ("kanban", "list"), "board 'gone' does not exist",
         env="gone"),
]


# One of each kind of failure also runs as a real process.
IN_A_PROCESS = ("unknown task", "bad initial status", "cycle", "stale worker complete")


@dataclass
class Prepared:
    cli: Cli
    results: dict[str, subprocess.CompletedProcess[str]]
    processes: dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    home = tmp_path_factory.mktemp("process") / "home"
    home.mkdir()
    rb = Cli(home=home, runner=CliRunner())
    one = rb.create("one")
    rb.create("two", "--parent", str(one))
    rb.create("three")
    own = rb.create("four")
    own_claim = rb.claim(own)
    stale_task = rb.create("five")
    stale_claim = rb.claim(stale_task)
    rb.ok("kanban", "complete", str(stale_task), "--result", "by operator", "--force")
    envs = {
        "own": rb.worker_env(own_claim, own),
        "stale": rb.worker_env(stale_claim, stale_task),
        "gone": rb.worker_env(own_claim, own, board="gone"),
    }
    sampled = [c for c in CASES if c.name in IN_A_PROCESS]
    runs = rb.sub_many([(c.args, envs[c.env] if c.env else None) for c in sampled])
    processes = {c.name: r for c, r in zip(sampled, runs, strict=True)}
    results = {c.name: rb.main(*c.args, env=envs[c.env] if c.env else None) for c in CASES}
    rb.close()
    yield Prepared(rb, results, processes)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_error_line(prepared: Prepared, case: Case) -> None:
    assert_one_error_line(prepared.results[case.name], contains=case.contains, code=case.code)


@pytest.mark.parametrize("name", IN_A_PROCESS)
def test_bad_input_in_a_real_process(prepared: Prepared, name: str) -> None:
    [case] = [c for c in CASES if c.name == name]
    line = assert_one_error_line(prepared.processes[name], contains=case.contains,
                                 code=case.code)
    assert line == prepared.results[name].stderr.strip()


def test_bad_input_changed_nothing(prepared: Prepared) -> None:
    tasks = prepared.cli.json("kanban", "list", "--archived")
    assert [(t["id"], t["status"]) for t in tasks] == [
        (1, "ready"), (2, "todo"), (3, "ready"), (4, "running"), (5, "done")]
    assert prepared.cli.show(5)["result"] == "by operator"
    assert prepared.cli.show(1)["parents"] == []


def test_success_exit_zero_and_json_on_stdout(rb: Cli) -> None:
    created = rb.sub("kanban", "create", "from a process", "--body-file", "-", "--json",
                     input="body via stdin\n")
    assert created.returncode == 0, created.stderr
    assert created.stderr == ""
    assert json.loads(created.stdout) == {"id": 1, "status": "ready", "created": True}
    shown = rb.main("kanban", "show", "1", "--json")
    assert shown.returncode == 0 and shown.stderr == ""
    data = json.loads(shown.stdout)
    assert data["body"] == "body via stdin\n"
    assert data["events"][0]["payload"]["created_by"] == "tester"


@pytest.mark.parametrize("garbage", [
    b"\x00\xffgarbage\x13\x37" * 512,
    b"SQLite format 3\x00" + b"\xde\xad\xbe\xef" * 1024,
], ids=["random-bytes", "sqlite-header-then-garbage"])
def test_corrupt_database_is_one_clear_line(rb: Cli, garbage: bytes) -> None:
    db = rb.home / "boards" / "default" / "kanban.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(garbage)
    for args in (("kanban", "list"), ("kanban", "create", "t"), ("kanban", "stats", "--json"),
                 ("kanban", "events", "--follow", "--timeout", "0")):
        line = assert_one_error_line(rb.main(*args), contains="kanban.db")
        assert "not a database" in line or "malformed" in line, line
    assert_one_error_line(rb.sub("kanban", "show", "1", "--json"), contains="kanban.db")
    assert db.read_bytes() == garbage  # never "repaired" by overwriting


def test_bad_config_is_one_clear_line(rb: Cli, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("kanban: [unclosed\n", encoding="utf-8")
    assert_one_error_line(rb.main("--config", str(config), "kanban", "list"), contains="")


# ---- events --follow -------------------------------------------------------------------------

def _reader(stream: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert stream.stdout is not None
        for line in stream.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="follow-reader", daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str | None]) -> str | None:
    return lines.get(timeout=LINE_DEADLINE)


def test_events_follow_streams_events_from_another_process(rb: Cli) -> None:
    watched = rb.create("watched")
    proc = rb.popen("kanban", "events", str(watched), "--follow", "--json", "--timeout", "2.5")
    with proc:
        lines = _reader(proc)
        first = _next_line(lines)
        assert first is not None
        assert (json.loads(first)["kind"], json.loads(first)["task_id"]) == ("created", watched)
        # The follower is in its loop now. Write from this (another) process: an event of a
        # different task must not appear; the comment on the watched task must.
        rb.create("unrelated")
        rb.ok("kanban", "comment", str(watched), "streamed")
        second = _next_line(lines)
        assert second is not None
        event = json.loads(second)
        assert (event["kind"], event["task_id"]) == ("commented", watched)
        assert set(event) >= {"id", "task_id", "kind", "payload", "created_at"}
        # --timeout ends the stream on its own, cleanly.
        started = time.monotonic()
        assert _next_line(lines) is None
        assert proc.wait(timeout=LINE_DEADLINE) == 0
        assert time.monotonic() - started < LINE_DEADLINE
        assert proc.stderr is not None
        assert proc.stderr.read() == ""


def test_events_follow_from_cursor_without_task(rb: Cli) -> None:
    rb.create("a")
    rb.create("b")
    proc = rb.main("kanban", "events", "--follow", "--json", "--since", "1", "--timeout", "0")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(e["id"], e["task_id"]) for e in events] == [(2, 2)]


def test_unusable_home_is_one_clear_line(rb: Cli, tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory", encoding="utf-8")
    proc = rb.main("--home", str(in_the_way / "home"), "kanban", "list")
    line = assert_one_error_line(proc, contains=str(in_the_way))
    assert "Not a directory" in line


# ---- bad option values on every verb: one line, exit 2 ---------------------------------------

BAD_VALUES = [
    (("kanban", "dispatch", "--wait", "nan"), "'--wait': 'nan' is not a finite number"),
    (("kanban", "dispatch", "--wait", "inf"), "'--wait': 'inf' is not a finite number"),
    (("kanban", "dispatch", "--wait", "-1"), "'--wait': '-1' is not a finite number of "
                                             "seconds from 0"),
    (("kanban", "events", "--follow", "--timeout", "-1"), "'--timeout': '-1' is not a finite"),
    (("kanban", "claim", "1", "--ttl", "inf"), "'--ttl': 'inf' is not a finite number"),
    (("worker", "run", "--task", "abc"), "'--task': 'abc' is not a valid integer"),
    (("dashboard", "--port", "-4"), "'--port': -4 is not in the range"),
    (("profile", "create"), "Missing argument 'NAME'"),
    (("--no-such-option",), "No such option '--no-such-option'"),
]


@pytest.mark.parametrize(("args", "contains"), BAD_VALUES, ids=[" ".join(a) for a, _ in
                                                                BAD_VALUES])
def test_a_bad_value_on_any_verb_is_one_usage_line(rb: Cli, args: tuple[str, ...],
                                                   contains: str) -> None:
    line = assert_one_error_line(rb.main(*args), contains=contains, code=2)
    assert line.endswith("--help`)"), line


def test_worker_run_bad_task_in_a_real_process_is_one_line(rb: Cli) -> None:
    proc = rb.sub("worker", "run", "--task", "abc")
    assert_one_error_line(proc, contains="'--task': 'abc' is not a valid integer", code=2)
