"""``agent.kind: openai``: any OpenAI-compatible chat-completions endpoint, with kanban tools.

The tools create, show and list tasks and subscribe the thread; each goes through the command
layer as the chat user (:class:`~gateway.chat.tools.ThreadTools`), so the model can do nothing
the user could not type. The ``openai`` SDK is imported on the first message (it takes most of a
second to import, and most gateways never use it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gateway.chat.tools import ThreadTools
from gateway.chat.turn import Turn
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

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "create_task",
        "description": "Create a task on the board (files attached to the message go with it).",
        "parameters": {"type": "object", "properties": {
            "title": {"type": "string"},
            "body": {"type": "string", "description": "What to do, in detail."},
            "assignee": {"type": "string", "description": "Profile that should do it."},
        }, "required": ["title"]}}},
    {"type": "function", "function": {
        "name": "show_task", "description": "Show one task.",
        "parameters": {"type": "object", "properties": {"task_id": {"type": "integer"}},
                       "required": ["task_id"]}}},
    {"type": "function", "function": {
        "name": "list_tasks", "description": "List tasks, optionally by status or assignee.",
        "parameters": {"type": "object", "properties": {
            "status": {"type": "string"}, "assignee": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "subscribe_thread",
        "description": "Post this task's result to the current chat thread when it ends.",
        "parameters": {"type": "object", "properties": {"task_id": {"type": "integer"}},
                       "required": ["task_id"]}}},
]


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
                        tools=TOOLS)  # type: ignore[arg-type]
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
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        return "error: the arguments are not valid JSON"
    if not isinstance(args, dict):
        return "error: the arguments must be a JSON object"

    def text(key: str) -> str | None:
        value = args.get(key)
        return str(value) if isinstance(value, str | int) and str(value).strip() else None

    def number(key: str) -> int | None:
        value = args.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("#").isdigit():
            return int(value.strip().lstrip("#"))
        return None

    if name == "create_task":
        title = text("title")
        if title is None:
            return "error: create_task needs a title"
        return await tools.create(title, body=text("body"), assignee=text("assignee"))
    if name in ("show_task", "subscribe_thread"):
        task_id = number("task_id")
        if task_id is None:
            return f"error: {name} needs a task_id"
        return await (tools.show_task(task_id) if name == "show_task" else tools.subscribe(task_id))
    if name == "list_tasks":
        return await tools.list_tasks(status=text("status"), assignee=text("assignee"))
    return f"error: no tool named {name!r}"
