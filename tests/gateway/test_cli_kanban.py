"""``relayboard kanban …`` through the real click entry point.

Each test drives the CLI exactly as a person or a worker would and checks the data it reports
(``--json``) and what a second ``show`` reads back. Subprocess tests live in
``test_cli_kanban_process.py``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from kanban.errors import (
    BoardNotFound,
    Conflict,
    CycleError,
    InvalidInput,
    KanbanError,
    LeaseError,
    NotClaimable,
    TaskNotFound,
)
from kanban.home import Boards
from tests.gateway.conftest import Cli

SHOW_KEYS = {
    "id", "title", "body", "status", "assignee", "priority", "parents", "children",
    "created_at", "started_at", "completed_at", "consecutive_failures", "last_failure_error",
    "max_runtime_seconds", "max_retries", "model_override", "skills", "result", "metadata",
    "runs", "comments", "events",
}


def db_path(rb: Cli, board: str = "default") -> Path:
    return rb.home / "boards" / board / "kanban.db"


def kinds(detail: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in detail["events"]]


def record_failures(rb: Cli, task_id: int, count: int, error: str = "boom") -> None:
    """Count dispatcher failures through the kernel (the CLI has no verb for it)."""

    async def go() -> None:
        boards = Boards(rb.home)
        try:
            board = await boards.open("default")
            for _ in range(count):
                await board.record_failure(task_id, run_id=None, kind="crashed", error=error)
        finally:
            await boards.close()

    asyncio.run(go())


def assign_directly(rb: Cli, task_id: int, assignee: str) -> None:
    """Set an assignee through the kernel (the CLI refuses names that are no profile)."""

    async def go() -> None:
        boards = Boards(rb.home)
        try:
            board = await boards.open("default")
            await board.assign(task_id, assignee)
        finally:
            await boards.close()

    asyncio.run(go())


# ---- create ----------------------------------------------------------------------------------

def test_create_json_and_defaults(rb: Cli) -> None:
    out = rb.json("kanban", "create", "Write the report")
    assert out == {"id": 1, "status": "ready", "created": True}
    task = rb.show(1)
    assert SHOW_KEYS <= set(task)
    assert task["title"] == "Write the report"
    assert task["body"] == ""
    assert task["status"] == "ready"
    assert task["assignee"] is None
    assert task["priority"] == 0
    assert task["parents"] == [] and task["children"] == []
    assert isinstance(task["created_at"], float)
    assert task["started_at"] is None and task["completed_at"] is None
    assert task["consecutive_failures"] == 0 and task["last_failure_error"] is None
    assert task["max_runtime_seconds"] is None and task["max_retries"] is None
    assert task["model_override"] is None and task["skills"] == []
    assert task["result"] is None and task["metadata"] == {}
    assert task["runs"] == [] and task["comments"] == []
    assert kinds(task) == ["created"]
    assert task["events"][0]["payload"]["created_by"] == "tester"


def test_create_human_output(rb: Cli) -> None:
    out = rb.ok("kanban", "create", "Plain")
    assert out.strip() == "Created task 1 (ready): Plain"


def test_create_all_scalar_options_round_trip(rb: Cli) -> None:
    task_id = rb.create(
        "Full", "--body", "the body", "--assignee", "alice", "--priority", "7",
        "--max-runtime", "120", "--max-retries", "5", "--model", "gpt-x",
        "--skill", "kanban-worker", "--skill", "review", "--skill", "kanban-worker",
    )
    task = rb.show(task_id)
    assert task["body"] == "the body"
    assert task["assignee"] == "alice"
    assert task["priority"] == 7
    assert task["max_runtime_seconds"] == 120
    assert task["max_retries"] == 5
    assert task["model_override"] == "gpt-x"
    assert task["skills"] == ["kanban-worker", "review"]  # duplicates dropped, order kept


def test_create_max_runtime_zero_is_kept(rb: Cli) -> None:
    task = rb.show(rb.create("instant timeout", "--max-runtime", "0"))
    assert task["max_runtime_seconds"] == 0


def test_create_body_file_and_stdin(rb: Cli, tmp_path: Path) -> None:
    body = tmp_path / "body.md"
    body.write_text("# Spec\n\nline two ✓\n", encoding="utf-8")
    from_file = rb.create("from file", "--body-file", str(body))
    assert rb.show(from_file)["body"] == "# Spec\n\nline two ✓\n"
    out = rb.json("kanban", "create", "from stdin", "--body-file", "-", input="piped body\n")
    assert rb.show(out["id"])["body"] == "piped body\n"


def test_create_body_and_body_file_together_refused(rb: Cli, tmp_path: Path) -> None:
    body = tmp_path / "b.txt"
    body.write_text("x", encoding="utf-8")
    err = rb.fail("kanban", "create", "t", "--body", "a", "--body-file", str(body))
    assert isinstance(err, InvalidInput) and "not both" in str(err)
    err = rb.fail("kanban", "create", "t", "--body-file", str(tmp_path / "missing.txt"))
    assert isinstance(err, InvalidInput) and "cannot read --body-file" in str(err)
    assert rb.json("kanban", "list") == []


def test_create_with_parents_status_derived(rb: Cli) -> None:
    a = rb.create("a")
    b = rb.create("b")
    child = rb.json("kanban", "create", "child", "--parent", str(a), "--parent", str(b))
    assert child["status"] == "todo"
    task = rb.show(child["id"])
    assert task["parents"] == [a, b]
    assert rb.show(a)["children"] == [child["id"]]
    assert task["events"][0]["payload"]["parents"] == [a, b]
    # Parents that are already done satisfy the new child at once.
    rb.ok("kanban", "complete", str(a))
    rb.ok("kanban", "complete", str(b))
    assert rb.json("kanban", "create", "late child", "--parent", str(a))["status"] == "ready"


def test_create_archived_parent_satisfies(rb: Cli) -> None:
    a = rb.create("a")
    rb.ok("kanban", "archive", str(a))
    assert rb.json("kanban", "create", "c", "--parent", str(a))["status"] == "ready"


def test_create_triage(rb: Cli) -> None:
    out = rb.json("kanban", "create", "rough idea", "--triage")
    assert out["status"] == "triage"
    assert rb.show(out["id"])["status"] == "triage"


def test_create_initial_status_blocked(rb: Cli) -> None:
    out = rb.json("kanban", "create", "review me", "--initial-status", "blocked")
    assert out["status"] == "blocked"
    task = rb.show(out["id"])
    assert task["status"] == "blocked"
    assert kinds(task) == ["created", "blocked"]
    assert task["events"][1]["payload"]["by"] == "human"
    # A human block is not lifted by parents; unblock derives the real status.
    assert rb.json("kanban", "unblock", str(out["id"]))[0]["status"] == "ready"


def test_create_initial_status_running_means_derive(rb: Cli) -> None:
    parent = rb.create("p")
    out = rb.json("kanban", "create", "c", "--parent", str(parent),
                  "--initial-status", "running")
    assert out["status"] == "todo"


def test_create_initial_status_invalid_is_usage_error(rb: Cli) -> None:
    stderr = rb.usage_error("kanban", "create", "t", "--initial-status", "done")
    assert stderr.startswith("error: ") and "--initial-status" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert rb.json("kanban", "list") == []


@pytest.mark.parametrize(("spec", "kind", "path"), [
    ("scratch", "scratch", None),
    ("dir:/srv/project", "dir", "/srv/project"),
    ("worktree", "worktree", None),
    ("worktree:/src/wt", "worktree", "/src/wt"),
])
def test_create_workspace_specs(rb: Cli, spec: str, kind: str, path: str | None) -> None:
    task = rb.show(rb.create("w", "--workspace", spec))
    assert (task["workspace_kind"], task["workspace_path"]) == (kind, path)


@pytest.mark.parametrize("spec", ["dir:relative/path", "dir:", "bogus", "worktree:", "tmp:/x"])
def test_create_bad_workspace_refused(rb: Cli, spec: str) -> None:
    err = rb.fail("kanban", "create", "w", "--workspace", spec)
    assert isinstance(err, InvalidInput)
    assert "workspace" in str(err)
    assert rb.json("kanban", "list") == []


def test_create_toolset_skills_all_reported_in_one_error(rb: Cli) -> None:
    err = rb.fail("kanban", "create", "t", "--skill", "web", "--skill", "kanban-worker",
                  "--skill", "terminal", "--skill", "code_execution")
    assert isinstance(err, InvalidInput)
    first_line = str(err).splitlines()[0]
    assert "code_execution, terminal, web" in first_line
    assert "kanban-worker" not in first_line.split(".")[0]
    assert "toolset" in first_line
    assert rb.json("kanban", "list") == []


def test_create_idempotency_key(rb: Cli) -> None:
    first = rb.json("kanban", "create", "once", "--idempotency-key", "k-1")
    again = rb.json("kanban", "create", "once (retry)", "--idempotency-key", "k-1")
    assert first["created"] is True
    assert again == {"id": first["id"], "status": first["status"], "created": False}
    assert [t["title"] for t in rb.json("kanban", "list")] == ["once"]
    assert rb.ok("kanban", "create", "again", "--idempotency-key", "k-1").startswith(
        f"Existing task {first['id']}")
    # An archived task frees its key.
    rb.ok("kanban", "archive", str(first["id"]))
    fresh = rb.json("kanban", "create", "once more", "--idempotency-key", "k-1")
    assert fresh["created"] is True and fresh["id"] != first["id"]


@pytest.mark.parametrize(("args", "message"), [
    (["--priority", "-1"], "priority must be 0 or more"),
    (["--max-runtime", "-5"], "max runtime"),
    (["--max-retries", "0"], "max retries"),
    (["--parent", "42"], "unknown parent task(s): 42"),
    (["--idempotency-key", "  "], "idempotency key"),
])
def test_create_bad_values_refused(rb: Cli, args: list[str], message: str) -> None:
    err = rb.fail("kanban", "create", "t", *args)
    assert isinstance(err, InvalidInput)
    assert message in str(err)
    assert rb.json("kanban", "list", "--archived") == []


def test_create_blank_title_refused(rb: Cli) -> None:
    err = rb.fail("kanban", "create", "   ")
    assert isinstance(err, InvalidInput) and "title" in str(err)


# ---- list ------------------------------------------------------------------------------------

def test_list_orders_by_priority_then_age(rb: Cli) -> None:
    low_old = rb.create("low old")
    high_new = rb.create("high new", "--priority", "5")
    low_new = rb.create("low new")
    high_newer = rb.create("high newer", "--priority", "5")
    ids = [t["id"] for t in rb.json("kanban", "list")]
    assert ids == [high_new, high_newer, low_old, low_new]


def test_list_filters(rb: Cli) -> None:
    a = rb.create("a", "--assignee", "alice")
    b = rb.create("b", "--assignee", "bob")
    c = rb.create("c", "--assignee", "alice", "--parent", str(b))
    d = rb.create("d")
    rb.ok("kanban", "archive", str(d))
    assert [t["id"] for t in rb.json("kanban", "list")] == [a, b, c]
    assert [t["id"] for t in rb.json("kanban", "list", "--assignee", "alice")] == [a, c]
    assert [t["id"] for t in rb.json("kanban", "list", "--status", "todo")] == [c]
    assert [t["id"] for t in rb.json("kanban", "list", "--status", "archived")] == [d]
    assert [t["id"] for t in rb.json("kanban", "list", "--archived")] == [a, b, c, d]
    listed = {t["id"]: t for t in rb.json("kanban", "list")}
    assert listed[c]["parents"] == [b] and listed[b]["children"] == [c]


def test_list_bad_status_is_usage_error(rb: Cli) -> None:
    assert "--status" in rb.usage_error("kanban", "list", "--status", "nope")


def test_list_human_table(rb: Cli) -> None:
    assert "No tasks on board default" in rb.ok("kanban", "list")
    rb.create("visible title", "--assignee", "alice")
    out = rb.ok("kanban", "list")
    assert "visible title" in out and "alice" in out and "ready" in out


# ---- show ------------------------------------------------------------------------------------

def test_show_unknown_task(rb: Cli) -> None:
    err = rb.fail("kanban", "show", "99")
    assert isinstance(err, TaskNotFound) and str(err) == "task 99 not found"


def test_show_human_output(rb: Cli) -> None:
    parent = rb.create("parent")
    task_id = rb.create("the child", "--body", "BODY TEXT", "--parent", str(parent),
                        "--skill", "kanban-worker")
    rb.ok("kanban", "comment", str(task_id), "a remark")
    out = rb.ok("kanban", "show", str(task_id))
    for needle in ("Task 2", "the child", "BODY TEXT", "a remark", "kanban-worker", "created"):
        assert needle in out, needle


# ---- link / unlink -------------------------------------------------------------------------

def test_link_demotes_ready_child_and_reports(rb: Cli) -> None:
    parent = rb.create("p")
    child = rb.create("c")
    out = rb.json("kanban", "link", str(parent), str(child))
    assert out["id"] == child and out["status"] == "todo" and out["parents"] == [parent]
    assert rb.show(parent)["children"] == [child]
    assert kinds(rb.show(child))[-2:] == ["linked", "demoted"]


def test_link_cycle_refused(rb: Cli) -> None:
    a = rb.create("a")
    b = rb.create("b", "--parent", str(a))
    c = rb.create("c", "--parent", str(b))
    err = rb.fail("kanban", "link", str(c), str(a))
    assert isinstance(err, CycleError)
    assert "cycle" in str(err) and len(str(err).splitlines()) == 1
    assert rb.show(a)["parents"] == []
    err = rb.fail("kanban", "link", str(a), str(a))
    assert isinstance(err, CycleError) and "own parent" in str(err)


def test_link_unknown_task(rb: Cli) -> None:
    a = rb.create("a")
    assert isinstance(rb.fail("kanban", "link", str(a), "77"), TaskNotFound)
    assert isinstance(rb.fail("kanban", "link", "77", str(a)), TaskNotFound)


def test_unlink_makes_child_ready_at_once(rb: Cli) -> None:
    a = rb.create("a")
    b = rb.create("b")
    child = rb.create("child", "--parent", str(a), "--parent", str(b))
    rb.ok("kanban", "complete", str(a))
    assert rb.show(child)["status"] == "todo"
    out = rb.json("kanban", "unlink", str(b), str(child))
    assert out["status"] == "ready" and out["parents"] == [a]
    task = rb.show(child)
    assert task["status"] == "ready"
    assert kinds(task)[-2:] == ["unlinked", "promoted"]
    # Claimable right away.
    assert rb.claim(child)["run_id"] == 1
    err = rb.fail("kanban", "unlink", str(b), str(child))
    assert isinstance(err, InvalidInput) and f"no parent {b}" in str(err)


# ---- assign / set-model ----------------------------------------------------------------------

def test_assign_and_none(rb: Cli) -> None:
    task_id = rb.create("t")
    assert rb.json("kanban", "assign", str(task_id), "alice")["assignee"] == "alice"
    assert rb.show(task_id)["assignee"] == "alice"
    assert rb.json("kanban", "assign", str(task_id), "none")["assignee"] is None
    assert rb.show(task_id)["assignee"] is None
    assert rb.ok("kanban", "assign", str(task_id), "bob").strip() == (
        f"Task {task_id} assigned to bob")
    assert kinds(rb.show(task_id)).count("assigned") == 3


def test_set_model_and_none(rb: Cli) -> None:
    task_id = rb.create("t", "--model", "m1")
    assert rb.json("kanban", "set-model", str(task_id), "m2")["model_override"] == "m2"
    assert rb.show(task_id)["model_override"] == "m2"
    assert rb.json("kanban", "set-model", str(task_id), "NONE")["model_override"] is None
    assert rb.show(task_id)["model_override"] is None


def test_set_priority_reorders_the_list(rb: Cli) -> None:
    low = rb.create("low")
    high = rb.create("high")
    assert rb.json("kanban", "set-priority", str(high), "9")["priority"] == 9
    assert [t["id"] for t in rb.json("kanban", "list")] == [high, low]
    assert isinstance(rb.fail("kanban", "set-priority", "99", "1"), TaskNotFound)
    worker = rb.json("kanban", "claim", str(low))
    refused = rb.fail("kanban", "set-priority", str(high), "1", env=rb.worker_env(worker, low))
    assert "may not set the priority" in str(refused)


def test_assign_unknown_and_archived(rb: Cli) -> None:
    assert isinstance(rb.fail("kanban", "assign", "5", "alice"), TaskNotFound)
    task_id = rb.create("t")
    rb.ok("kanban", "archive", str(task_id))
    assert isinstance(rb.fail("kanban", "assign", str(task_id), "alice"), Conflict)


# ---- claim / heartbeat -----------------------------------------------------------------------

def test_claim_json_and_scratch_workspace(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id, "--ttl", "60")
    assert set(claim) == {"run_id", "lease", "workspace", "expires_at"}
    assert isinstance(claim["lease"], str) and len(claim["lease"]) >= 20
    workspace = Path(claim["workspace"])
    assert workspace == rb.home / "boards" / "default" / "workspaces" / str(task_id)
    assert workspace.is_dir()
    task = rb.show(task_id)
    assert task["status"] == "running"
    assert isinstance(task["started_at"], float)
    [run] = task["runs"]
    assert run["id"] == claim["run_id"] and run["status"] == "active"
    assert run["claimed_by"] == "tester"
    assert "lease" not in run  # show never leaks the token
    assert claim["expires_at"] == pytest.approx(run["claimed_at"] + 60)


def test_claim_dir_workspace_is_reported_not_created(rb: Cli, tmp_path: Path) -> None:
    target = tmp_path / "project"
    task_id = rb.create("t", "--workspace", f"dir:{target}")
    assert rb.claim(task_id)["workspace"] == str(target)
    assert not target.exists()


def test_claim_refusals(rb: Cli) -> None:
    parent = rb.create("p")
    child = rb.create("c", "--parent", str(parent))
    err = rb.fail("kanban", "claim", str(child))
    assert isinstance(err, NotClaimable) and "todo" in str(err)
    rb.claim(parent)
    err = rb.fail("kanban", "claim", str(parent))
    assert isinstance(err, NotClaimable) and "running" in str(err)
    assert isinstance(rb.fail("kanban", "claim", "99"), TaskNotFound)
    other = rb.create("o")
    assert isinstance(rb.fail("kanban", "claim", str(other), "--ttl", "0"), InvalidInput)
    assert rb.show(other)["status"] == "ready"


def test_heartbeat_with_manual_lease(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id, "--ttl", "30")
    out = rb.json("kanban", "heartbeat", str(task_id), "--lease", claim["lease"],
                  "--note", "halfway")
    assert out["id"] == claim["run_id"]
    assert isinstance(out["last_heartbeat_at"], float)
    assert out["expires_at"] > claim["expires_at"]  # default TTL 900 s > 30 s
    task = rb.show(task_id)
    hb = [e for e in task["events"] if e["kind"] == "heartbeat"]
    assert hb and hb[-1]["payload"]["note"] == "halfway"
    assert hb[-1]["run_id"] == claim["run_id"]


def test_heartbeat_refusals(rb: Cli) -> None:
    task_id = rb.create("t")
    err = rb.fail("kanban", "heartbeat", str(task_id))
    assert isinstance(err, InvalidInput) and "lease" in str(err)
    rb.claim(task_id)
    err = rb.fail("kanban", "heartbeat", str(task_id), "--lease", "not-a-real-token")
    assert isinstance(err, LeaseError) and "matches no run" in str(err)
    err = rb.fail("kanban", "heartbeat")
    assert isinstance(err, InvalidInput) and "needs a task id" in str(err)
    other = rb.create("other")
    other_claim = rb.claim(other)
    err = rb.fail("kanban", "heartbeat", str(task_id), "--lease", other_claim["lease"])
    assert isinstance(err, LeaseError) and f"belongs to task {other}" in str(err)


# ---- complete --------------------------------------------------------------------------------

def test_complete_by_operator_with_everything(rb: Cli, tmp_path: Path) -> None:
    parent = rb.create("p")
    child = rb.create("c", "--parent", str(parent))
    report = tmp_path / "report.pdf"
    out = rb.json("kanban", "complete", str(parent), "--result", "42 widgets",
                  "--summary", "counted", "--metadata", '{"score": 9, "tags": ["a"]}',
                  "--artifact", str(report), "--artifact", "/abs/other.csv")
    assert out["status"] == "done"
    task = rb.show(parent)
    assert task["status"] == "done"
    assert isinstance(task["completed_at"], float)
    assert task["result"] == "42 widgets"
    assert task["summary"] == "counted"
    assert task["metadata"] == {"score": 9, "tags": ["a"],
                                "artifacts": [str(report), "/abs/other.csv"]}
    [completed] = [e for e in task["events"] if e["kind"] == "completed"]
    assert completed["payload"]["artifacts"] == [str(report), "/abs/other.csv"]
    assert completed["payload"]["result"] == "42 widgets"
    assert completed["payload"]["by"] == "operator"
    # Completing the parent readies the child.
    assert rb.show(child)["status"] == "ready"


def test_complete_relative_artifact_made_absolute(rb: Cli, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    task_id = rb.create("t")
    rb.ok("kanban", "complete", str(task_id), "--artifact", "out/chart.png")
    assert rb.show(task_id)["metadata"]["artifacts"] == [str(tmp_path / "out" / "chart.png")]


def test_complete_metadata_merges(rb: Cli) -> None:
    task_id = rb.create("t")
    rb.ok("kanban", "complete", str(task_id), "--metadata", "{}")
    assert rb.show(task_id)["metadata"] == {}


@pytest.mark.parametrize(("metadata", "message"), [
    ("{not json", "--metadata is not valid JSON"),
    ("[1, 2]", "--metadata must be a JSON object"),
    ('"text"', "--metadata must be a JSON object"),
])
def test_complete_bad_metadata(rb: Cli, metadata: str, message: str) -> None:
    task_id = rb.create("t")
    err = rb.fail("kanban", "complete", str(task_id), "--metadata", metadata)
    assert isinstance(err, InvalidInput) and message in str(err)
    assert len(str(err).splitlines()) == 1
    assert rb.show(task_id)["status"] == "ready"


def test_complete_twice_and_unknown(rb: Cli) -> None:
    task_id = rb.create("t")
    rb.ok("kanban", "complete", str(task_id))
    err = rb.fail("kanban", "complete", str(task_id))
    assert isinstance(err, Conflict) and "already done" in str(err)
    assert isinstance(rb.fail("kanban", "complete", "404"), TaskNotFound)
    err = rb.fail("kanban", "complete")
    assert isinstance(err, InvalidInput) and "needs a task id" in str(err)


def test_complete_with_manual_lease_ends_run_completed(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id)
    rb.ok("kanban", "complete", str(task_id), "--lease", claim["lease"], "--result", "ok")
    task = rb.show(task_id)
    assert task["status"] == "done"
    assert task["runs"][0]["status"] == "completed"
    [completed] = [e for e in task["events"] if e["kind"] == "completed"]
    assert completed["payload"]["by"] == "worker"
    assert completed["run_id"] == claim["run_id"]


def test_operator_complete_of_running_task_supersedes_run(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id)
    err = rb.fail("kanban", "complete", str(task_id), "--result", "by hand")
    assert "use --force" in str(err) and rb.show(task_id)["status"] == "running"
    rb.ok("kanban", "complete", str(task_id), "--result", "by hand", "--force")
    task = rb.show(task_id)
    assert task["status"] == "done" and task["result"] == "by hand"
    assert task["runs"][0]["status"] == "superseded"
    err = rb.fail("kanban", "heartbeat", str(task_id), "--lease", claim["lease"])
    assert isinstance(err, LeaseError) and "stale" in str(err)


# ---- block / unblock -------------------------------------------------------------------------

def test_block_and_unblock(rb: Cli) -> None:
    task_id = rb.create("t")
    out = rb.json("kanban", "block", str(task_id), "needs", "a", "decision")
    assert out["status"] == "blocked"
    task = rb.show(task_id)
    assert task["status"] == "blocked"
    assert task["events"][-1]["kind"] == "blocked"
    assert task["events"][-1]["payload"] == {"reason": "needs a decision", "by": "human"}
    err = rb.fail("kanban", "block", str(task_id), "again")
    assert isinstance(err, Conflict) and "already blocked" in str(err)
    [unblocked] = rb.json("kanban", "unblock", str(task_id))
    assert unblocked["status"] == "ready"
    assert rb.show(task_id)["status"] == "ready"


def test_block_needs_reason_and_id(rb: Cli) -> None:
    task_id = rb.create("t")
    err = rb.fail("kanban", "block", str(task_id))
    assert isinstance(err, InvalidInput) and "needs text" in str(err)
    err = rb.fail("kanban", "block", "just", "words")
    assert isinstance(err, InvalidInput) and "usage" in str(err)
    assert rb.show(task_id)["status"] == "ready"


def test_block_running_task_by_operator_supersedes_run(rb: Cli) -> None:
    task_id = rb.create("t")
    rb.claim(task_id)
    assert "use --force" in str(rb.fail("kanban", "block", str(task_id), "stop"))
    rb.ok("kanban", "block", str(task_id), "stop", "--force")
    task = rb.show(task_id)
    assert task["status"] == "blocked" and task["runs"][0]["status"] == "superseded"


def test_unblock_resets_failures(rb: Cli) -> None:
    task_id = rb.create("t", "--max-retries", "3")
    record_failures(rb, task_id, 3, error="worker crashed: segfault")
    task = rb.show(task_id)
    assert task["status"] == "blocked"
    assert task["consecutive_failures"] == 3
    assert task["last_failure_error"] == "worker crashed: segfault"
    assert "gave_up" in kinds(task)
    [out] = rb.json("kanban", "unblock", str(task_id))
    assert out["status"] == "ready"
    task = rb.show(task_id)
    assert task["consecutive_failures"] == 0 and task["last_failure_error"] is None


def test_unblock_regates_on_parents_and_many_ids(rb: Cli) -> None:
    parent = rb.create("p")
    child = rb.create("c", "--parent", str(parent), "--initial-status", "blocked")
    other = rb.create("o", "--initial-status", "blocked")
    out = rb.json("kanban", "unblock", str(child), str(other))
    assert [(t["id"], t["status"]) for t in out] == [(child, "todo"), (other, "ready")]


def test_unblock_not_blocked_refuses_whole_call(rb: Cli) -> None:
    blocked = rb.create("b", "--initial-status", "blocked")
    ready = rb.create("r")
    err = rb.fail("kanban", "unblock", str(blocked), str(ready))
    assert isinstance(err, Conflict) and "not blocked" in str(err)
    assert rb.show(blocked)["status"] == "blocked"  # one transaction: nothing changed


# ---- comment ---------------------------------------------------------------------------------

def test_comment_by_operator(rb: Cli) -> None:
    task_id = rb.create("t")
    out = rb.json("kanban", "comment", str(task_id), "looks", "good")
    assert out["body"] == "looks good" and out["author"] == "tester"
    assert out["author_kind"] == "human"
    rb.ok("kanban", "comment", str(task_id), "second", "--author", "carol")
    comments = rb.show(task_id)["comments"]
    assert [(c["author"], c["body"]) for c in comments] == [
        ("tester", "looks good"), ("carol", "second")]
    assert kinds(rb.show(task_id)).count("commented") == 2


def test_comment_refusals(rb: Cli) -> None:
    task_id = rb.create("t")
    assert isinstance(rb.fail("kanban", "comment", str(task_id)), InvalidInput)
    assert isinstance(rb.fail("kanban", "comment", "88", "hi"), TaskNotFound)
    err = rb.fail("kanban", "comment", str(task_id), "   ")
    assert isinstance(err, InvalidInput) and "text" in str(err)
    assert rb.show(task_id)["comments"] == []


# ---- archive ---------------------------------------------------------------------------------

def test_archive_satisfies_children_and_stales_lease(rb: Cli) -> None:
    parent = rb.create("p")
    child = rb.create("c", "--parent", str(parent))
    claim = rb.claim(parent)
    assert "use --force" in str(rb.fail("kanban", "archive", str(parent)))
    out = rb.json("kanban", "archive", str(parent), "--force")
    assert [t["status"] for t in out] == ["archived"]
    task = rb.show(parent)
    assert task["status"] == "archived"
    assert task["runs"][0]["status"] == "cancelled"
    assert rb.show(child)["status"] == "ready"
    err = rb.fail("kanban", "complete", str(parent), "--lease", claim["lease"])
    assert isinstance(err, LeaseError) and "stale" in str(err)
    # Archiving again is a no-op, not an error.
    assert rb.json("kanban", "archive", str(parent))[0]["status"] == "archived"


def test_archive_rm_refuses_non_archived(rb: Cli) -> None:
    archived = rb.create("a")
    live = rb.create("l")
    rb.ok("kanban", "archive", str(archived))
    err = rb.fail("kanban", "archive", "--rm", str(archived), str(live))
    assert isinstance(err, Conflict)
    assert f"{live} (ready)" in str(err) and len(str(err).splitlines()) == 1
    assert rb.show(archived)["status"] == "archived"  # nothing deleted
    assert isinstance(rb.fail("kanban", "archive", "--rm", "404"), TaskNotFound)


def test_archive_rm_deletes_with_cascades(rb: Cli) -> None:
    parent = rb.create("p")
    doomed = rb.create("doomed", "--parent", str(parent))
    child = rb.create("child", "--parent", str(doomed))
    rb.ok("kanban", "complete", str(parent))
    claim = rb.claim(doomed)
    workspace = Path(claim["workspace"])
    (workspace / "scratch.txt").write_text("x", encoding="utf-8")
    rb.ok("kanban", "comment", str(doomed), "note")
    rb.ok("kanban", "subscribe", str(doomed), "--platform", "slack", "--chat", "C1")
    rb.ok("kanban", "archive", str(doomed), "--force")
    out = rb.json("kanban", "archive", "--rm", str(doomed))
    assert out == {"deleted": [doomed]}
    assert isinstance(rb.fail("kanban", "show", str(doomed)), TaskNotFound)
    assert not workspace.exists()
    assert rb.show(parent)["children"] == []
    assert rb.show(child)["parents"] == []
    assert rb.json("kanban", "subscriptions") == []
    with sqlite3.connect(db_path(rb)) as conn:
        for table in ("task_comments", "task_runs", "notify_subs"):
            count = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE task_id = ?",
                                 (doomed,)).fetchone()[0]
            assert count == 0, table
        assert conn.execute("SELECT COUNT(*) FROM task_events WHERE task_id = ?",
                            (doomed,)).fetchone()[0] == 0
    conn.close()
    deleted = [e for e in rb.json("kanban", "events") if e["kind"] == "deleted"]
    assert [e["payload"]["task_id"] for e in deleted] == [doomed]


# ---- recompute -------------------------------------------------------------------------------

def test_recompute_repairs_wrong_statuses(rb: Cli) -> None:
    parent = rb.create("p")
    waiting = rb.create("w", "--parent", str(parent))
    free = rb.create("f")
    assert rb.json("kanban", "recompute") == {"promoted": 0, "demoted": 0}
    # Damage the board behind the kernel's back: the sweep must put it right.
    with sqlite3.connect(db_path(rb)) as conn:
        conn.execute("UPDATE tasks SET status = 'ready' WHERE id = ?", (waiting,))
        conn.execute("UPDATE tasks SET status = 'todo' WHERE id = ?", (free,))
    conn.close()
    assert rb.json("kanban", "recompute") == {"promoted": 1, "demoted": 1}
    assert rb.show(waiting)["status"] == "todo"
    assert rb.show(free)["status"] == "ready"
    assert rb.ok("kanban", "recompute").strip() == "Promoted 0, demoted 0"


# ---- events ----------------------------------------------------------------------------------

def test_events_cursor(rb: Cli) -> None:
    a = rb.create("a")
    b = rb.create("b")
    rb.ok("kanban", "comment", str(a), "hi")
    all_events = rb.json("kanban", "events")
    assert [e["kind"] for e in all_events] == ["created", "created", "commented"]
    for e in all_events:
        assert set(e) >= {"id", "task_id", "kind", "payload", "created_at"}
    ids = [e["id"] for e in all_events]
    assert ids == sorted(ids) and len(set(ids)) == 3
    after = rb.json("kanban", "events", "--since", str(ids[0]))
    assert [e["id"] for e in after] == ids[1:]
    assert rb.json("kanban", "events", "--since", str(ids[-1])) == []
    only_a = rb.json("kanban", "events", str(a))
    assert [e["task_id"] for e in only_a] == [a, a]
    assert [e["task_id"] for e in rb.json("kanban", "events", str(b))] == [b]
    assert len(rb.json("kanban", "events", "--limit", "2")) == 2
    assert isinstance(rb.fail("kanban", "events", "99"), TaskNotFound)


def test_events_human_output(rb: Cli) -> None:
    rb.create("titled")
    out = rb.ok("kanban", "events")
    assert "created" in out and "title=titled" in out and "task 1" in out


def test_events_follow_in_process_with_timeout(rb: Cli) -> None:
    rb.create("a")
    rb.create("b")
    out = rb.ok("kanban", "events", "--follow", "--json", "--timeout", "0", "--since", "1")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["id"], e["kind"], e["task_id"]) for e in lines] == [(2, "created", 2)]


# ---- context ---------------------------------------------------------------------------------

def test_context_contains_parent_results_and_comments(rb: Cli) -> None:
    parent = rb.create("gather data")
    rb.ok("kanban", "complete", str(parent), "--summary", "found 3 sources",
          "--artifact", "/data/sources.csv")
    child = rb.create("write it up", "--parent", str(parent), "--body", "Use the sources.")
    rb.ok("kanban", "comment", str(child), "please cite", "--author", "ali`ce")
    claim = rb.claim(child)
    env = rb.worker_env(claim, child) | {"RELAYBOARD_PROFILE": "writer"}
    rb.ok("kanban", "comment", "started", "work", env=env | {"USER": "ev`il"})
    text = rb.ok("kanban", "context", str(child))
    assert text.startswith(f"# Task {child}: write it up\n")
    assert "Use the sources." in text
    assert f"### Task {parent}: gather data (done)" in text
    assert "found 3 sources" in text and "/data/sources.csv" in text
    assert "comment from `alice` at " in text and "please cite" in text
    # The claim was made by USER=tester; the worker comment is framed as the worker's.
    assert "comment from worker `tester` at " in text and "started work" in text
    data = rb.json("kanban", "context", str(child))
    assert data == {"task_id": child, "context": text}


def test_context_strips_backticks_from_worker_author(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.json("kanban", "claim", str(task_id), env={"USER": "`rm -rf`"})
    rb.ok("kanban", "comment", "progress", env=rb.worker_env(claim, task_id))
    text = rb.ok("kanban", "context", str(task_id))
    assert "comment from worker `rm -rf` at " in text
    # The author stays on its own line; the comment's text is the only fenced block.
    (line,) = [ln for ln in text.splitlines() if "rm -rf" in ln]
    assert line.startswith("comment from worker") or "comment from worker" in line
    assert text.count("```") == 2


def test_context_unknown(rb: Cli) -> None:
    assert isinstance(rb.fail("kanban", "context", "9"), TaskNotFound)


# ---- stats -----------------------------------------------------------------------------------

def test_stats(rb: Cli) -> None:
    a = rb.create("a", "--assignee", "alice")
    rb.create("b", "--assignee", "alice")
    c = rb.create("c")
    rb.create("d", "--parent", str(c))
    rb.claim(a)
    rb.ok("kanban", "complete", str(c))
    data = rb.json("kanban", "stats")
    assert data["board"] == "default"
    assert data["by_status"] == {"running": 1, "ready": 2, "done": 1}
    assert data["open_by_assignee"] == {"alice": 2, "(unassigned)": 1}
    assert data["total"] == 4
    assert data["active_runs"] == 1
    assert data["last_event_id"] == max(e["id"] for e in rb.json("kanban", "events"))
    assert data["journal_mode"] == "wal"
    out = rb.ok("kanban", "stats")
    assert "Board default" in out and "4 tasks" in out and "alice" in out


# ---- boards ----------------------------------------------------------------------------------

def test_boards_list_create_and_use(rb: Cli) -> None:
    assert [b["slug"] for b in rb.json("kanban", "boards", "list")] == ["default"]
    info = rb.json("kanban", "boards", "create", "research", "--name", "Research")
    assert info["slug"] == "research" and info["name"] == "Research"
    listed = rb.json("kanban", "boards", "list")
    assert [b["slug"] for b in listed] == ["default", "research"]
    assert listed[1]["name"] == "Research"
    assert listed[1]["path"] == str(rb.home / "boards" / "research")
    on_research = rb.create("r1", board="research")
    assert rb.show(on_research, board="research")["title"] == "r1"
    assert rb.json("kanban", "list") == []  # the default board is separate
    assert rb.json("kanban", "--board", "research", "stats")["board"] == "research"
    err = rb.fail("kanban", "boards", "create", "research")
    assert isinstance(err, Conflict) and "already exists" in str(err)
    assert "research" in rb.ok("kanban", "boards", "list")


def test_boards_remove_archives_and_delete(rb: Cli) -> None:
    rb.ok("kanban", "boards", "create", "tmp1")
    rb.create("x", board="tmp1")
    out = rb.json("kanban", "boards", "remove", "tmp1")
    assert out["slug"] == "tmp1" and out["deleted"] is False
    assert out["archived_as"].startswith("tmp1-")
    assert (rb.home / "boards" / "_archived" / out["archived_as"] / "kanban.db").is_file()
    assert [b["slug"] for b in rb.json("kanban", "boards", "list")] == ["default"]
    err = rb.fail("kanban", "--board", "tmp1", "list")
    assert isinstance(err, BoardNotFound)
    rb.ok("kanban", "boards", "create", "tmp2")
    out = rb.json("kanban", "boards", "remove", "tmp2", "--delete")
    assert out == {"slug": "tmp2", "deleted": True, "archived_as": None, "released": []}
    assert not (rb.home / "boards" / "tmp2").exists()
    # A removed slug can be created again, fresh.
    rb.ok("kanban", "boards", "create", "tmp1")
    assert rb.json("kanban", "--board", "tmp1", "list") == []


def test_boards_refusals(rb: Cli) -> None:
    err = rb.fail("kanban", "boards", "remove", "default")
    assert isinstance(err, InvalidInput) and "default board cannot be removed" in str(err)
    assert isinstance(rb.fail("kanban", "boards", "remove", "ghost"), BoardNotFound)
    assert isinstance(rb.fail("kanban", "boards", "create", "Bad Slug"), InvalidInput)
    assert isinstance(rb.fail("kanban", "boards", "create", "_hidden"), InvalidInput)
    err = rb.fail("kanban", "--board", "ghost", "create", "t")
    assert isinstance(err, BoardNotFound)
    assert "boards create ghost" in str(err)
    assert not (rb.home / "boards" / "ghost").exists()
    assert isinstance(rb.fail("kanban", "--board", "NOPE!", "list"), InvalidInput)


# ---- subscriptions ---------------------------------------------------------------------------

def test_subscribe_is_unique_per_destination(rb: Cli) -> None:
    task_id = rb.create("t")
    other = rb.create("o")
    first = rb.json("kanban", "subscribe", str(task_id), "--platform", "slack", "--chat", "C1",
                    "--thread", "T9")
    again = rb.json("kanban", "subscribe", str(task_id), "--platform", "slack", "--chat", "C1",
                    "--thread", "T9")
    assert again["id"] == first["id"]
    assert (first["platform"], first["chat"], first["thread"]) == ("slack", "C1", "T9")
    rb.ok("kanban", "subscribe", str(task_id), "--platform", "slack", "--chat", "C1")
    rb.ok("kanban", "subscribe", str(other), "--platform", "telegram", "--chat", "42")
    subs = rb.json("kanban", "subscriptions", str(task_id))
    assert sorted((s["chat"], s["thread"] or "") for s in subs) == [("C1", ""), ("C1", "T9")]
    assert len(rb.json("kanban", "subscriptions")) == 3
    assert kinds(rb.show(task_id)).count("subscribed") == 2


def test_unsubscribe(rb: Cli) -> None:
    task_id = rb.create("t")
    rb.ok("kanban", "subscribe", str(task_id), "--platform", "slack", "--chat", "C1",
          "--thread", "T1")
    rb.ok("kanban", "subscribe", str(task_id), "--platform", "slack", "--chat", "C1")
    out = rb.json("kanban", "unsubscribe", str(task_id), "--platform", "slack", "--chat", "C1",
                  "--thread", "T1")
    assert out == {"task_id": task_id, "removed": True}
    assert [s["thread"] for s in rb.json("kanban", "subscriptions", str(task_id))] == [None]
    err = rb.fail("kanban", "unsubscribe", str(task_id), "--platform", "slack", "--chat", "C1",
                  "--thread", "T1")
    assert isinstance(err, KanbanError) and "no such subscription" in str(err)


def test_subscribe_refusals(rb: Cli) -> None:
    assert isinstance(rb.fail("kanban", "subscribe", "5", "--platform", "slack", "--chat", "C"),
                      TaskNotFound)
    task_id = rb.create("t")
    assert isinstance(rb.fail("kanban", "subscribe", str(task_id), "--platform", " ",
                              "--chat", "C"), InvalidInput)
    assert "--chat" in rb.usage_error("kanban", "subscribe", str(task_id), "--platform", "x")
    assert isinstance(rb.fail("kanban", "subscriptions", "77"), TaskNotFound)
    assert "No subscriptions" in rb.ok("kanban", "subscriptions")


# ---- worker mode -----------------------------------------------------------------------------

def test_worker_verbs_default_to_own_task(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id)
    env = rb.worker_env(claim, task_id, profile="researcher")
    hb = rb.json("kanban", "heartbeat", "--note", "reading", env=env)
    assert hb["id"] == claim["run_id"] and hb["task_id"] == task_id
    made = rb.json("kanban", "comment", "halfway", "there", env=env)
    assert made["task_id"] == task_id and made["author_kind"] == "worker"
    assert made["body"] == "halfway there"
    done = rb.json("kanban", "complete", "--result", "all good", env=env)
    assert done["id"] == task_id and done["status"] == "done"
    task = rb.show(task_id)
    assert task["result"] == "all good"
    assert task["runs"][0]["status"] == "completed"
    [completed] = [e for e in task["events"] if e["kind"] == "completed"]
    assert completed["payload"]["by"] == "worker"


def test_worker_block_own_task(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id)
    out = rb.json("kanban", "block", "need", "credentials", env=rb.worker_env(claim, task_id))
    assert out["id"] == task_id and out["status"] == "blocked"
    task = rb.show(task_id)
    assert task["runs"][0]["status"] == "blocked"
    assert task["events"][-1]["payload"] == {"reason": "need credentials", "by": "worker"}


@pytest.mark.parametrize("verb", [
    ["complete"], ["block", "REASON"], ["heartbeat"],
])
def test_worker_may_not_touch_another_task(rb: Cli, verb: list[str]) -> None:
    own = rb.create("own")
    other = rb.create("other")
    claim = rb.claim(own)
    args = [verb[0], str(other), *verb[1:]]
    err = rb.fail("kanban", *args, env=rb.worker_env(claim, own))
    assert isinstance(err, InvalidInput)
    assert f"a worker may only {verb[0]} its own task ({own}), not task {other}" == str(err)
    assert rb.show(other)["status"] == "ready"
    assert rb.show(own)["status"] == "running"


def test_worker_may_name_its_own_task(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id)
    rb.ok("kanban", "complete", str(task_id), env=rb.worker_env(claim, task_id))
    assert rb.show(task_id)["runs"][0]["status"] == "completed"


def test_worker_comment_on_another_task_is_a_human_comment(rb: Cli) -> None:
    own = rb.create("own")
    other = rb.create("other")
    claim = rb.claim(own)
    out = rb.json("kanban", "comment", str(other), "fyi", env=rb.worker_env(claim, own))
    assert out["task_id"] == other and out["author_kind"] == "human"


@pytest.mark.parametrize("operator_action", [
    ["complete", "{id}", "--result", "operator did it", "--force"],
    ["archive", "{id}", "--force"],
    ["block", "{id}", "operator", "stop", "--force"],
])
def test_worker_refused_after_operator_finishes_run(rb: Cli, operator_action: list[str]) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id)
    env = rb.worker_env(claim, task_id)
    rb.ok("kanban", *[a.format(id=task_id) for a in operator_action])
    before = rb.show(task_id)
    for verb in (["complete", "--result", "late"], ["block", "late"], ["heartbeat"],
                 ["comment", "late"]):
        err = rb.fail("kanban", *verb, env=env)
        assert isinstance(err, LeaseError), verb
        assert "stale" in str(err), verb
    after = rb.show(task_id)
    assert after["status"] == before["status"]
    assert after["result"] == before["result"]
    assert after["comments"] == before["comments"]


def test_worker_with_lease_of_previous_run_refused(rb: Cli) -> None:
    task_id = rb.create("t")
    first = rb.claim(task_id)
    rb.ok("kanban", "block", str(task_id), "pause", "--force")
    rb.ok("kanban", "unblock", str(task_id))
    second = rb.claim(task_id)
    assert second["run_id"] != first["run_id"]
    err = rb.fail("kanban", "complete", "--result", "stale", env=rb.worker_env(first, task_id))
    assert isinstance(err, LeaseError) and "stale" in str(err)
    task = rb.show(task_id)
    assert task["status"] == "running" and task["result"] is None
    rb.ok("kanban", "complete", "--result", "fresh", env=rb.worker_env(second, task_id))
    assert rb.show(task_id)["result"] == "fresh"


def test_worker_board_comes_from_environment(rb: Cli) -> None:
    rb.ok("kanban", "boards", "create", "lab")
    task_id = rb.create("t", board="lab")
    claim = rb.json("kanban", "--board", "lab", "claim", str(task_id))
    env = rb.worker_env(claim, task_id, board="lab")
    rb.ok("kanban", "complete", "--result", "done on lab", env=env)
    assert rb.show(task_id, board="lab")["result"] == "done on lab"
    assert rb.json("kanban", "list") == []


def test_malformed_worker_environment_means_operator(rb: Cli) -> None:
    task_id = rb.create("t")
    env = {"RELAYBOARD_TASK_ID": "not-a-number", "RELAYBOARD_LEASE": "x"}
    err = rb.fail("kanban", "complete", env=env)
    assert isinstance(err, InvalidInput) and "needs a task id" in str(err)
    rb.ok("kanban", "complete", str(task_id), env=env)
    assert rb.show(task_id)["status"] == "done"


# ---- usage errors are one line too ---------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["kanban", "show", "abc"],
    ["kanban", "create"],
    ["kanban", "nosuchverb"],
    ["kanban", "create", "t", "--no-such-option"],
    ["kanban", "boards", "create"],
])
def test_usage_errors_are_one_error_line(rb: Cli, args: list[str]) -> None:
    stderr = rb.usage_error(*args)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "--help" in lines[0]


def test_help_still_works(rb: Cli) -> None:
    result = rb.invoke("kanban", "create", "--help")
    assert result.exit_code == 0 and "--idempotency-key" in result.stdout


# ---- human output shows user text literally -------------------------------------------------

def test_human_output_never_parses_user_text_as_markup(rb: Cli) -> None:
    task_id = rb.create("fix [/] in x[0]", "--body", "keep [bold]this[/bold]")
    assign_directly(rb, task_id, "a[/]")  # no profile can have this name; the kernel allows it
    rb.ok("kanban", "comment", str(task_id), "see [link=x]y[/link] [/]")
    rb.ok("kanban", "subscribe", str(task_id), "--platform", "p[/]", "--chat", "[red]c")
    rb.ok("kanban", "boards", "create", "mk", "--name", "n[/]x")
    rb.claim(task_id)
    rb.ok("kanban", "block", str(task_id), "stuck on [/]", "--force")
    listed = rb.ok("kanban", "list")
    assert "fix [/] in x[0]" in listed and "a[/]" in listed
    shown = rb.ok("kanban", "show", str(task_id))
    for literal in ("fix [/] in x[0]", "keep [bold]this[/bold]", "see [link=x]y[/link] [/]",
                    "by human: stuck on [/]", "— stuck on [/]"):
        assert literal in shown, literal
    assert "a[/]" in rb.ok("kanban", "stats")
    assert "n[/]x" in rb.ok("kanban", "boards", "list")
    subs = rb.ok("kanban", "subscriptions")
    assert "p[/]" in subs and "[red]c" in subs


def test_events_follow_human_output(rb: Cli) -> None:
    rb.create("first")
    out = rb.ok("kanban", "events", "--follow", "--timeout", "0")
    assert "created" in out and "title=first" in out


def test_create_inside_a_worker_records_its_profile(rb: Cli) -> None:
    task_id = rb.create("t")
    claim = rb.claim(task_id)
    # The profile a worker says it is counts for nothing: its run's record names it.
    env = rb.worker_env(claim, task_id, profile="someone-else")
    # A manual claim's run may not create tasks: only runs the dispatcher started for
    # kanban.orchestrator_profile may (recorded on the run at the claim).
    refused = rb.fail("kanban", "create", "follow-up", env=env)
    assert "a worker may not create tasks" in str(refused)
    with sqlite3.connect(db_path(rb)) as conn:
        conn.execute("UPDATE task_runs SET may_create = 1, profile = 'planner' WHERE id = ?",
                     (claim["run_id"],))
    conn.close()
    out = rb.json("kanban", "create", "follow-up", env=env)
    created = rb.show(out["id"])
    assert created["events"][0]["payload"]["created_by"] == "planner"


def test_damaged_rows_are_shown_not_fatal(rb: Cli) -> None:
    task_id = rb.create("old row")
    with sqlite3.connect(db_path(rb)) as conn:
        conn.execute("UPDATE tasks SET created_at = 'garbage', started_at = "
                     "'2026-05-10T15:00:00Z', metadata = '{bad', skills = 'nope', "
                     "priority = 'high' WHERE id = ?", (task_id,))
        conn.execute("UPDATE task_events SET payload = '[1' WHERE task_id = ?", (task_id,))
    conn.close()
    task = rb.show(task_id)
    assert task["created_at"] is None
    assert task["started_at"] == 1778425200.0
    assert (task["metadata"], task["skills"], task["priority"]) == ({}, [], 0)
    assert task["events"][0]["payload"] == {}
    assert "unknown" in rb.ok("kanban", "list")
    assert "created  unknown" in rb.ok("kanban", "show", str(task_id))
    assert rb.ok("kanban", "context", str(task_id)).startswith(f"# Task {task_id}: old row")


def test_subscribe_silent_is_stored_and_listed(rb: Cli) -> None:
    task_id = rb.create("t")
    out = rb.json("kanban", "subscribe", str(task_id), "--platform", "telegram", "--chat", "5",
                  "--silent")
    assert out["silent"] is True
    [listed] = rb.json("kanban", "subscriptions", str(task_id))
    assert listed["silent"] is True
