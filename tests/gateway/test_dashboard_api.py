"""The dashboard's REST API in process (httpx ASGITransport), on real board files."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from gateway.commands import CreateRequest
from gateway.commands.json_args import json_schema
from gateway.config import Config, load_config
from gateway.dashboard import create_app
from gateway.dashboard.actions import API_NAMES
from gateway.dashboard.openapi import OPERATIONS
from gateway.errors import ConfigError
from gateway.examples import create_example_profile
from kanban import Board, Boards, LeaseError
from kanban.agents.profiles import Profiles
from kanban.runtime.sandbox import sandbox_status
from kanban.storage.db import Tx

ORIGIN = "http://127.0.0.1:8765"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24


@dataclass
class Dash:
    home: Path
    app: Starlette
    client: httpx.AsyncClient
    boards: Boards

    async def board(self, slug: str = "default") -> Board:
        return await self.boards.open(slug)

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = await self.client.request(method, path, json=body)
        assert response.status_code == status, (path, response.status_code, response.text)
        return response.json()


def make_app(home: Path, config_text: str | None = None, environ: dict[str, str] | None = None
             ) -> tuple[Starlette, Config]:
    if config_text is not None:
        (home / "config.yaml").write_text(config_text, encoding="utf-8")
    config = load_config(None, environ or {}, home=home)
    return create_app(home, config), config


@pytest.fixture
async def dash(tmp_path: Path) -> AsyncIterator[Dash]:
    home = tmp_path / "home"
    home.mkdir()
    app, _ = make_app(home)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN,
                                     headers={"Origin": ORIGIN}) as client:
            yield Dash(home, app, client, app.state.dashboard.boards)


# ---- board -----------------------------------------------------------------------------------

async def test_board_has_columns_counts_and_cards(dash: Dash) -> None:
    board = await dash.board()
    parent = (await board.create_task("parent", assignee="alice")).task
    await board.create_task("child one", parents=[parent.id])
    await board.create_task("child two", parents=[parent.id])
    await board.create_task("idea", triage=True)
    data = await dash.ok("GET", "/api/board")
    assert [c["status"] for c in data["columns"]] == [
        "triage", "todo", "ready", "running", "blocked", "done"]
    assert data["counts"] == {"triage": 1, "todo": 2, "ready": 1, "running": 0, "blocked": 0,
                              "done": 0}
    ready = data["columns"][2]["tasks"]
    assert [(c["id"], c["title"], c["assignee"], c["children"]) for c in ready] == [
        (parent.id, "parent", "alice", [0, 2])]
    assert data["assignees"] == ["alice"]


async def test_board_counts_children_progress_and_files(dash: Dash) -> None:
    board = await dash.board()
    parent = (await board.create_task("parent")).task
    kid = (await board.create_task("kid", parents=[parent.id])).task
    claim = await board.claim(parent.id)
    await board.complete(parent.id, lease=claim.lease, artifacts=["/nowhere/x.png"])
    claim = await board.claim(kid.id)
    await board.complete(kid.id, lease=claim.lease)
    data = await dash.ok("GET", "/api/board")
    done = {c["id"]: c for c in data["columns"][5]["tasks"]}
    assert done[parent.id]["children"] == [1, 1]
    assert done[parent.id]["files"] == 1


async def test_board_survives_garbage_timestamps(dash: Dash) -> None:
    board = await dash.board()
    good = (await board.create_task("good")).task
    bad = (await board.create_task("bad")).task

    def spoil(tx: Tx) -> None:
        tx.execute("UPDATE tasks SET created_at = 'yesterday-ish', "
                   "updated_at = '2024-05-01T10:00:00' WHERE id = ?", (bad.id,))

    await board.db.write(spoil)
    data = await dash.ok("GET", "/api/board")
    ids = {c["id"] for c in data["columns"][2]["tasks"]}
    assert ids == {good.id, bad.id}


async def test_board_limits_each_column_and_says_how_many_more(dash: Dash) -> None:
    board = await dash.board()
    for index in range(7):
        await board.create_task(f"t{index}")
    data = await dash.ok("GET", "/api/board?limit=3")
    ready = data["columns"][2]
    assert (ready["count"], len(ready["tasks"]), ready["more"]) == (7, 3, 4)
    found = await dash.ok("GET", "/api/board?q=t6")
    assert [c["title"] for c in found["columns"][2]["tasks"]] == ["t6"]


async def test_board_sees_writes_from_another_connection(dash: Dash) -> None:
    await dash.ok("GET", "/api/board")  # prime the snapshot
    board = await dash.board()
    async with Board.open(board.db.path) as other:  # another writer, as another process would be
        await other.create_task("from elsewhere")
    data = await dash.ok("GET", "/api/board")
    assert [c["title"] for c in data["columns"][2]["tasks"]] == ["from elsewhere"]


async def test_board_slug_errors_are_400_and_404(dash: Dash) -> None:
    bad = await dash.client.get("/api/board?board=Not_A_Slug!")
    assert bad.status_code == 400 and "invalid board slug" in bad.json()["error"]
    missing = await dash.client.get("/api/board?board=nope")
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]
    await dash.ok("POST", "/api/boards", {"slug": "ops", "name": "Operations"}, status=201)
    listed = await dash.ok("GET", "/api/boards")
    assert [b["slug"] for b in listed["boards"]] == ["default", "ops"]
    created = await dash.ok("POST", "/api/tasks?board=ops", {"title": "on ops"}, status=201)
    ops = await dash.board("ops")
    assert (await ops.get_task(created["id"])).title == "on ops"


# ---- tasks ---------------------------------------------------------------------------------

async def test_task_create_read_update_and_delete(dash: Dash) -> None:
    made = await dash.ok("POST", "/api/tasks", {"title": "write docs", "body": "**now**",
                                                "priority": 2}, status=201)
    assert made["status"] == "ready"
    task_id = made["id"]
    shown = await dash.ok("GET", f"/api/tasks/{task_id}")
    assert (shown["title"], shown["body"], shown["created_by"]) == ("write docs", "**now**",
                                                                   "dashboard")
    # The same command layer as the CLI and chat: an assignee must be a profile.
    typo = await dash.client.patch(f"/api/tasks/{task_id}", json={"assignee": "bob"})
    assert typo.status_code == 404 and "no profile 'bob'" in typo.json()["error"]
    Profiles(dash.home).create("bob", command=["true"])
    changed = await dash.ok("PATCH", f"/api/tasks/{task_id}", {"assignee": "bob", "priority": 5})
    assert (changed["assignee"], changed["priority"]) == ("bob", 5)
    archived = await dash.ok("DELETE", f"/api/tasks/{task_id}")
    assert archived["status"] == "archived"
    gone = await dash.ok("DELETE", f"/api/tasks/{task_id}?purge=1")
    assert gone == {"deleted": [task_id]}
    missing = await dash.client.get(f"/api/tasks/{task_id}")
    assert missing.status_code == 404 and missing.json() == {"error": f"task {task_id} not found"}


async def test_bad_input_is_one_line_of_json(dash: Dash) -> None:
    for body, fragment in (({}, "title"), ({"title": "x", "colour": "red"}, "unknown field"),
                           ({"title": "x", "parents": [999]}, "999")):
        response = await dash.client.post("/api/tasks", json=body)
        assert response.status_code == 400, response.text
        assert fragment in response.json()["error"]
    response = await dash.client.post("/api/tasks", content=b"{not json",
                                      headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    assert (await dash.client.get("/api/tasks/abc")).json() == {"error": "not found"}


async def test_create_and_update_take_the_verbs_arguments_under_the_api_names(
        dash: Dash) -> None:
    Profiles(dash.home).create("bob", command=["true"])
    made = await dash.ok("POST", "/api/tasks", {
        "title": "tuned", "max_runtime_seconds": 60, "model_override": "m1", "assignee": "",
        "initial_status": "blocked", "skills": ["charts"]}, status=201)
    task = await (await dash.board("default")).get_task(made["id"])
    assert (task.max_runtime_seconds, task.model_override, task.assignee, task.status,
            task.skills) == (60, "m1", None, "blocked", ["charts"])
    # The create verb's limits, word for word as the command line words them.
    huge = await dash.client.post("/api/tasks", json={"title": "x", "priority": 2 ** 63})
    assert huge.status_code == 400 and huge.json() == {
        "error": f"priority: {2 ** 63} is out of range ({-2 ** 63} to {2 ** 63 - 1})"}
    for body, error in (({"title": "x", "model": "m"}, "unknown field 'model' (fields: "),
                        ({"title": "x", "attachments": ["/etc/passwd"]}, "unknown field 'att"),
                        ({"title": "x", "triage": "yes"}, 'triage: "yes" is not true or false')):
        response = await dash.client.post("/api/tasks", json=body)
        assert response.status_code == 400 and response.json()["error"].startswith(error)
    # Every field of a change is checked before anything changes.
    bad = await dash.client.patch(f"/api/tasks/{made['id']}",
                                  json={"assignee": "bob", "priority": "high"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "priority: 'high' is not a valid integer"}
    assert (await (await dash.board("default")).get_task(made["id"])).assignee is None
    changed = await dash.ok("PATCH", f"/api/tasks/{made['id']}",
                            {"assignee": "bob", "model_override": None})
    assert (changed["assignee"], changed["model_override"]) == ("bob", None)
    cleared = await dash.ok("PATCH", f"/api/tasks/{made['id']}", {"assignee": ""})
    assert cleared["assignee"] is None


async def test_comments_links_and_lifecycle_actions(dash: Dash) -> None:
    a = (await dash.ok("POST", "/api/tasks", {"title": "a"}, status=201))["id"]
    b = (await dash.ok("POST", "/api/tasks", {"title": "b"}, status=201))["id"]
    comment = await dash.ok("POST", f"/api/tasks/{a}/comments", {"text": "looks good"}, status=201)
    assert (comment["author"], comment["body"]) == ("dashboard", "looks good")
    linked = await dash.ok("POST", f"/api/tasks/{b}/links", {"parent": a}, status=201)
    assert linked["parents"] == [a]
    assert (await dash.ok("GET", f"/api/tasks/{b}"))["status"] == "todo"
    cycle = await dash.client.post(f"/api/tasks/{b}/links", json={"child": a})
    assert cycle.status_code == 400 and "cycle" in cycle.json()["error"]
    await dash.ok("POST", f"/api/tasks/{a}/block", {"reason": "needs a decision"})
    assert (await dash.ok("GET", f"/api/tasks/{a}"))["blocked_reason"] == "needs a decision"
    await dash.ok("POST", f"/api/tasks/{a}/unblock")
    done = await dash.ok("POST", f"/api/tasks/{a}/complete", {"result": "shipped"})
    assert done["status"] == "done"
    assert (await dash.ok("GET", f"/api/tasks/{b}"))["status"] == "ready"
    again = await dash.client.post(f"/api/tasks/{a}/unblock")
    assert again.status_code == 409
    events = (await dash.ok("GET", f"/api/tasks/{a}"))["events"]
    completed = [e for e in events if e["kind"] == "completed"]
    assert completed and completed[0]["payload"]["by"] == "operator"


async def test_action_bodies_are_the_verbs_arguments(dash: Dash) -> None:
    a = (await dash.ok("POST", "/api/tasks", {"title": "a"}, status=201))["id"]
    for path, body, words in [
        ("comments", {}, "text is required"),
        ("comments", {"text": "x", "author": "mallory"}, "author is set here"),
        ("block", {"reason": 7}, "reason: 7 is not a string"),
        ("complete", {"artifacts": ["/etc/passwd"]}, "unknown field 'artifacts'"),
        ("complete", {"task_id": 99}, "task_id is set here"),
        ("complete", {"result": ["x"]}, "is not a string"),
    ]:
        refused = await dash.client.post(f"/api/tasks/{a}/{path}", json=body)
        assert refused.status_code == 400 and words in refused.json()["error"], (path, body)
    assert (await dash.ok("GET", f"/api/tasks/{a}"))["status"] == "ready"  # nothing was done
    # A reason of several words stays whole; metadata is a JSON object, merged into the task.
    await dash.ok("POST", f"/api/tasks/{a}/block", {"reason": "wait for the  legal review"})
    assert (await dash.ok("GET", f"/api/tasks/{a}"))["blocked_reason"] == (
        "wait for the  legal review")
    await dash.ok("POST", f"/api/tasks/{a}/unblock")
    await dash.ok("POST", f"/api/tasks/{a}/complete", {"result": "ok", "metadata": {"n": 2}})
    assert (await dash.ok("GET", f"/api/tasks/{a}"))["metadata"]["n"] == 2
    schema = (await dash.ok("GET", "/api/openapi.json"))["paths"]
    body = schema["/api/tasks/{task_id}/complete"]["post"]["requestBody"]["content"]
    assert "artifacts" not in body["application/json"]["schema"]["properties"]


async def test_running_task_needs_force(dash: Dash) -> None:
    board = await dash.board()
    task = (await board.create_task("busy")).task
    claim = await board.claim(task.id)
    refused = await dash.client.post(f"/api/tasks/{task.id}/complete", json={})
    assert refused.status_code == 409 and "force" in refused.json()["error"]
    refused = await dash.client.post(f"/api/tasks/{task.id}/archive", json={})
    assert refused.status_code == 409
    assert (await board.get_task(task.id)).status == "running"
    await dash.ok("POST", f"/api/tasks/{task.id}/complete", {"force": True})
    assert (await board.get_task(task.id)).status == "done"
    with pytest.raises(LeaseError):  # the worker's lease went stale with the forced completion
        await board.heartbeat(task.id, lease=claim.lease)


# ---- files and logs --------------------------------------------------------------------------

async def test_artifacts_only_the_tasks_own_files(dash: Dash, tmp_path: Path) -> None:
    board = await dash.board()
    task = (await board.create_task("chart")).task
    claim = await board.claim(task.id)
    workspace = board.workspaces_dir / str(task.id)
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "chart.png").write_bytes(PNG)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve", encoding="utf-8")
    await board.complete(task.id, lease=claim.lease,
                         artifacts=[str(workspace / "chart.png"), str(secret)])
    shown = await dash.ok("GET", f"/api/tasks/{task.id}")
    files = {f["name"]: f for f in shown["artifacts"]}
    assert files["chart.png"]["available"] and files["chart.png"]["kind"] == "image"
    assert files["chart.png"]["size"] == len(PNG)
    assert not files["secret.txt"]["available"] and "url" not in files["secret.txt"]
    image = await dash.client.get(files["chart.png"]["url"])
    assert image.status_code == 200 and image.content == PNG
    assert image.headers["content-disposition"].startswith("inline")
    download = await dash.client.get(files["chart.png"]["url"] + "?download=1")
    assert download.headers["content-disposition"].startswith("attachment")
    refused = await dash.client.get(f"/api/tasks/{task.id}/artifacts/1/secret.txt")
    assert refused.status_code == 404 and b"do not serve" not in refused.content
    wrong_name = await dash.client.get(f"/api/tasks/{task.id}/artifacts/0/other.png")
    assert wrong_name.status_code == 404
    other = (await board.create_task("other")).task
    assert (await dash.client.get(f"/api/tasks/{other.id}/artifacts/0/chart.png")).status_code \
        == 404


async def test_artifacts_of_another_task_links_and_hard_links_are_not_served(
    dash: Dash, tmp_path: Path,
) -> None:
    board = await dash.board()
    first = (await board.create_task("first")).task
    claim = await board.claim(first.id)
    workspace = board.workspaces_dir / str(first.id)
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "mine.csv").write_text("a,b\n", encoding="utf-8")
    done = await board.complete(first.id, lease=claim.lease, artifacts=["mine.csv"])
    [mine] = done.artifacts
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY", encoding="utf-8")
    second = (await board.create_task("second")).task
    attach = board.attachments_path(second.id)
    attach.mkdir(parents=True)
    (attach / "link.txt").symlink_to(secret)
    os.link(secret, attach / "hard.txt")
    await board.complete(second.id, as_operator=True, artifacts=[
        mine, str(attach / "link.txt"), str(attach / "hard.txt")])
    shown = await dash.ok("GET", f"/api/tasks/{second.id}")
    assert [f["available"] for f in shown["artifacts"]] == [False, False, False]
    for index, name in enumerate(("mine.csv", "link.txt", "hard.txt")):
        got = await dash.client.get(f"/api/tasks/{second.id}/artifacts/{index}/{name}")
        assert got.status_code == 404 and b"PRIVATE KEY" not in got.content
    own = await dash.client.get(f"/api/tasks/{first.id}/artifacts/0/mine.csv")
    assert own.status_code == 200 and own.content == b"a,b\n"


async def test_log_is_read_from_an_offset(dash: Dash) -> None:
    board = await dash.board()
    task = (await board.create_task("logs")).task
    log = board.log_path(task.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes("first line\nsecond é".encode())
    first = await dash.ok("GET", f"/api/tasks/{task.id}/log")
    assert first["text"] == "first line\nsecond é" and first["running"] is False
    with log.open("ab") as fh:
        fh.write(b"\nthird")
    more = await dash.ok("GET", f"/api/tasks/{task.id}/log?offset={first['offset']}")
    assert more["text"] == "\nthird" and more["offset"] == more["size"]
    # Half a UTF-8 character is held back until the rest is written.
    with log.open("ab") as fh:
        fh.write("ü".encode()[:1])
    held = await dash.ok("GET", f"/api/tasks/{task.id}/log?offset={more['offset']}")
    assert held["text"] == "" and held["offset"] == more["offset"]


# ---- decompose, profiles, orchestration ------------------------------------------------------

async def test_decompose_a_triage_task_offline(dash: Dash) -> None:
    Profiles(dash.home).create("writer", description="writes documents")
    task_id = (await dash.ok("POST", "/api/tasks", {
        "title": "launch", "triage": True, "body": "- write the post\n- write the email"},
        status=201))["id"]
    outcome = await dash.ok("POST", f"/api/tasks/{task_id}/decompose")
    assert outcome["action"] == "decomposed" and len(outcome["children"]) == 2
    assert outcome["assignees"] == ["writer", "writer"]
    again = await dash.client.post(f"/api/tasks/{task_id}/decompose")
    assert again.status_code == 409 and "only a triage task" in again.json()["error"]


async def test_profiles_list_describe_and_auto_without_llm(dash: Dash) -> None:
    create_example_profile(Profiles(dash.home), "charts", "chart")
    listed = await dash.ok("GET", "/api/profiles")
    assert [p["name"] for p in listed] == ["charts"]
    assert listed[0]["command"] == ["relayboard", "example", "chart"]
    Profiles(dash.home).update("charts", description="gen", description_auto=True)
    out = await dash.ok("PATCH", "/api/profiles/charts", {"description": "Draws  charts"})
    assert out["description"] == "Draws charts"
    loaded = Profiles(dash.home).load("charts")
    assert (loaded.description, loaded.description_auto) == ("Draws charts", False)
    auto = await dash.client.post("/api/profiles/charts/describe-auto")
    assert auto.status_code == 422 and "profile_describer" in auto.json()["reason"]
    assert (await dash.client.patch("/api/profiles/ghost", json={"description": "x"})
            ).status_code == 404


CONFIG = """\
# my settings — keep this comment
kanban:
  max_spawn: 2          # two at a time
  auto_decompose: true
