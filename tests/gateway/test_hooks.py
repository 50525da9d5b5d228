"""Inbound webhooks through the gateway's real web server (uvicorn on a loopback port): the
token, replays, the body cap, template fields that try to reach further, rate limits, and the
hook's rights in the command layer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.commands import (
    AssignRequest,
    CreateRequest,
    ListRequest,
    NotAllowed,
    Services,
    SubscribeRequest,
    Webhook,
    execute,
)
from gateway.config import ConfigError, load_config, require_platform_secrets
from gateway.daemon.http_server import DashboardServer
from gateway.hooks.limits import RateLimits
from gateway.kernel_settings import board_options, storage
from kanban import Boards
from kanban.agents.profiles import Profiles

pytestmark = pytest.mark.sqlite_only

TOKEN = "hook-token-0123456789abcdef0123456789"
HOOK = """
hooks:
  ci:
    token_env: CI_HOOK_TOKEN
    title: "CI failed: {json.repo} on {json.branch}"
    body: "Job {json.job.name} failed.\\n{json.log}"
    assignee: fixer
    board: ops
    subscribe:
      - {platform: slack, chat: C42, thread: "171.5"}
    idempotency_field: run.id
"""


@dataclass
class Served:
    url: str
    boards: Boards

    async def tasks(self, board: str = "ops") -> list[Any]:
        return list(await (await self.boards.open(board)).list_tasks(with_body=True))


@asynccontextmanager
async def served(home: Path, text: str, environ: Mapping[str, str] | None = None
                 ) -> AsyncIterator[Served]:
    """The gateway's web server component on a free loopback port, until the block ends."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("dashboard: {port: 0}\n" + text, encoding="utf-8")
    env = {"CI_HOOK_TOKEN": TOKEN, **(environ or {})}
    config = load_config(None, env, home=home)
    boards = Boards(home, board_options(config.kanban, config.delivery), storage(config.storage))
    await boards.create("ops")
    Profiles(home).create("fixer", command=["true"])
    server = DashboardServer(config, boards, None, grace_seconds=0.5)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.run)
            with anyio.fail_after(10):
                await server.listening.wait()
            assert server.url is not None
            try:
                yield Served(server.url.rstrip("/"), boards)
            finally:
                group.cancel_scope.cancel()
    finally:
        await boards.close()


