"""The built-in worker: a tool-calling loop that works one claimed task until it completes or
blocks it.

The loop asks the model for the next step, runs the tools it calls, feeds the results back, and
stops when a ``kanban_complete`` or ``kanban_block`` call succeeded. Around that:

* a model that answers without calling a tool is nudged (``max_nudges`` times), then the task is
  blocked with its last message as the reason — a task only ever ends through complete or block;
* the budgets of :mod:`gateway.builtin_worker.budgets` are checked before every request; exhausting
  one blocks the task with a reason naming the key;
* activity (a reply, a tool call) heartbeats the lease, at most once per ``heartbeat_seconds``;
* HTTP 429 from the endpoint ends the process with exit code 75, which the dispatcher requeues
  without counting a failure; other client errors (401, 404, …) need a person and block the task;
  an endpoint that is down or failing (5xx, timeouts, connection errors) is a crash (exit 1), which
  the dispatcher counts and retries with backoff;
* a lease that went stale (the run was reclaimed or finished by someone else) stops the worker:
  its successor owns the task now.

Every step is written to the transcript (:mod:`gateway.builtin_worker.transcript`). The
board is reached only through the injected ``run`` (see :mod:`.kanban_tools`): the tools, the
heartbeats and the blocks the loop writes itself are requests of the command layer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from gateway.builtin_worker.budgets import Budgets, load_budgets
from gateway.builtin_worker.chat_client import ChatClient, ChatReply, Endpoint, Message, OpenAIChat
from gateway.builtin_worker.http_chat import HTTPXChat
from gateway.builtin_worker.kanban_tools import TASK_BLOCKED, TASK_DONE, KanbanTools, Runner
from gateway.builtin_worker.toolkit import ToolError, ToolOutcome, parse_arguments
from gateway.builtin_worker.transcript import Transcript, clip
from gateway.builtin_worker.workspace_tools import WorkspaceTools
from gateway.commands import BlockRequest, ContextRequest, HeartbeatRequest
from gateway.commands.results import TaskContext
from gateway.errors import GatewayError
from kanban.agents.profiles import Profile
from kanban.errors import InvalidInput, KanbanError, LeaseError, LLMTimeout, LLMUnavailable

log = logging.getLogger(__name__)

EXIT_OK = 0  # the task was completed or blocked
EXIT_FAILED = 1  # a crash: counted and retried by the dispatcher
EXIT_RETRY_LATER = 75  # rate limited: requeued, not counted
REASON_LIMIT = 2_000

SYSTEM_PROMPT = """You are a worker agent on a kanban board. You work one task, described below, \
inside its workspace directory ({workspace}); your tools reach that directory only.

Work in small steps with the tools. When the task is finished, call kanban_complete with a short \
summary, the result, and the files you produced as artifacts (paths relative to the workspace). \
If you cannot finish it (missing information, a decision only a person can make), call \
kanban_block with the reason. Your task ends only through one of those two calls."""

NUDGE = ("You have not finished the task: nothing is recorded until you call kanban_complete "
         "(with your result and artifacts) or kanban_block (with the reason). Continue, or call "
         "one of them now.")


@dataclass(frozen=True)
class WorkerJob:
    """Everything the worker needs, read from the environment at the CLI edge."""

    board: str
    task_id: int
    lease: str
    workspace: Path
    profile: Profile
    api_key: str | None = None
    shell_env: dict[str, str] = field(default_factory=dict)
    model_override: str | None = None
    prompt_file: Path | None = None


class _Stop(GatewayError):
    """The loop is over; ``code`` is the process's exit code (never leaves :func:`run_worker`)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the worker exits with {code}")
        self.code = code


ChatFactory = Callable[[Endpoint], ChatClient]
# The profile's ``client`` key picks one; both map endpoint failures the same way.
CLIENTS: dict[str, ChatFactory] = {"httpx": HTTPXChat, "openai": OpenAIChat}


def endpoint_problem(profile: Profile, model: str | None) -> str | None:
    """Why the profile cannot run the built-in worker, or None."""
    missing = [key for key, value in (("base_url", profile.base_url), ("model", model))
               if not value]
    if not missing:
        return None
    if not profile.exists:
        return (f"profile {profile.name!r} does not exist ({profile.home} is gone): create it "
                "with base_url and model (or a `command`), or assign the task to another "
                "profile; then unblock the task")
    return (f"profile {profile.name!r} has no endpoint for the built-in worker: set "
            f"{' and '.join(missing)} in {profile.home / 'profile.yaml'} (and api_key_env if the "
            "server needs a key), or give the profile a `command`; then unblock the task")


