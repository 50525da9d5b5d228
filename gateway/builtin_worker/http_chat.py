"""The worker's default model client: the chat-completions protocol spoken directly over httpx.

Why not the ``openai`` SDK (still selectable, ``client: openai``): importing it takes about half a
second, more than the whole start-up budget of a worker. The worker needs one endpoint of the
protocol, ``POST {base_url}/chat/completions``, so this client speaks it itself and maps failures
exactly as :class:`~gateway.builtin_worker.chat_client.OpenAIChat` does:

* 408, 409, 429, 5xx, timeouts and connection errors are retried ``Endpoint.retries`` times with
  capped, jittered exponential backoff, honouring the server's ``retry-after-ms`` /
  ``Retry-After`` (up to :data:`MAX_RETRY_AFTER` seconds); then
* an HTTP status becomes :class:`~kanban.errors.LLMUnavailable` carrying it (429 → the loop exits
  75, another 4xx blocks the task, 5xx is a crash), a timeout :class:`~kanban.errors.LLMTimeout`,
  a connection error ``LLMUnavailable`` without a status (a crash);
* a 2xx answer that is not a chat completion (not JSON, no choices) is ``LLMUnavailable`` with
  its status (2xx): retrying would get the same answer, so the loop blocks the task for a person
  (usually ``base_url`` points at something that is not a chat-completions server).

``httpx`` itself is imported on the first request, like the SDK in ``OpenAIChat``: a task blocked
for want of an endpoint pays for neither.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import ssl
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gateway.builtin_worker.chat_client import (
    SLOT,
    ChatReply,
    Endpoint,
    Message,
    ToolCall,
    Usage,
    short,
)
from gateway.errors import GatewayError
from kanban.backoff import Backoff
from kanban.errors import LLMTimeout, LLMUnavailable

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
# 0.5 s, 1, 2, … capped at 8, each cut by up to a quarter at random so that workers
# rate-limited together do not come back together.
BACKOFF = Backoff(base=0.5, cap=8.0, jitter=0.25)
MAX_RETRY_AFTER = 60.0  # a server asking for longer is not waited for: the backoff applies
USER_AGENT = "relayboard-worker"

Sleep = Callable[[float], Any]


class _Retry(GatewayError):
    """One attempt failed in a way worth another; ``final`` is what to raise when none is left
    (never leaves :class:`HTTPXChat`)."""

    def __init__(self, final: Exception, wait: float | None = None) -> None:
        super().__init__(str(final))
        self.final = final
        self.wait = wait


class HTTPXChat:
    """One ``httpx.AsyncClient`` for the whole run: the connection is kept between requests."""

    def __init__(self, endpoint: Endpoint, *, sleep: Sleep = asyncio.sleep) -> None:
        self.endpoint = endpoint
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self._sleep = sleep
        self._client: httpx.AsyncClient | None = None

    async def chat(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], *,
                   timeout: float) -> ChatReply:
        body: dict[str, Any] = {"model": self.endpoint.model, "messages": list(messages)}
        if tools:
            # tool_choice is left out: with tools offered the protocol's default is "auto", and
            # some servers (vLLM) refuse an explicit "auto" unless started with extra flags.
            body["tools"] = list(tools)
        attempt = 0
        while True:
            try:
                return await self._attempt(body, timeout)
            except _Retry as retry:
                if attempt >= self.endpoint.retries:
                    raise retry.final from retry.final.__cause__
                await self._sleep(retry.wait if retry.wait is not None
                                  else BACKOFF.delay(attempt + 1))
                attempt += 1

    async def _attempt(self, body: dict[str, Any], timeout: float) -> ChatReply:
        import httpx

        client = self._client or self._open()
        base = self.endpoint.base_url
        try:
            # httpx's timeout bounds each read; the outer one bounds the whole answer, so a
            # server dripping bytes cannot hold the worker past its budget either.
            async with asyncio.timeout(timeout):
                response = await client.post(self.url, json=body, timeout=timeout)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _Retry(_chained(LLMTimeout(SLOT, timeout), exc)) from exc
        except httpx.TransportError as exc:
            raise _Retry(_chained(LLMUnavailable(
                f"cannot reach {base}: {short(str(exc) or type(exc).__name__)}", SLOT),
                exc)) from exc
        status = response.status_code
        if status >= 300:
            error = LLMUnavailable(f"HTTP {status} from {base}: {short(error_text(response))}",
                                   SLOT, status)
            if status in RETRY_STATUSES or status >= 500:
                raise _Retry(error, retry_after(response.headers))
            raise error
        try:
            data = response.json()
        except ValueError as exc:
            kind = response.headers.get("content-type", "no content type")
            raise LLMUnavailable(
                f"{base} answered HTTP {status} with a body that is not JSON ({kind}: "
                f"{short(response.text, 80)!r}); is base_url a chat-completions API?",
                SLOT, status) from exc
        return reply_from_json(data, self.endpoint.model, base, status)

    def _open(self) -> httpx.AsyncClient:
        import httpx

        headers = {"User-Agent": USER_AGENT}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        self._client = httpx.AsyncClient(headers=headers, verify=tls_context(self.url))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def tls_context(url: str) -> ssl.SSLContext | bool:
    """Full verification for an https endpoint. For a plain-http one (a local server) TLS is
    not used, so the ~20 ms of loading the certificate store is skipped: the context still
    requires certificates but trusts none, so any TLS that did happen (an https proxy) fails
    loudly instead of going unverified."""
    if url.startswith("https:"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def retry_after(headers: Any) -> float | None:
    """The server's wait (``retry-after-ms``, else ``Retry-After`` as seconds or an HTTP date),
    when it is sane; None means: use the backoff."""
    wait: float | None = None
    raw_ms = headers.get("retry-after-ms")
    raw = headers.get("retry-after")
    try:
        if raw_ms is not None:
            wait = float(raw_ms) / 1000
        elif raw is not None:
            wait = float(raw)
    except ValueError:
        when = email.utils.parsedate_tz(raw) if raw is not None else None
        if when is not None:
            wait = email.utils.mktime_tz(when) - time.time()
    if wait is None or not 0 <= wait <= MAX_RETRY_AFTER:
        return None
    return float(wait)


def error_text(response: httpx.Response) -> str:
    """The server's own words: ``{"error": {"message": …}}`` as OpenAI-compatible servers say
    it, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return response.text


def reply_from_json(data: Any, model: str, base_url: str = "", status: int = 200) -> ChatReply:
    """A chat-completion body as a :class:`ChatReply`; anything else is refused with one line."""

    def malformed(what: str) -> LLMUnavailable:
        return LLMUnavailable(f"{base_url or 'the endpoint'} answered HTTP {status} but not with "
                              f"a chat completion ({what})", SLOT, status)

    if not isinstance(data, dict):
        raise malformed(f"a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed("no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise malformed("the choice has no message")
    calls = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise malformed("tool_calls is not a list")
    for index, call in enumerate(raw_calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):  # a custom (non-function) tool call: not ours
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(ToolCall(id=str(call.get("id") or f"call_{index}"),
                              name=str(function.get("name") or ""), arguments=arguments))
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    content = message.get("content")
    return ChatReply(
        content=content if isinstance(content, str) else None,
        tool_calls=calls,
        usage=Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))),
        model=str(data.get("model") or model),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _chained(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error