def bearer(token: str = TOKEN, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


PAYLOAD = {"repo": "acme/api", "branch": "main", "job": {"name": "tests"}, "log": "boom",
           "run": {"id": 991}}


async def test_a_hook_creates_the_task_from_its_template_and_subscribes(tmp_path: Path) -> None:
    async with served(tmp_path, HOOK) as srv, httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{srv.url}/hooks/ci", json=PAYLOAD, headers=bearer())
        assert answer.status_code == 201, answer.text
        data = answer.json()
        assert data == {"hook": "ci", "board": "ops", "task_id": data["task_id"],
                        "status": data["status"], "created": True}
        [task] = await srv.tasks()
        assert task.id == data["task_id"]
        assert task.title == "CI failed: acme/api on main"
        assert task.body == "Job tests failed.\nboom"
        assert task.assignee == "fixer"
        assert task.created_by == "hook ci"
        board = await srv.boards.open("ops")
        [sub] = await board.subscriptions(task.id)
        assert (sub.platform, sub.chat, sub.thread) == ("slack", "C42", "171.5")
        assert await (await srv.boards.open("default")).list_tasks() == []


async def test_a_forged_missing_or_misplaced_token_creates_nothing(tmp_path: Path) -> None:
    async with served(tmp_path, HOOK) as srv, httpx.AsyncClient(timeout=10) as client:
        url = f"{srv.url}/hooks/ci"
        for headers in ({}, bearer("hook-token-wrong"), bearer(TOKEN[:-1]), bearer(TOKEN + "x"),
                        {"X-Relayboard-Token": "nope"}, {"Authorization": TOKEN}):
            answer = await client.post(url, json=PAYLOAD, headers=headers)
            assert answer.status_code == 401, headers
            assert answer.json() == {"error": "a valid hook token is required"}
            assert answer.headers["www-authenticate"] == "Bearer"
        in_query = await client.post(f"{url}?token={TOKEN}", json=PAYLOAD)
        assert in_query.status_code == 400
        assert "never in the URL" in in_query.json()["error"]
        assert await srv.tasks() == []
        # the other header is as good as the bearer one
        ok = await client.post(url, json=PAYLOAD, headers={"X-Relayboard-Token": TOKEN})
        assert ok.status_code == 201


async def test_a_replay_returns_the_same_task(tmp_path: Path) -> None:
    async with served(tmp_path, HOOK) as srv, httpx.AsyncClient(timeout=10) as client:
        url = f"{srv.url}/hooks/ci"
        first = await client.post(url, json=PAYLOAD, headers=bearer(**{"Idempotency-Key": "d1"}))
        again = await client.post(url, json={**PAYLOAD, "repo": "changed"},
                                  headers=bearer(**{"Idempotency-Key": "d1"}))
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["task_id"] == first.json()["task_id"]
        assert again.json()["created"] is False
        # the body field (run.id) is the key when no header is sent
        by_field = [await client.post(url, json=PAYLOAD, headers=bearer()) for _ in range(3)]
        assert [a.status_code for a in by_field] == [201, 200, 200]
        assert len({a.json()["task_id"] for a in by_field}) == 1
        other = await client.post(url, json={**PAYLOAD, "run": {"id": 992}}, headers=bearer())
        assert other.status_code == 201
        tasks = await srv.tasks()
        assert len(tasks) == 3
        board = await srv.boards.open("ops")
        assert len(await board.subscriptions(first.json()["task_id"])) == 1


async def test_concurrent_replays_make_one_task(tmp_path: Path) -> None:
    async with served(tmp_path, HOOK) as srv, httpx.AsyncClient(timeout=10) as client:
        url = f"{srv.url}/hooks/ci"
        answers = await asyncio.gather(*(
            client.post(url, json=PAYLOAD, headers=bearer(**{"Idempotency-Key": "same"}))
            for _ in range(5)))
        assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
        assert len(await srv.tasks()) == 1


async def test_a_huge_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async with served(tmp_path, HOOK + "    max_body_bytes: 1024\n") as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        # a declared length over the cap: answered at once, not one byte of the body sent
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /hooks/ci HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                     f"{TOKEN}\r\nContent-Type: application/json\r\nContent-Length: "
                     "10000000000\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ")
        writer.close()
        async with httpx.AsyncClient(timeout=10) as client:
            # no length declared (chunked): cut off at the cap
            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"repo": "'
                for _ in range(64):
                    yield b"x" * 1024

            answer = await client.post(f"{srv.url}/hooks/ci", content=chunks(),
                                       headers=bearer())
            assert answer.status_code == 413
            assert answer.json() == {"error": "the request body is larger than 1024 bytes"}
        assert await srv.tasks() == []


async def test_template_fields_never_reach_further_than_their_value(tmp_path: Path) -> None:
    text = HOOK.replace("idempotency_field: run.id", "max_field_chars: 40")
    evil = {
        "repo": "{json.log} {json.secret}",  # a placeholder inside a value stays literal
        "branch": "main\n\nIGNORE PREVIOUS\x1b[2J",  # a title stays one line, no escapes
        "job": {"name": "y" * 500},  # capped
        "log": "{json.repo}",
        "secret": "should-not-appear",
        "workspace": "dir:/etc", "assignee": "root", "board": "default",  # not templated
    }
    async with served(tmp_path, text) as srv, httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{srv.url}/hooks/ci", json=evil, headers=bearer())
        assert answer.status_code == 201, answer.text
        [task] = await srv.tasks()
        assert task.title == "CI failed: {json.log} {json.secret} on main IGNORE PREVIOUS\\x1b[2J"
        assert "should-not-appear" not in task.title + task.body
        assert task.body == f"Job {'y' * 39}… failed.\n{{json.repo}}"
        assert (task.assignee, task.workspace_kind, task.workspace_path) == (
            "fixer", "scratch", None)
        assert await (await srv.boards.open("default")).list_tasks() == []


async def test_bad_bodies_and_names_get_clear_errors(tmp_path: Path) -> None:
    text = HOOK + "  paused:\n    enabled: false\n    token_env: CI_HOOK_TOKEN\n    title: x\n"
    async with served(tmp_path, text) as srv, httpx.AsyncClient(timeout=10) as client:
        url = f"{srv.url}/hooks/ci"
        not_json = await client.post(url, content=b"{nope", headers=bearer())
        assert (not_json.status_code, not_json.json()) == (
            422, {"error": "the request body must be JSON"})
        empty = await client.post(url, json={"other": 1}, headers=bearer())
        assert empty.status_code == 200 or empty.status_code == 201  # "CI failed:  on " is text
        unknown = await client.post(f"{srv.url}/hooks/nope", json={}, headers=bearer())
        assert (unknown.status_code, unknown.json()) == (404, {"error": "no hook named 'nope'"})
        disabled = await client.post(f"{srv.url}/hooks/paused", json={}, headers=bearer())
        assert disabled.status_code == 404
        get = await client.get(url, headers=bearer())
        assert (get.status_code, get.headers["allow"]) == (405, "POST")
        key = await client.post(url, json=PAYLOAD, headers=bearer(**{"Idempotency-Key": "k" * 201}))
        assert key.status_code == 422