platforms:
  web:
    enabled: true
"""


async def test_orchestration_put_keeps_comments_and_resolves_fallbacks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    Profiles(home).create("planner")
    Profiles(home).create("default")
    app, _ = make_app(home, CONFIG)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as client:
        got = (await client.get("/api/orchestration")).json()
        assert (got["auto_decompose"], got["mode"]) == (True, "auto")
        assert got["sandbox"] == sandbox_status("auto")  # the level in force is shown
        assert got["resolved"] == {"orchestrator_profile": "default",
                                   "default_assignee": "default"}
        put = await client.put("/api/orchestration", json={
            "auto_decompose": False, "orchestrator_profile": "planner",
            "auto_promote_children": False})
        assert put.status_code == 200, put.text
        view = put.json()
        assert (view["mode"], view["resolved"]["orchestrator_profile"]) == ("manual", "planner")
        text = (home / "config.yaml").read_text(encoding="utf-8")
        assert "# my settings — keep this comment" in text and "# two at a time" in text
        reread = load_config(None, {}, home=home)
        assert (reread.kanban.auto_decompose, reread.kanban.orchestrator_profile,
                reread.kanban.auto_promote_children, reread.kanban.max_spawn) == (
            False, "planner", False, 2)
        assert reread.platforms["web"].enabled is True
        assert app.state.dashboard.config.kanban.auto_decompose is False
        bad = await client.put("/api/orchestration", json={"default_assignee": "ghost"})
        assert bad.status_code == 400 and "ghost" in bad.json()["error"]
        bad = await client.put("/api/orchestration", json={"auto_decompose": "yes"})
        assert bad.status_code == 400
        assert load_config(None, {}, home=home).kanban.default_assignee is None


async def test_orchestration_creates_a_missing_config_file(dash: Dash) -> None:
    await dash.ok("PUT", "/api/orchestration", {"auto_decompose": False})
    assert load_config(None, {}, home=dash.home).kanban.auto_decompose is False


# ---- security --------------------------------------------------------------------------------

async def test_mutations_from_another_origin_are_refused(dash: Dash) -> None:
    evil = await dash.client.post("/api/tasks", json={"title": "x"},
                                  headers={"Origin": "http://evil.test"})
    assert evil.status_code == 403
    cross = await dash.client.post("/api/tasks", json={"title": "x"},
                                   headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert (await dash.board()).db.path.exists()
    assert (await dash.ok("GET", "/api/board"))["total"] == 0
    empty = await dash.client.post("/api/tasks", json={"title": "x"}, headers={"Origin": ""})
    assert empty.status_code == 403  # an empty Origin is no same-origin claim
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dash.app),
                                 base_url=ORIGIN) as script:  # curl: no Origin at all
        assert (await script.post("/api/tasks", json={"title": "from curl"})).status_code == 201
    reads = await dash.client.get("/api/board", headers={"Origin": "http://evil.test"})
    assert reads.status_code == 200


async def test_token_is_required_on_every_request_when_configured(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    app, _ = make_app(home, "dashboard:\n  host: 0.0.0.0\n  token_env: DASH_TOKEN\n",
                      {"DASH_TOKEN": "s3cret-token"})
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://box:8765") as client:
        assert (await client.get("/api/board")).status_code == 401
        assert (await client.get("/")).status_code == 401
        assert (await client.get("/api/board", headers={"Authorization": "Bearer nope"})
                ).status_code == 401
        ok = await client.get("/api/board", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        login = await client.get("/?token=s3cret-token&board=default")
        assert login.status_code == 303 and login.headers["location"] == "/?board=default"
        assert "HttpOnly" in login.headers["set-cookie"]
        client.cookies.clear()  # send the cookie by hand, as a browser would
        with_cookie = await client.get("/api/board",
                                       headers={"Cookie": "relayboard_token=s3cret-token"})
        assert with_cookie.status_code == 200
        assert (await client.get("/?token=wrong")).status_code == 401
        assert (await client.get("/api/board", headers={"Cookie": "relayboard_token=wrong"})
                ).status_code == 401


async def test_a_malformed_cookie_header_is_no_cookie(tmp_path: Path) -> None:
    # http.cookies refuses the whole header for one illegal name ("a(b"), even with the right
    # token beside it: the request has no cookie, so 401, and never a 500. The bearer header
    # still works on the same request.
    home = tmp_path / "home"
    home.mkdir()
    app, _ = make_app(home, "dashboard:\n  host: 0.0.0.0\n  token_env: DASH_TOKEN\n",
                      {"DASH_TOKEN": "s3cret-token"})
    malformed = "relayboard_token=s3cret-token; a(b=1"
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://box:8765") as client:
        refused = await client.get("/api/board", headers={"Cookie": malformed})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        bearer = await client.get("/api/board", headers={
            "Cookie": malformed, "Authorization": "Bearer s3cret-token"})
        assert bearer.status_code == 200


async def test_detail_shows_a_vanished_link_by_id_and_lets_other_errors_through(
        dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.dashboard import views
    from kanban import TaskNotFound

    board = await dash.board()
    parent = (await board.create_task("parent")).task
    child = (await board.create_task("child", parents=[parent.id])).task

    async def gone(task_id: int) -> Any:
        raise TaskNotFound(task_id)

    monkeypatch.setattr(board, "get_task", gone)
    shown = await views.detail(board, child.id, (), dash.home)
    assert shown["parents"] == [{"id": parent.id, "title": None, "status": None}]

    async def broken(task_id: int) -> Any:
        raise RuntimeError("a bug, not a deleted task")

    monkeypatch.setattr(board, "get_task", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        await views.detail(board, child.id, (), dash.home)


def test_off_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(ConfigError, match="DASH_TOKEN"):
        make_app(home, "dashboard:\n  host: 0.0.0.0\n  token_env: DASH_TOKEN\n", {})
    with pytest.raises(ConfigError, match="token"):
        make_app(home, "dashboard:\n  host: 192.168.1.5\n", {})
    make_app(home, "dashboard:\n  host: ::1\n", {})  # loopback needs none


async def test_page_and_static_files_are_served_with_a_strict_policy(dash: Dash) -> None:
    page = await dash.client.get("/")
    assert page.status_code == 200 and "<title>Relayboard</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for src in ("/static/app.css", "/static/js/main.js", "/static/js/markdown.js"):
        assert (await dash.client.get(src)).status_code == 200, src
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere


# ---- OpenAPI ---------------------------------------------------------------------------------

async def test_openapi_describes_every_api_route(dash: Dash) -> None:
    schema = await dash.ok("GET", "/api/openapi.json")
    assert schema["openapi"].startswith("3.")
    served: set[tuple[str, str]] = set()
    for route in dash.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/"):
            path = route.path.replace(":int", "")
            for method in route.methods or ():
                if method != "HEAD":
                    served.add((path, method.lower()))
        assert not (isinstance(route, Mount) and route.path.startswith("/api"))
    documented = {(p, m) for p, ops in schema["paths"].items() for m in ops}
    assert served == documented == set(OPERATIONS)
    assert json.dumps(schema)  # serialisable as served
    # The task bodies are the verbs' own arguments under the API's names.
    create = schema["paths"]["/api/tasks"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert create == json_schema(CreateRequest, names=API_NAMES)
    assert {"max_runtime_seconds", "model_override", "idempotency_key"} <= set(
        create["properties"])
    patch = schema["paths"]["/api/tasks/{task_id}"]["patch"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert set(patch["properties"]) == {"assignee", "priority", "model_override", "force"}
    assert patch["properties"]["priority"]["maximum"] == 2 ** 63 - 1


async def test_a_rebound_host_name_is_refused_without_a_token(tmp_path: Path) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1, so the page's requests carry
    # Host/Origin "evil.example:8765" and would look same-origin to an Origin check alone.
    home = tmp_path / "home"
    home.mkdir()
    app, _ = make_app(home)
    evil = "http://evil.example:8765"
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=evil,
            headers={"Origin": evil}) as client:
        read = await client.get("/api/board")
        write = await client.post("/api/tasks", json={"title": "pwn"})
        assert read.status_code == write.status_code == 421
        assert "loopback host name" in read.json()["error"]
    board = await app.state.dashboard.boards.open("default")
    assert await board.list_tasks() == []
    for local in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=local) as client:
            assert (await client.get("/api/board")).status_code == 200, local
