"""The auxiliary LLM client: one OpenAI-compatible chat-completions endpoint per use ("slot").

Slots are ``kanban_decomposer`` and ``profile_describer``. Any server speaking the chat-completions
protocol works (OpenAI, OpenRouter, vLLM, Ollama, LM Studio); requests go through the official
``openai`` SDK, which also does the retrying (transient statuses and connection errors only, with
backoff, honouring ``Retry-After``).

The endpoint is a plain value (:class:`LLMEndpoint`); the gateway maps its config onto it, so this
module never reads the environment. Errors::

    KanbanError
    └── AuxiliaryError(slot)            anything that kept the slot from answering
        ├── NotConfigured(slot)         "no auxiliary client configured for <slot>"
        ├── LLMTimeout(slot, seconds)   no answer within the timeout (after retries)
        └── LLMUnavailable(slot)        HTTP error status, connection failure, empty reply
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kanban.errors import (
    LLMTimeout,
    LLMUnavailable,
    NotConfigured,
)

log = logging.getLogger(__name__)

DECOMPOSER_SLOT = "kanban_decomposer"
DESCRIBER_SLOT = "profile_describer"
# Local servers (vLLM, Ollama, LM Studio) need no key, but the SDK insists on one.
PLACEHOLDER_API_KEY = "not-needed"




@dataclass(frozen=True)
class LLMEndpoint:
    """One auxiliary slot, already resolved (the API key value, not the variable's name)."""

    slot: str
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout: float = 60.0  # seconds per attempt
    retries: int = 2  # extra attempts on transient failures

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    @property
    def budget_seconds(self) -> float:
        """A generous bound on one call including its retries (used as a caller-side deadline)."""
        return self.timeout * (self.retries + 1) + 1.0


Message = dict[str, str]


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    finish_reason: str | None = None


class AuxiliaryClient:
    """Chat completions against one slot. Each call opens and closes its own SDK client, so
    nothing outlives the call (auxiliary calls are rare; connection reuse buys nothing)."""

    def __init__(self, endpoint: LLMEndpoint) -> None:
        if not endpoint.configured:
            raise NotConfigured(endpoint.slot)
        self.endpoint = endpoint

    @classmethod
    def for_endpoint(cls, endpoint: LLMEndpoint) -> AuxiliaryClient | None:
        """The client, or None when the slot is not configured."""
        return cls(endpoint) if endpoint.configured else None

    @property
    def slot(self) -> str:
        return self.endpoint.slot

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = 0.2,
        max_tokens: int | None = None,
    ) -> Completion:
        """One chat completion; returns the first choice's text.

        Raises :class:`LLMTimeout` or :class:`LLMUnavailable` (never an SDK exception).
        """
        # Imported here: the SDK takes most of a second to import, and every CLI verb would pay
        # for it at start-up although only decomposition and description talk to an LLM.
        import openai

        ep = self.endpoint
        assert ep.model is not None
        extra: dict[str, Any] = {}
        if temperature is not None:
            extra["temperature"] = temperature
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens
        try:
            async with openai.AsyncOpenAI(
                base_url=ep.base_url,
                api_key=ep.api_key or PLACEHOLDER_API_KEY,
                timeout=ep.timeout,
                max_retries=ep.retries,
            ) as client:
                response = await client.chat.completions.create(
                    model=ep.model,
                    messages=[dict(m) for m in messages],  # type: ignore[misc]
                    **extra,
                )
        except openai.APITimeoutError as exc:
            raise LLMTimeout(ep.slot, ep.timeout) from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailable(
                f"{ep.slot}: HTTP {exc.status_code} from {ep.base_url}: {_short(exc.message)}",
                ep.slot, exc.status_code,
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(
                f"{ep.slot}: cannot reach {ep.base_url}: {_short(str(exc))}", ep.slot
            ) from exc
        except openai.OpenAIError as exc:  # malformed responses and the like
            raise LLMUnavailable(f"{ep.slot}: {_short(str(exc))}", ep.slot) from exc
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise LLMUnavailable(f"{ep.slot}: the reply had no choices", ep.slot)
        choice = choices[0]
        text = getattr(choice.message, "content", None) if choice.message else None
        if not isinstance(text, str) or not text.strip():
            raise LLMUnavailable(f"{ep.slot}: the reply was empty", ep.slot)
        log.debug("%s: %d characters from %s", ep.slot, len(text), response.model)
        return Completion(text=text, model=str(response.model or ep.model),
                          finish_reason=choice.finish_reason)


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---- reading replies --------------------------------------------------------------------------
# Models wrap JSON in code fences or chat around it; these helpers find what was meant without
# ever accepting a wrong shape (the callers check the shape).

_FENCE = re.compile(r"^\s*```[\w+-]*\s*$")


def strip_code_fences(text: str) -> str:
    """Drop Markdown code-fence lines (```json … ```), keeping what they enclose."""
    return "\n".join(line for line in text.splitlines() if not _FENCE.match(line)).strip()


def outermost_json_object(text: str) -> dict[str, Any] | None:
    """The first complete JSON object in ``text`` (fences and surrounding prose ignored)."""
    cleaned = strip_code_fences(text)
    decoder = json.JSONDecoder()
    start = cleaned.find("{")
    while start != -1:
        try:
            value, _end = decoder.raw_decode(cleaned, start)
        except ValueError:
            start = cleaned.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = cleaned.find("{", start + 1)  # pragma: no cover - raw_decode at "{" gives a dict
    return None


def first_paragraph(text: str) -> str:
    """The first non-empty paragraph, with Markdown emphasis and heading marks removed."""
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.strip().lstrip("#").strip() for ln in block.splitlines()]
        joined = " ".join(ln for ln in lines if ln)
        joined = joined.replace("**", "").replace("__", "").strip()
        if joined:
            return joined
    return ""
