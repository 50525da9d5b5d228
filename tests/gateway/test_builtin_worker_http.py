"""The worker's model clients against the fake chat-completions server: the lean httpx client's
protocol and error mapping, and the same endpoint failures ending a run the same way through
either client (the profile's ``client`` key)."""

from __future__ import annotations

import email.utils
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from gateway.builtin_worker import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRY_LATER,
    Endpoint,
    HTTPXChat,
    WorkerJob,
    run_worker,
)
from gateway.builtin_worker.http_chat import BACKOFF, retry_after
from kanban.agents.profiles import Profiles
from kanban.board import Board
from kanban.errors import LLMTimeout, LLMUnavailable
from tests.fakes.common import Recorded, free_port
from tests.fakes.llm_server import METHOD, LLMServer
from tests.gateway.conftest import run_as_worker

TOOLS = [{"type": "function", "function": {"name": "noop", "description": "does nothing",
                                           "parameters": {"type": "object", "properties": {}}}}]
HELLO = [{"role": "user", "content": "hello"}]


class GarblingLLMServer(LLMServer):
    """The fake, plus raw answers (not JSON, HTML) served before the script: what a base_url
    pointing at some other web server gets back."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[tuple[int, str, str]] = []  # (status, body, content type)

    def garble(self, body: str, *, status: int = 200, content_type: str = "text/html") -> None:
        self.raw.append((status, body, content_type))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if not self.raw:
            return await super()._completions(request)
        await self.record(Recorded(METHOD, {"raw": await request.text()}))
        status, body, content_type = self.raw.pop(0)
        return web.Response(status=status, text=body, content_type=content_type)


@pytest.fixture
async def garbling() -> AsyncIterator[GarblingLLMServer]:
    async with GarblingLLMServer() as server:
        yield server


class Sleeps:
    """Records the client's backoff waits instead of waiting them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(server: LLMServer, *, retries: int = 0, key: str | None = "sk-test",
           sleeps: Sleeps | None = None) -> HTTPXChat:
    return HTTPXChat(Endpoint(server.base_url, "fake-model", key, retries),
                     sleep=sleeps or Sleeps())


# ---- the protocol -------------------------------------------------------------------------------
async def test_a_request_carries_model_messages_tools_and_the_key(llm: LLMServer) -> None:
    llm.tool_calls([("noop", {"x": 1}), ("other", "{not json")], content="working", tokens=10)
    chat = client(llm)
    try:
        reply = await chat.chat(HELLO, TOOLS, timeout=5)
    finally:
        await chat.aclose()

    [sent] = llm.completions()
    assert sent.params["model"] == "fake-model"
    assert sent.params["messages"] == HELLO and sent.params["tools"] == TOOLS
    assert sent.params["_authorization"] == "Bearer sk-test"
    assert "tool_choice" not in sent.params  # the protocol's default with tools: auto
    assert reply.content == "working"
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("noop", '{"x": 1}'),
                                                                 ("other", "{not json")]
    assert reply.tool_calls[0].id != reply.tool_calls[1].id
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 5)
    assert reply.model == "fake-model"


async def test_without_a_key_no_authorization_is_sent_and_the_connection_is_kept(
        llm: LLMServer) -> None:
    llm.reply("one")
    llm.reply("two")
    chat = client(llm, key=None)
    try:
        first = await chat.chat(HELLO, [], timeout=5)
        second = await chat.chat(HELLO, [], timeout=5)
    finally:
        await chat.aclose()

    assert (first.content, second.content) == ("one", "two")
    assert [r.params["_authorization"] for r in llm.completions()] == ["", ""]
    assert "tools" not in llm.completions()[0].params


# ---- error mapping ----------------------------------------------------------------------------
async def test_429_is_retried_then_raised_with_its_status(llm: LLMServer) -> None:
    llm.rate_limit(times=3)
    sleeps = Sleeps()
    chat = client(llm, retries=2, sleeps=sleeps)
    with pytest.raises(LLMUnavailable) as caught:
        await chat.chat(HELLO, TOOLS, timeout=5)
    await chat.aclose()

    assert caught.value.status == 429
    assert "HTTP 429" in str(caught.value) and "rate limit reached" in str(caught.value)
    assert len(llm.completions()) == 3
    assert sleeps.waits == [0.001, 0.001]  # the fake's retry-after-ms, honoured


async def test_a_500_then_an_answer_is_a_reply(llm: LLMServer) -> None:
    llm.fail(500, "upstream hiccup")
    llm.reply("fine now")
    chat = client(llm, retries=1)
    try:
        reply = await chat.chat(HELLO, TOOLS, timeout=5)
    finally:
        await chat.aclose()

    assert reply.content == "fine now"
    assert len(llm.completions()) == 2