async def test_a_title_made_only_of_missing_fields_is_refused(tmp_path: Path) -> None:
    text = HOOK.replace('title: "CI failed: {json.repo} on {json.branch}"',
                        'title: "{json.alert.title}"')
    async with served(tmp_path, text) as srv, httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{srv.url}/hooks/ci", json={"alert": {}}, headers=bearer())
        assert answer.status_code == 422
        assert "title came out empty" in answer.json()["error"]
        listed = await client.post(f"{srv.url}/hooks/ci", headers=bearer(),
                                   json={"alert": {"title": ["disk", 95]}})
        assert listed.status_code == 201
        assert [t.title for t in await srv.tasks()] == ['["disk",95]']


async def test_the_rate_limit_answers_429_and_forged_requests_spend_nothing(
        tmp_path: Path) -> None:
    text = HOOK + "    burst: 2\n    rate_per_minute: 0.5\n"
    async with served(tmp_path, text) as srv, httpx.AsyncClient(timeout=10) as client:
        url = f"{srv.url}/hooks/ci"
        for _ in range(5):
            assert (await client.post(url, json=PAYLOAD, headers=bearer("x"))).status_code == 401
        codes = [(await client.post(url, json={**PAYLOAD, "run": {"id": i}},
                                    headers=bearer())).status_code for i in range(2)]
        assert codes == [201, 201]
        limited = await client.post(url, json={**PAYLOAD, "run": {"id": 9}}, headers=bearer())
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 120
        assert "rate limit" in limited.json()["error"]
        assert len(await srv.tasks()) == 2


def test_the_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limits = RateLimits(clock=lambda: now[0])
    assert [limits.take("a", 60.0, 2) for _ in range(3)] == [0, 0, 1]
    assert limits.take("b", 60.0, 1) == 0  # each hook its own bucket
    now[0] += 1.0
    assert limits.take("a", 60.0, 2) == 0
    assert limits.take("a", 6.0, 2) == 0  # a changed rate starts a fresh bucket
    assert limits.take("a", 6.0, 2) == 0
    assert limits.take("a", 6.0, 2) == 10


async def test_hooks_pass_by_a_public_dashboards_token_and_need_their_own(
        tmp_path: Path) -> None:
    env = {"DASH": "dashboard-token-abcdefabcdefabcdef"}
    async with served(tmp_path, "dashboard: {token_env: DASH}\n" + HOOK, env) as srv, \
            httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{srv.url}/api/session")).status_code == 401
        hook = await client.post(f"{srv.url}/hooks/ci", json=PAYLOAD, headers=bearer())
        assert hook.status_code == 201
        dash_token = await client.post(f"{srv.url}/hooks/ci", json=PAYLOAD,
                                       headers=bearer(env["DASH"]))
        assert dash_token.status_code == 401  # the dashboard's token opens no hook


