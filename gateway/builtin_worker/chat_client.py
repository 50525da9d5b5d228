"""The worker's seam to the model: one chat-completions request with tools.

:class:`ChatClient` is the protocol the loop talks to; :class:`OpenAIChat` implements it with the
official ``openai`` SDK against any OpenAI-compatible server. SDK exceptions never leave this
module: they become :class:`~kanban.errors.LLMTimeout` or :class:`~kanban.errors.LLMUnavailable`
(with the HTTP status when there was one, so the loop tells a 429 from a 401 from a 503).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kanban.errors import LLMTimeout, LLMUnavailable

SLOT = "worker"
# Local servers (vLLM, Ollama, LM Studio) need no key, but the SDK insists on one.
PLACEHOLDER_API_KEY = "not-needed"

Message = dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it (may be invalid)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatReply:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = Usage()
    model: str = ""

    def as_message(self) -> Message:
        """The assistant turn as it goes back into the conversation."""
        message: Message = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


class ChatClient(Protocol):
    async def chat(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], *,
                   timeout: float) -> ChatReply: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """The profile's endpoint, resolved (the key's value, not its variable's name)."""

    base_url: str
    model: str
    api_key: str | None = None
    retries: int = 2


class OpenAIChat:
    """One SDK client for the whole run (a worker makes many requests: the connection is kept)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client: Any = None

    async def chat(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], *,
                   timeout: float) -> ChatReply:
        # Imported here, not at module level: the SDK is most of the worker's start-up time, and
        # a task blocked for want of an endpoint should not pay for it.
        import openai

        ep = self.endpoint
        if self._client is None:
            self._client = openai.AsyncOpenAI(base_url=ep.base_url,
                                              api_key=ep.api_key or PLACEHOLDER_API_KEY,
                                              max_retries=ep.retries)
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = list(tools)
        try:
            response = await self._client.chat.completions.create(
                model=ep.model, messages=list(messages), timeout=timeout, **extra)
        except openai.APITimeoutError as exc:
            raise LLMTimeout(SLOT, timeout) from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailable(f"HTTP {exc.status_code} from {ep.base_url}: "
                                 f"{short(exc.message)}", SLOT, exc.status_code) from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"cannot reach {ep.base_url}: {short(str(exc))}",
                                 SLOT) from exc
        except openai.OpenAIError as exc:  # malformed responses and the like
            raise LLMUnavailable(f"{ep.base_url}: {short(str(exc))}", SLOT) from exc
        return _reply_of(response, ep.model)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _reply_of(response: Any, model: str) -> ChatReply:
    choices = getattr(response, "choices", None) or []
    if not choices or choices[0].message is None:
        # A 2xx answer that is not a completion: a person must look (see the loop).
        raise LLMUnavailable("the endpoint answered but not with a chat completion (no "
                             "choices)", SLOT, 200)
    message = choices[0].message
    calls = []
    for index, call in enumerate(getattr(message, "tool_calls", None) or []):
        function = getattr(call, "function", None)
        if function is None:  # a custom (non-function) tool call: nothing we offered
            continue
        arguments = function.arguments
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall(id=str(call.id or f"call_{index}"), name=str(function.name),
                              arguments=arguments))
    usage = getattr(response, "usage", None)
    return ChatReply(
        content=message.content if isinstance(message.content, str) else None,
        tool_calls=calls,
        usage=Usage(int(getattr(usage, "prompt_tokens", 0) or 0),
                    int(getattr(usage, "completion_tokens", 0) or 0)),
        model=str(getattr(response, "model", None) or model),
    )


def short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
