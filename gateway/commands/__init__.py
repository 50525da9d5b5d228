"""The transport-neutral command layer shared by the CLI, the chat router and the dashboard.

parse → request → :func:`execute` (async ``Board`` calls) → typed result or a ``KanbanError``::

    request = parse_command("create Quarterly report --assignee reporter")   # chat text
    result = await execute(request, ChatUser("slack", "U1"), services)
    render_text(result)   # "Created #12 Quarterly report · ready · @reporter"

Each verb's arguments are declared once (:mod:`gateway.commands.verbs`); the CLI builds its
click commands from the same declarations (:func:`build_group`). The caller (:class:`Operator`,
:class:`Worker`, :class:`ChatUser`) is always an explicit argument.
"""

from gateway.commands import maintenance as maintenance  # registers its handlers
from gateway.commands.callers import Caller, ChatUser, Operator, Webhook, Worker
from gateway.commands.declare import REGISTRY, Request, build, params_of
from gateway.commands.errors import NotAllowed, UnknownProfile, UsageError
from gateway.commands.escaping import printable, split_words
from gateway.commands.execute import Services, execute, follow_events
from gateway.commands.parse import (
    VerbGroup,
    build_group,
    example_for,
    parse_command,
    verb_path,
)
from gateway.commands.results import Result, render_text, task_json
from gateway.commands.verbs import (
    ArchiveRequest,
    AssignRequest,
    BlockRequest,
    BoardsBackupRequest,
    BoardsCreateRequest,
    BoardsListRequest,
    BoardsMigrateRequest,
    BoardsRemoveRequest,
    BoardsRestoreRequest,
    ClaimRequest,
    CommentRequest,
    CompleteRequest,
    ContextRequest,
    CreateRequest,
    DecomposeRequest,
    EventsRequest,
    GcRequest,
    HeartbeatRequest,
    LinkRequest,
    ListRequest,
    RecomputeRequest,
    SetModelRequest,
    SetPriorityRequest,
    ShowRequest,
    StatsRequest,
    SubscribeRequest,
    SubscriptionsRequest,
    UnblockRequest,
    UnlinkRequest,
    UnsubscribeRequest,
)

__all__ = [
    "REGISTRY",
    "ArchiveRequest",
    "AssignRequest",
    "BlockRequest",
    "BoardsBackupRequest",
    "BoardsCreateRequest",
    "BoardsListRequest",
    "BoardsMigrateRequest",
    "BoardsRemoveRequest",
    "BoardsRestoreRequest",
    "Caller",
    "ChatUser",
    "ClaimRequest",
    "CommentRequest",
    "CompleteRequest",
    "ContextRequest",
    "CreateRequest",
    "DecomposeRequest",
    "EventsRequest",
    "GcRequest",
    "HeartbeatRequest",
    "LinkRequest",
    "ListRequest",
    "NotAllowed",
    "Operator",
    "RecomputeRequest",
    "Request",
    "Result",
    "Services",
    "SetModelRequest",
    "SetPriorityRequest",
    "ShowRequest",
    "StatsRequest",
    "SubscribeRequest",
    "SubscriptionsRequest",
    "UnblockRequest",
    "UnknownProfile",
    "UnlinkRequest",
    "UnsubscribeRequest",
    "UsageError",
    "VerbGroup",
    "Webhook",
    "Worker",
    "build",
    "build_group",
    "example_for",
    "execute",
    "follow_events",
    "params_of",
    "parse_command",
    "printable",
    "render_text",
    "split_words",
    "task_json",
    "verb_path",
]