async def run_worker(job: WorkerJob, run: Runner, out: TextIO, *,
                     chat_factory: ChatFactory | None = None,
                     clock: Callable[[], float] = time.monotonic) -> int:
    """Work ``job``'s task to its end, reaching the board through ``run``; returns the process
    exit code. ``chat_factory`` overrides the client the profile's ``client`` key names."""
    transcript = Transcript(out, clock=clock)
    transcript.write("start", task_id=job.task_id, board=job.board, profile=job.profile.name)
    # The run's own rights, as the dispatcher recorded them at the claim.
    kanban = await KanbanTools.for_run(run, job.task_id, job.lease, workspace=job.workspace)
    session = _Session(job, run, kanban, transcript, clock)
    try:
        return await session.run(chat_factory)
    except _Stop as stop:
        return stop.code


class _Session:
    def __init__(self, job: WorkerJob, run: Runner, kanban: KanbanTools, transcript: Transcript,
                 clock: Callable[[], float]) -> None:
        self.job, self.runner, self.transcript, self.clock = job, run, transcript, clock
        self.started = clock()
        self.iterations = 0
        self.tokens = 0
        self.nudges = 0
        self.last_beat = self.started
        self.budgets = Budgets()
        self.kanban = kanban
        self.files = WorkspaceTools(job.workspace, job.shell_env)

    async def run(self, chat_factory: ChatFactory | None) -> int:
        job = self.job
        try:
            self.budgets = load_budgets(job.profile.home)
        except InvalidInput as exc:
            await self.end_blocked(str(exc), why="bad_profile")
        model = job.model_override or job.profile.model
        problem = endpoint_problem(job.profile, model)
        if problem:
            await self.end_blocked(problem, why="no_endpoint")
        if job.profile.api_key_env and not job.api_key:
            await self.end_blocked(
                f"profile {job.profile.name!r} names api_key_env {job.profile.api_key_env}, but "
                "that variable is not set where the dispatcher runs; set it, then unblock the "
                "task", why="no_api_key")
        assert job.profile.base_url is not None and model is not None
        self.files.shell_timeout = self.budgets.shell_timeout_seconds
        self.files.output_cap = self.budgets.shell_output_bytes
        factory = chat_factory or CLIENTS[self.budgets.client]
        chat = factory(Endpoint(job.profile.base_url, model, job.api_key,
                                     self.budgets.request_retries))
        try:
            messages = await self.first_messages()
            return await self.loop(chat, messages)
        finally:
            await chat.aclose()

    async def first_messages(self) -> list[Message]:
        context = None
        if self.job.prompt_file is not None:
            try:
                context = self.job.prompt_file.read_text(encoding="utf-8")
            except OSError as exc:
                log.warning("prompt file unreadable (%s); building the context again", exc)
        if context is None:
            shown = await self.runner(ContextRequest(task_id=self.job.task_id))
            assert isinstance(shown, TaskContext)
            context = shown.markdown
        return [{"role": "system", "content": SYSTEM_PROMPT.format(workspace=self.job.workspace)},
                {"role": "user", "content": context}]

    # ---- the loop ---------------------------------------------------------------------------
    async def loop(self, chat: ChatClient, messages: list[Message]) -> int:
        specs = [s.openai() for s in [*self.kanban.specs(), *self.files.specs()]]
        last_text = ""
        while True:
            await self.check_budgets()
            self.iterations += 1
            self.transcript.write("request", iteration=self.iterations, messages=len(messages))
            reply = await self.ask(chat, messages, specs)
            self.tokens += reply.usage.total
            self.transcript.write(
                "assistant", text=reply.content or "",
                tool_calls=[{"name": c.name, "arguments": clip(c.arguments, 1_000)}
                            for c in reply.tool_calls],
                prompt_tokens=reply.usage.prompt_tokens,
                completion_tokens=reply.usage.completion_tokens, total_tokens=self.tokens)
            messages.append(reply.as_message())
            if reply.content and reply.content.strip():
                last_text = reply.content.strip()
            if not reply.tool_calls:
                await self.nudge(messages, last_text)
                continue
            for call in reply.tool_calls:
                outcome = await self.run_tool(call.name, call.arguments)
                content = json.dumps(outcome.data, ensure_ascii=False, default=str)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
                if outcome.ended is not None:
                    self.finish(outcome.ended, None)
                    return EXIT_OK
            await self.beat()

    async def ask(self, chat: ChatClient, messages: Sequence[Message],
                  specs: list[dict[str, Any]]) -> ChatReply:
        timeout = min(self.budgets.request_timeout_seconds, self.time_left())
        try:
            reply = await chat.chat(messages, specs, timeout=max(timeout, 0.1))
        except LLMTimeout as exc:
            if self.time_left() <= 0:
                await self.end_blocked(self.budget_reason("max_seconds"), why="budget")
            self.finish("crashed", f"the endpoint did not answer within {exc.seconds:g} s")
            raise _Stop(EXIT_FAILED) from exc
        except LLMUnavailable as exc:
            if exc.status == 429:
                self.finish("retry_later", str(exc))
                raise _Stop(EXIT_RETRY_LATER) from exc
            # 4xx (the key, the model, the request) and a 2xx that is not a chat completion
            # (base_url points elsewhere) need a person; 5xx, 408 and no answer at all are
            # the endpoint failing: a crash, retried by the dispatcher.
            if exc.status is not None and exc.status < 500 and exc.status != 408:
                verb = "refused the request" if exc.status >= 300 else "answered nonsense"
                await self.end_blocked(f"the endpoint {verb}: {exc}", why="endpoint_refused")
            self.finish("crashed", str(exc))
            raise _Stop(EXIT_FAILED) from exc
        await self.beat()
        return reply

    async def run_tool(self, name: str, raw_arguments: str) -> ToolOutcome:
        self.transcript.write("tool_call", name=name, arguments=raw_arguments)
        try:
            args = parse_arguments(raw_arguments)
            if name in self.kanban.names:
                outcome = await self.kanban.call(name, args)
            else:
                outcome = ToolOutcome(await self.files.call(name, args,
                                                            time_left=self.time_left()))
        except ToolError as exc:
            outcome = ToolOutcome({"error": str(exc)})
        except LeaseError as exc:
            self.finish("lease_lost", str(exc))
            raise _Stop(EXIT_FAILED) from exc
        except OSError as exc:  # the shell could not start, the disk is full, …
            outcome = ToolOutcome({"error": f"{name} failed: {exc}"})
        self.transcript.write("tool_result", name=name,
                              result=json.dumps(outcome.data, ensure_ascii=False, default=str))
        return outcome

    async def nudge(self, messages: list[Message], last_text: str) -> None:
        if self.nudges >= self.budgets.max_nudges:
            reason = last_text or "the model stopped without completing or blocking the task"
            await self.end_blocked(clip(reason, REASON_LIMIT), why="stopped")
        self.nudges += 1
        self.transcript.write("nudge", count=self.nudges, of=self.budgets.max_nudges)
        messages.append({"role": "user", "content": NUDGE})

    # ---- budgets, heartbeats, endings ------------------------------------------------------
    def time_left(self) -> float:
        return self.budgets.max_seconds - (self.clock() - self.started)

    def budget_reason(self, key: str) -> str:
        spent = {"max_iterations": f"{self.iterations} model requests",
                 "max_seconds": f"{self.clock() - self.started:.0f} s",
                 "max_tokens": f"{self.tokens} tokens"}[key]
        limit = getattr(self.budgets, key)
        return (f"budget exhausted: {key} = {limit:g} reached ({spent}) before the task was "
                "completed; raise it in the profile.yaml or split the task, then unblock it")

    async def check_budgets(self) -> None:
        b = self.budgets
        if self.iterations >= b.max_iterations:
            await self.end_blocked(self.budget_reason("max_iterations"), why="budget")
        if self.time_left() <= 0:
            await self.end_blocked(self.budget_reason("max_seconds"), why="budget")
        if b.max_tokens is not None and self.tokens >= b.max_tokens:
            await self.end_blocked(self.budget_reason("max_tokens"), why="budget")

    async def beat(self) -> None:
        if self.clock() - self.last_beat < self.budgets.heartbeat_seconds:
            return
        self.last_beat = self.clock()
        try:
            await self.runner(HeartbeatRequest(task_id=self.job.task_id, lease=self.job.lease,
                                               note=f"built-in worker: step {self.iterations}"))
        except LeaseError as exc:
            self.finish("lease_lost", str(exc))
            raise _Stop(EXIT_FAILED) from exc

    async def end_blocked(self, reason: str, *, why: str) -> NoReturn:
        """Block the task and stop (never returns)."""
        try:
            # One word: a reason that starts with a number is not read as a task id.
            await self.runner(BlockRequest(words=(reason,), lease=self.job.lease))
        except LeaseError as exc:
            self.finish("lease_lost", str(exc))
            raise _Stop(EXIT_FAILED) from exc
        except KanbanError as exc:
            self.finish("crashed", f"could not block the task: {exc}")
            raise _Stop(EXIT_FAILED) from exc
        self.finish(TASK_BLOCKED, reason, why=why)
        raise _Stop(EXIT_OK)

    def finish(self, outcome: str, reason: str | None, **extra: Any) -> None:
        self.transcript.write("end", outcome=outcome, reason=reason, iterations=self.iterations,
                              tokens=self.tokens, seconds=round(self.clock() - self.started, 3),
                              **extra)


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_RETRY_LATER", "TASK_DONE", "WorkerJob",
           "endpoint_problem", "run_worker"]