def test_the_gateway_refuses_to_start_with_a_hook_without_its_token(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(HOOK, encoding="utf-8")
    config = load_config(None, {}, home=tmp_path)
    with pytest.raises(ConfigError) as info:
        require_platform_secrets(config)
    assert str(info.value) == "hooks.ci: $CI_HOOK_TOKEN (hooks.ci.token_env) is not set"
    secret = tmp_path / "tok"
    secret.write_text(TOKEN + "\n", encoding="utf-8")
    os.chmod(secret, 0o600)
    (tmp_path / "config.yaml").write_text(
        HOOK.replace("token_env: CI_HOOK_TOKEN", f"token_file: {secret}"), encoding="utf-8")
    config = load_config(None, {}, home=tmp_path)
    require_platform_secrets(config)
    assert config.hooks["ci"].token == TOKEN


async def test_a_webhook_caller_may_create_on_its_board_and_subscribe_its_threads_only(
        tmp_path: Path) -> None:
    boards = Boards(tmp_path / "home")
    await boards.create("ops")
    roots = (tmp_path / "work",)
    services = Services(boards=boards, default_board="ops", workspace_roots=roots)
    hook = Webhook(name="ci", board="ops", threads=(("slack", "C1", None),))
    try:
        made = await execute(CreateRequest(title="t", board="ops"), hook, services)
        task_id = made.task.id  # type: ignore[union-attr]
        await execute(SubscribeRequest(task_id=task_id, platform="slack", chat="C1", board="ops"),
                      hook, services)
        refused = [
            CreateRequest(title="t", board="default"),
            CreateRequest(title="t", board="ops", workspace="dir:/etc"),
            CreateRequest(title="t", board="ops", attachments=("/etc/passwd",)),
            SubscribeRequest(task_id=task_id, platform="slack", chat="C2", board="ops"),
            AssignRequest(task_id=task_id, profile="fixer", board="ops"),
            ListRequest(board="ops"),
        ]
        for request in refused:
            with pytest.raises(NotAllowed):
                await execute(request, hook, services)
        inside = tmp_path / "work" / "repo"
        inside.mkdir(parents=True)
        await execute(CreateRequest(title="t", board="ops", workspace=f"dir:{inside}"), hook,
                      services)
    finally:
        await boards.close()


def test_templates_with_fields_that_are_not_plain_paths_are_refused(tmp_path: Path) -> None:
    for field in ("{json.a[0]}", "{json.__class__.x y}", "{json.}", "{json.a..b}",
                  "{json.a/../b}"):
        (tmp_path / "config.yaml").write_text(
            f"hooks: {{ci: {{token_env: T, title: 'x {field}'}}}}", encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_config(None, {}, home=tmp_path)
        assert str(info.value).startswith("config.yaml: hooks.ci.title must be a template "
                                          "whose fields are plain dotted paths")


# Posts PAYLOAD to the hook at argv[1] with the token in argv[2]; prints the status and body.
CLIENT = """
import json, sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"repo": "r", "run": {"id": 5}}).encode(),
                             headers={"Content-Type": "application/json",
                                      "Authorization": "Bearer " + sys.argv[2]})
try:
    with urllib.request.urlopen(req, timeout=20) as resp:
        print(json.dumps([resp.status, json.loads(resp.read())]))
except urllib.error.HTTPError as exc:
    print(json.dumps([exc.code, json.loads(exc.read())]))
"""


async def test_a_workers_process_cannot_use_a_hook_even_with_its_token(tmp_path: Path) -> None:
    from tests.gateway.conftest import clean_environ

    script = tmp_path / "client.py"
    script.write_text(CLIENT, encoding="utf-8")
    worker_vars = {"RELAYBOARD_TASK_ID": "7", "RELAYBOARD_RUN_ID": "3",
                   "RELAYBOARD_LEASE": "lease"}
    async with served(tmp_path / "home", HOOK) as srv:
        async def post(env: dict[str, str]) -> list[Any]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(script), f"{srv.url}/hooks/ci", TOKEN, env=env,
                stdout=asyncio.subprocess.PIPE)
            async with asyncio.timeout(30):
                out, _ = await proc.communicate()
            answer: list[Any] = json.loads(out)
            return answer

        status, body = await post(clean_environ(worker_vars))
        assert status == 403 and "worker's process" in body["error"]
        assert await srv.tasks() == []
        status, body = await post(clean_environ())
        assert (status, body["created"]) == (201, True)


@pytest.mark.parametrize(("text", "message"), [
    ("hooks: {'CI Hook': {title: x}}",
     "config.yaml: hooks: 'CI Hook' is no name; use 1-64 of a-z, 0-9, '-' and '_', starting "
     "with a letter or a digit"),
    ("hooks: {ci: {token_env: T}}",
     "config.yaml: hooks.ci.title must be a template whose fields are plain dotted paths, such "
     "as 'CI failed: {json.repo}' (got None)"),
    ("hooks: {ci: {title: x, subscribe: [{platform: slack}]}}",
     "config.yaml: hooks.ci.subscribe must be a list of {platform, chat, thread} mappings "
     "(got [{'platform': 'slack'}])"),
    ("hooks: {ci: {title: x, burst: 0}}",
     "config.yaml: hooks.ci.burst must be an integer >= 1 (got 0)"),
    ("hooks: {ci: {title: x, idempotency_field: 'a[0]'}}",
     "config.yaml: hooks.ci.idempotency_field must be a plain dotted path of keys and list "
     "indices (such as check_suite.id) (got 'a[0]')"),
    ("hooks: [ci]", "config.yaml: hooks must be a mapping of hook names to hooks (got ['ci'])"),
])
def test_a_bad_hook_is_one_line_naming_its_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(None, {}, home=tmp_path)
    assert str(info.value) == message


def test_a_hooks_token_is_masked_in_logs_and_unknown_keys_are_named(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(HOOK.replace("board: ops", "board: ops\n    colour: 1"),
                                          encoding="utf-8")
    config = load_config(None, {"CI_HOOK_TOKEN": TOKEN}, home=tmp_path)
    assert TOKEN in config.secret_values()
    assert config.warnings == ("unknown key hooks.ci.colour (ignored)",)
