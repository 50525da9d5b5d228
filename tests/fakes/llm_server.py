"""A loopback fake of the OpenAI chat-completions protocol, for the LLM clients.

Replies are scripted in order (``reply``, ``tool_call``, ``fail``, ``rate_limit``, ``slow``); when
the script is empty the ``default`` reply (if any) is served, else a 500 says so. Every request
body is recorded. ``tool_call`` answers with assistant tool calls (the built-in worker's loop);
each scripted reply may claim a number of tokens used, for token budgets.

Use it on the test's own loop (``await server.start()``), or, for code that runs its own event loop
(the CLI through ``CliRunner``), in a background thread with :func:`threaded_llm_server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.common import FakeServer, Recorded

METHOD = "POST /chat/completions"


@dataclass
class _Step:
    kind: str  # "reply" | "fail" | "slow"
    content: str = ""
    status: int = 200
    body: Any = None
    headers: dict[str, str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tokens: int = 2


class LLMServer(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.script: list[_Step] = []
        self.default: str | None = None
        self._ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._lock = threading.Lock()  # scripting may happen from another thread
        self._release: asyncio.Event | None = None

    # ---- scripting --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def reply(self, content: str, times: int = 1, *, tokens: int = 2) -> None:
        with self._lock:
            self.script.extend(_Step("reply", content, tokens=tokens) for _ in range(times))

    def tool_call(self, name: str, arguments: dict[str, Any] | str | None = None, *,
                  content: str = "", tokens: int = 2) -> None:
        """One assistant turn calling one tool (``arguments`` as a dict, or raw text to send
        arguments that are not valid JSON)."""
        self.tool_calls([(name, arguments)], content=content, tokens=tokens)

    def tool_calls(self, calls: list[tuple[str, dict[str, Any] | str | None]], *,
                   content: str = "", tokens: int = 2) -> None:
        """One assistant turn calling several tools, in order."""
        with self._lock:
            made = []
            for name, arguments in calls:
                raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
                made.append({"id": f"call_{next(self._call_ids)}", "type": "function",
                             "function": {"name": name, "arguments": raw}})
            self.script.append(_Step("reply", content, tool_calls=made, tokens=tokens))

    def rate_limit(self, times: int = 1) -> None:
        """HTTP 429, as a provider's rate limiter answers."""
        self.fail(429, "rate limit reached", times=times)

    def fail(
        self,
        status: int,
        message: str = "scripted failure",
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        # retry-after-ms keeps the SDK's backoff to a millisecond, so retry tests stay fast.
        hdrs = {"retry-after-ms": "1", **(headers or {})}
        body = {"error": {"message": message, "type": "server_error", "code": status}}
        with self._lock:
            self.script.extend(
                _Step("fail", status=status, body=body, headers=hdrs) for _ in range(times)
            )

    def slow(self, content: str = "{}") -> None:
        """A reply held until :meth:`release` or the server stops (the client times out)."""
        with self._lock:
            self.script.append(_Step("slow", content))

    def release(self) -> None:
        if self._release is not None:
            self._release.set()

    # ---- inspection -------------------------------------------------------------------------
    def completions(self) -> list[Recorded]:
        return self.calls(METHOD)

    def prompt(self, index: int = -1) -> str:
        """All message contents of one request, joined (for asserting on what was sent)."""
        messages = self.completions()[index].params.get("messages", [])
        return "\n".join(str(m.get("content", "")) for m in messages)

    # ---- protocol ---------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        self._release = asyncio.Event()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post("/chat/completions", self._completions)

    async def stop(self) -> None:
        self.release()
        await super().stop()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        params = dict(body) if isinstance(body, dict) else {"raw": body}
        params["_authorization"] = request.headers.get("Authorization", "")
        await self.record(Recorded(METHOD, params))
        with self._lock:
            step = self.script.pop(0) if self.script else None
        if step is None:
            if self.default is None:
                return web.json_response({"error": {"message": "no scripted reply"}}, status=500)
            step = _Step("reply", self.default)
        if step.kind == "fail":
            return web.json_response(step.body, status=step.status, headers=step.headers)
        if step.kind == "slow":
            assert self._release is not None
            await self._release.wait()
        return web.json_response(self._envelope(str(params.get("model", "fake")), step))

    def _envelope(self, model: str, step: _Step) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": step.content}
        if step.tool_calls:
            message["tool_calls"] = step.tool_calls
        completion = step.tokens // 2
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if step.tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": step.tokens - completion, "completion_tokens": completion,
                      "total_tokens": step.tokens},
        }


@contextlib.contextmanager
def threaded_llm_server(timeout: float = 10.0) -> Iterator[LLMServer]:
    """Run an :class:`LLMServer` on its own loop in a daemon thread (for sync callers)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, LLMServer] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            server = LLMServer()
            await server.start()
            holder["server"] = server
            started.set()

        loop.run_until_complete(boot())
        loop.run_forever()

    thread = threading.Thread(target=main, name="fake-llm-server", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise RuntimeError("the fake LLM server did not start")
    server = holder["server"]
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