async def test_5xx_past_the_retries_is_raised_with_its_status(llm: LLMServer) -> None:
    llm.fail(503, "overloaded", times=2)
    chat = client(llm, retries=1)
    with pytest.raises(LLMUnavailable) as caught:
        await chat.chat(HELLO, TOOLS, timeout=5)
    await chat.aclose()

    assert caught.value.status == 503 and "overloaded" in str(caught.value)
    assert len(llm.completions()) == 2


async def test_a_400_is_not_retried(llm: LLMServer) -> None:
    llm.fail(400, "model 'fake-model' does not support tools")
    chat = client(llm, retries=2)
    with pytest.raises(LLMUnavailable) as caught:
        await chat.chat(HELLO, TOOLS, timeout=5)
    await chat.aclose()

    assert caught.value.status == 400
    assert str(caught.value) == (f"HTTP 400 from {llm.base_url}: model 'fake-model' does not "
                                 "support tools")
    assert len(llm.completions()) == 1


async def test_a_timeout_is_retried_then_raised(llm: LLMServer) -> None:
    llm.slow()
    llm.slow()
    sleeps = Sleeps()
    chat = client(llm, retries=1, sleeps=sleeps)
    started = time.monotonic()
    with pytest.raises(LLMTimeout) as caught:
        await chat.chat(HELLO, TOOLS, timeout=0.2)
    await chat.aclose()

    assert caught.value.seconds == 0.2
    assert len(llm.completions()) == 2
    assert len(sleeps.waits) == 1 and 0.375 <= sleeps.waits[0] <= 0.5  # the first backoff
    assert time.monotonic() - started < 3


async def test_an_unreachable_endpoint_has_no_status() -> None:
    chat = HTTPXChat(Endpoint(f"http://127.0.0.1:{free_port()}/v1", "m", None, 1),
                     sleep=Sleeps())
    with pytest.raises(LLMUnavailable) as caught:
        await chat.chat(HELLO, TOOLS, timeout=5)
    await chat.aclose()

    assert caught.value.status is None
    assert str(caught.value).startswith("cannot reach http://127.0.0.1:")


async def test_a_body_that_is_not_json_is_refused_with_one_clear_line(
        garbling: GarblingLLMServer) -> None:
    garbling.garble("<html><body>Welcome to nginx!</body></html>")
    chat = client(garbling, retries=2)
    with pytest.raises(LLMUnavailable) as caught:
        await chat.chat(HELLO, TOOLS, timeout=5)
    await chat.aclose()

    message = str(caught.value)
    assert caught.value.status == 200
    assert "answered HTTP 200 with a body that is not JSON (text/html" in message
    assert "Welcome to nginx!" in message and "is base_url a chat-completions API?" in message
    assert "\n" not in message
    assert len(garbling.completions()) == 1  # the same answer again would help nobody


@pytest.mark.parametrize(("body", "what"), [
    ('["a", "list"]', "a JSON list, not an object"),
    ('{"id": "x", "choices": []}', "no choices"),
    ('{"choices": [{"index": 0}]}', "the choice has no message"),
    ('{"choices": [{"message": {"tool_calls": "noop"}}]}', "tool_calls is not a list"),
])
async def test_json_that_is_not_a_chat_completion_is_refused(
        garbling: GarblingLLMServer, body: str, what: str) -> None:
    garbling.garble(body, content_type="application/json")
    chat = client(garbling)
    with pytest.raises(LLMUnavailable) as caught:
        await chat.chat(HELLO, TOOLS, timeout=5)
    await chat.aclose()

    assert caught.value.status == 200
    assert str(caught.value) == (f"{garbling.base_url} answered HTTP 200 but not with a chat "
                                 f"completion ({what})")


def test_retry_after_and_backoff() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "2"}) == 2.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after({"retry-after": soon}) or 0) <= 30
    for unusable in ({}, {"retry-after": "3600"}, {"retry-after": "-1"},
                     {"retry-after": "tomorrow"}):
        assert retry_after(unusable) is None
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (10, 8.0)]:
        assert 0.75 * ceiling <= BACKOFF.delay(attempt + 1) <= ceiling


# ---- the same endings through either client -----------------------------------------------------
CLIENT_NAMES = ["httpx", "openai"]


