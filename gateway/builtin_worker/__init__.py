"""The built-in worker (``relayboard worker run``) and the kanban tools it shares with
``relayboard mcp``.

Modules: :mod:`.loop` (the tool-calling loop, exit codes), :mod:`.chat_client` (the model seam
and its ``openai`` SDK client), :mod:`.http_chat` (the default client: the protocol over httpx),
:mod:`.kanban_tools` and :mod:`.workspace_tools` (the tools),
:mod:`.toolkit` (what the tools share), :mod:`.budgets` (profile limits), :mod:`.transcript`
(the log). The kanban tools are views of the command layer's verbs. Importing this package
imports neither ``httpx`` nor the ``openai`` SDK; the first request imports the one the
profile's ``client`` names.
"""

from gateway.builtin_worker.budgets import Budgets, load_budgets
from gateway.builtin_worker.chat_client import (
    ChatClient,
    ChatReply,
    Endpoint,
    OpenAIChat,
    ToolCall,
    Usage,
)
from gateway.builtin_worker.http_chat import HTTPXChat
from gateway.builtin_worker.kanban_tools import (
    TASK_BLOCKED,
    TASK_DONE,
    KanbanTools,
    Runner,
    runner,
)
from gateway.builtin_worker.loop import (
    CLIENTS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRY_LATER,
    WorkerJob,
    endpoint_problem,
    run_worker,
)
from gateway.builtin_worker.toolkit import (
    ToolError,
    ToolOutcome,
    ToolSpec,
    confine,
    parse_arguments,
)
from gateway.builtin_worker.transcript import Transcript
from gateway.builtin_worker.workspace_tools import WorkspaceTools

__all__ = [
    "CLIENTS",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_RETRY_LATER",
    "TASK_BLOCKED",
    "TASK_DONE",
    "Budgets",
    "ChatClient",
    "ChatReply",
    "Endpoint",
    "HTTPXChat",
    "KanbanTools",
    "OpenAIChat",
    "Runner",
    "ToolCall",
    "ToolError",
    "ToolOutcome",
    "ToolSpec",
    "Transcript",
    "Usage",
    "WorkerJob",
    "WorkspaceTools",
    "confine",
    "endpoint_problem",
    "load_budgets",
    "parse_arguments",
    "run_worker",
    "runner",
]
