"""``agent.kind: openai``: any OpenAI-compatible chat-completions endpoint, with kanban tools.

The tools create, show and list tasks and subscribe the thread: each is a verb of the command
layer (its arguments derived from the verb's declaration) run as the chat user
(:class:`~gateway.chat.tools.ThreadTools`), so the model can do nothing the user could not type.
The ``openai`` SDK is imported on the first message (it takes most of a second to import, and
most gateways never use it).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from gateway.chat.tools import ThreadTools
from gateway.chat.turn import Turn
from gateway.commands import (
    CreateRequest,
    ListRequest,
    Request,
    ShowRequest,
    SubscribeRequest,
    UsageError,
)
from gateway.commands.json_args import json_schema, request_from_json
from gateway.config_schema import OpenAIAgentConfig

log = logging.getLogger(__name__)

PLACEHOLDER_API_KEY = "not-needed"  # local servers need no key; the SDK insists on one
SYSTEM = (
    "You are Relayboard's assistant in a chat thread. You manage a kanban board of tasks that "
    "worker agents (profiles) carry out. Use the tools to create, show and list tasks and to "
    "subscribe this thread to a task; a task you create is followed here automatically and its "
    "result is posted when done. Answer briefly. When you mention a local file, give its "
    "absolute path in backticks."
)

# Tool name → the verb it runs and what the model is told; the arguments are the verb's own.
TOOLS: dict[str, tuple[type[Request], str]] = {
    "create_task": (CreateRequest, "Create a task on the board (files attached to the message go "
                                   "with it)."),
    "show_task": (ShowRequest, "Show one task."),
    "list_tasks": (ListRequest, "List tasks, optionally by status or assignee."),
    "subscribe_thread": (SubscribeRequest, "Post this task's result to the current chat thread "
                                           "when it ends."),
}
THREAD_FIELDS = ("platform", "chat", "thread")  # a subscription is always this thread's


@functools.cache
def tool_schemas() -> list[dict[str, Any]]:
    """The tools as the chat-completions protocol takes them, derived from the verbs (as the
    chat user sees them: no host paths)."""
    return [{"type": "function", "function": {
        "name": name, "description": description,
        "parameters": json_schema(verb, fixed=THREAD_FIELDS)}}
        for name, (verb, description) in TOOLS.items()]


class OpenAIAgent:
    kind = "openai"

    def __init__(self, settings: OpenAIAgentConfig) -> None:
        self.settings = settings

    def messages(self, turn: Turn) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system",
                                      "content": self.settings.system_prompt or SYSTEM}]
        for e in turn.history:
            role = "assistant" if e.role == "assistant" else "user"
            out.append({"role": role, "content": e.text})
        text = turn.text
        if turn.files:
            text += "\n\nFiles attached to this message:\n" + "\n".join(
                str(p) for p in turn.files)
        out.append({"role": "user", "content": text})
        return out

    async def reply(self, turn: Turn) -> str:
        import openai

        s = self.settings
        messages = self.messages(turn)
        try:
            async with openai.AsyncOpenAI(base_url=s.base_url,
                                          api_key=s.api_key or PLACEHOLDER_API_KEY,
                                          timeout=s.timeout, max_retries=s.retries) as client:
                for _ in range(s.max_tool_rounds):
                    response = await client.chat.completions.create(
                        model=s.model or "", messages=messages,  # type: ignore[arg-type]
                        tools=tool_schemas())  # type: ignore[arg-type]
                    if not response.choices:
                        return "The agent's answer was empty."
                    message = response.choices[0].message
                    calls = message.tool_calls or []
                    if not calls:
                        return (message.content or "").strip() or "(no answer)"
                    messages.append(message.model_dump(exclude_none=True))
                    for call in calls:
                        function = getattr(call, "function", None)
                        if function is None:
                            continue
                        result = await run_tool(turn.tools, function.name, function.arguments)
                        messages.append({"role": "tool", "tool_call_id": call.id,
                                         "content": result})
        except openai.APITimeoutError:
            return f"The agent did not answer within {s.timeout:g} s."
        except openai.APIStatusError as exc:
            log.warning("chat agent: HTTP %s from %s", exc.status_code, s.base_url)
            return f"The agent is unavailable (HTTP {exc.status_code})."
        except openai.APIConnectionError:
            log.warning("chat agent: cannot reach %s", s.base_url)
            return "The agent cannot be reached right now."
        except openai.OpenAIError as exc:
            log.warning("chat agent: %s", exc)
            return "The agent's answer could not be read."
        created = ", ".join(f"#{i}" for i in turn.tools.created)
        return ("I stopped after several tool calls." + (f" Created {created}." if created
                                                          else ""))


async def run_tool(tools: ThreadTools, name: str, raw: str | None) -> str:
    """One tool call → its text result (refusals are results too: the model reads them)."""
    entry = TOOLS.get(name)
    if entry is None:
        return f"error: no tool named {name!r}"
    verb = entry[0]
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        return "error: the arguments are not valid JSON"
    dest = tools.dest
    fixed: dict[str, Any] = (
        {"platform": dest.platform, "chat": dest.chat, "thread": dest.thread}
        if verb is SubscribeRequest else {"with_bodies": False} if verb is ListRequest else {})
    try:
        request = request_from_json(verb, args, fixed=fixed)
    except UsageError as exc:
        return f"error: {exc}"
    return await tools.run(request)
