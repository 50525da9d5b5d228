"""The built-in worker (``relayboard worker run``) and the kanban tools it shares with
``relayboard mcp``.

Modules: :mod:`.loop` (the tool-calling loop, exit codes), :mod:`.kanban_tools` (views of the
command layer's verbs) and :mod:`.workspace_tools` (the tools), :mod:`.toolkit` (what the tools
share), :mod:`.chat_client` (the model seam and its ``openai`` SDK client), :mod:`.http_chat`
(the default client: the protocol over httpx), :mod:`.budgets` (profile limits),
:mod:`.transcript` (the log). Importing this package imports neither ``httpx`` nor the
``openai`` SDK; the first request imports the one the profile's ``client`` names.
"""

from gateway.builtin_worker.budgets import Budgets, load_budgets
from gateway.builtin_worker.chat_client import ChatClient, Endpoint, OpenAIChat
from gateway.builtin_worker.http_chat import HTTPXChat
from gateway.builtin_worker.kanban_tools import TASK_BLOCKED, TASK_DONE, KanbanTools, Runner, runner
from gateway.builtin_worker.loop import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRY_LATER,
    WorkerJob,
    run_worker,
)
from gateway.builtin_worker.toolkit import ToolError, parse_arguments
from gateway.builtin_worker.workspace_tools import WorkspaceTools

__all__ = [
    "EXIT_FAILED", "EXIT_OK", "EXIT_RETRY_LATER", "TASK_BLOCKED", "TASK_DONE", "Budgets",
    "ChatClient", "Endpoint", "HTTPXChat", "KanbanTools", "OpenAIChat", "Runner", "ToolError",
    "WorkerJob", "WorkspaceTools", "load_budgets", "parse_arguments", "run_worker", "runner",
]
