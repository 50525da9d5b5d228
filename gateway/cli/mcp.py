"""``relayboard mcp`` — the kanban worker tools as an MCP server on stdio.

An agent CLI that speaks MCP can be a profile ``command``: the dispatcher starts it with the
worker variables (``RELAYBOARD_TASK_ID``, ``RELAYBOARD_LEASE``, …), the agent starts
``relayboard mcp`` from its MCP configuration (the environment is inherited), and the agent
reports through ``kanban_show``, ``kanban_complete``, ``kanban_block``, ``kanban_comment``,
``kanban_heartbeat`` — the built-in worker's tools: views of the kanban verbs, run through the
command layer as the run's worker, so the rules of ``relayboard kanban`` inside a worker apply.
``kanban_create`` is offered only when the dispatcher gave the run that right (the runs of
``kanban.orchestrator_profile``): it is read from the run's record, and the old
``--orchestrator`` flag is accepted and ignored. See docs/worker.md.

Tool failures (a refused artifact, a stale lease) come back as tool results with ``isError`` set,
so the agent sees them; only a broken protocol stream ends the server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.cli.invocation import app_of

if TYPE_CHECKING:
    from gateway.builtin_worker import KanbanTools
    from gateway.builtin_worker.kanban_tools import Runner
    from gateway.commands import Worker

SERVER_NAME = "relayboard-kanban"
REQUIRED = ("RELAYBOARD_API", "RELAYBOARD_TASK_ID", "RELAYBOARD_LEASE")


def build_server(tools: KanbanTools) -> Any:
    """The MCP server (the SDK's low-level ``Server``) serving ``tools``."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from gateway.builtin_worker import ToolError, parse_arguments
    from kanban.errors import LeaseError

    async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[
            types.Tool(name=s.name, description=s.description, input_schema=s.schema)
            for s in tools.specs()
        ])

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        error = False
        try:
            outcome = await tools.call(params.name, parse_arguments(params.arguments or {}))
            data: dict[str, Any] = outcome.data
        except (ToolError, LeaseError) as exc:
            error, data = True, {"error": str(exc)}
        return types.CallToolResult(
            content=[types.TextContent(text=json.dumps(data, ensure_ascii=False, default=str))],
            structured_content=data, is_error=error)

    from gateway import version

    return Server(SERVER_NAME, version=version(),
                  instructions="Report on your kanban task: finish it with kanban_complete "
                               "(declare your files as artifacts) or kanban_block.",
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def serve(run: Runner, caller: Worker, workspace: Path | None) -> None:
    """Serve the tools of ``caller``'s run, each call made through ``run`` (the worker API
    inside a worker; the command layer in tests)."""
    from mcp.server.stdio import stdio_server

    from gateway.builtin_worker import KanbanTools

    tools = await KanbanTools.for_run(run, caller.task_id, caller.lease, workspace)
    server = build_server(tools)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


@click.command("mcp")
@click.option("--orchestrator", is_flag=True, hidden=True,
              help="Ignored: the run's own record says whether it may create tasks.")
@click.pass_context
def mcp(ctx: click.Context, orchestrator: bool) -> None:
    """Serve the kanban worker tools over MCP on stdin/stdout (run inside a worker)."""
    app = app_of(ctx)
    caller = app.dispatched_worker(
        REQUIRED, "`relayboard mcp` runs inside a worker started by the dispatcher")
    from gateway.worker_api.remote import remote_runner

    workspace = app.environ.get("RELAYBOARD_WORKSPACE")
    with remote_runner(Path(app.environ["RELAYBOARD_API"]), app.environ) as run:
        asyncio.run(serve(run, caller, Path(workspace) if workspace else None))