async def work(tmp_path: Path, board: Board, server: LLMServer, client_name: str,
               **settings: Any) -> tuple[int, list[dict[str, Any]]]:
    """One in-process worker run on a fresh task; returns its exit code and transcript."""
    profiles = Profiles(tmp_path / "home")
    profiles.create("w", base_url=server.base_url, model="m")
    file = profiles.path("w") / "profile.yaml"
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    data.update(client=client_name, **settings)
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    task = (await board.create_task("talk to the endpoint", assignee="w")).task
    claim = await board.claim(task.id, profile="w")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    out = io.StringIO()
    async with run_as_worker(tmp_path / "home", claim) as run:
        code = await run_worker(WorkerJob(board.slug, task.id, claim.lease, workspace,
                                          profiles.load("w")), run, out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("client_name", CLIENT_NAMES)
async def test_429_exits_75(tmp_path: Path, board: Board, llm: LLMServer,
                            client_name: str) -> None:
    llm.rate_limit(times=2)
    code, lines = await work(tmp_path, board, llm, client_name, request_retries=1)

    assert code == EXIT_RETRY_LATER
    assert lines[-1]["outcome"] == "retry_later" and "429" in lines[-1]["reason"]
    assert len(llm.completions()) == 2
    [task] = await board.list_tasks()
    assert task.status == "running"  # the dispatcher requeues it when it reaps the exit code


@pytest.mark.parametrize("client_name", CLIENT_NAMES)
async def test_500_then_ok_completes(tmp_path: Path, board: Board, llm: LLMServer,
                                     client_name: str) -> None:
    llm.fail(500)
    llm.tool_call("kanban_complete", {"result": "made it"})
    code, lines = await work(tmp_path, board, llm, client_name, request_retries=1)

    assert code == EXIT_OK and lines[-1]["outcome"] == "done"
    [task] = await board.list_tasks()
    assert task.status == "done" and task.result == "made it"
    assert len(llm.completions()) == 2


@pytest.mark.parametrize("client_name", CLIENT_NAMES)
async def test_400_blocks_the_task(tmp_path: Path, board: Board, llm: LLMServer,
                                   client_name: str) -> None:
    llm.fail(400, "unknown model m")
    code, _lines = await work(tmp_path, board, llm, client_name, request_retries=2)

    assert code == EXIT_OK
    [task] = await board.list_tasks()
    assert task.status == "blocked"
    assert task.blocked_reason is not None
    assert task.blocked_reason.startswith("the endpoint refused the request: HTTP 400 from ")
    assert "unknown model m" in task.blocked_reason
    assert len(llm.completions()) == 1


@pytest.mark.parametrize("client_name", CLIENT_NAMES)
async def test_a_timeout_is_a_crash(tmp_path: Path, board: Board, llm: LLMServer,
                                    client_name: str) -> None:
    llm.slow()
    code, lines = await work(tmp_path, board, llm, client_name, request_retries=0,
                             request_timeout_seconds=0.3)

    assert code == EXIT_FAILED
    assert lines[-1]["outcome"] == "crashed"
    assert lines[-1]["reason"] == "the endpoint did not answer within 0.3 s"
    [task] = await board.list_tasks()
    assert task.status == "running"  # the dispatcher counts the crash when it reaps it


@pytest.mark.parametrize("client_name", CLIENT_NAMES)
async def test_a_body_that_is_not_json_blocks_the_task(
        tmp_path: Path, board: Board, garbling: GarblingLLMServer, client_name: str) -> None:
    garbling.garble("<html><body>Welcome to nginx!</body></html>")
    code, _lines = await work(tmp_path, board, garbling, client_name, request_retries=2)

    assert code == EXIT_OK
    [task] = await board.list_tasks()
    assert task.status == "blocked"
    reason = task.blocked_reason or ""
    assert reason.startswith("the endpoint answered nonsense: ")
    assert "not JSON" in reason or "not with a chat completion" in reason
    assert len(garbling.completions()) == 1


# ---- start-up ----------------------------------------------------------------------------------
def test_the_worker_entry_imports_nothing_heavy_before_the_first_request() -> None:
    """What `python -m gateway worker run` has imported by its first request: the CLI root, the
    worker with the command layer its kanban tools run through, and httpx without its own CLI —
    not the SDK, the renderers or the servers."""
    import subprocess
    import sys

    probe = ("import sys\n"
             "import gateway.__main__, gateway.cli.worker, gateway.builtin_worker\n"
             "gateway.cli.worker.skip_httpx_cli()\n"
             "import httpx\n"
             "heavy = ('openai', 'rich', 'pygments', 'mcp', 'aiohttp', 'starlette',\n"
             "         'httpx._main')\n"
             "print(sorted(m for m in heavy if sys.modules.get(m) is not None))\n"
             "print(callable(httpx.AsyncClient))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=30, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "True"]
