"""Exceptions raised by the gateway itself (config, daemon, dashboard).

Every one derives from :class:`GatewayError` and ``str(err)`` is one line meant for a person: the
CLI (:func:`gateway.cli.invocation.fail_cleanly`) prints it as ``error: …`` and exits 1, the
dashboard (:func:`gateway.dashboard.api.status_for`) answers it as a JSON body with a 4xx status::

    GatewayError
    ├── ConfigError                       a config file, a key or a variable that cannot be used
    ├── LockHeld(path, pid)               another gateway already runs on this home
    ├── DashboardUnavailable(host, port, reason)   the dashboard could not bind its address
    ├── ApiError(status)                  a dashboard request refused with this HTTP status
    ├── WorkerApiUnavailable              a worker found no server at RELAYBOARD_API (exit 75)
    ├── WorkerApiError(kind)              the worker API answered a request with an error
    └── TranscriptionFailed               a voice note could not be turned into text

The kernel's refusals stay in :mod:`kanban.errors` (``KanbanError``, the command layer's in
:mod:`gateway.commands.errors` derive from it) and the adapters' in :mod:`platforms.errors`
(``PlatformError``); the gateway catches those trees by their own roots.
"""

from __future__ import annotations

from pathlib import Path


class GatewayError(Exception):
    """Base class of every gateway error; ``str(err)`` is one line meant for a person."""


class ConfigError(GatewayError):
    """A config file that cannot be used; the message names the file and the key."""


class LockHeld(GatewayError):
    """Another gateway holds this home's lock; ``pid`` is the holder's, when it could be read."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"another gateway is already running on this home ({holder}); "
                         f"stop it first, or use a different --home")
        self.path = path
        self.pid = pid


class DashboardUnavailable(GatewayError):
    """The dashboard could not bind its address (the daemon's supervisor retries it)."""

    def __init__(self, host: str, port: int, reason: str | None) -> None:
        super().__init__(
            f"dashboard: cannot listen on {host}:{port} ({reason or 'bind failed'}); is "
            "another gateway or `relayboard dashboard` running? Set dashboard.port to "
            "another port")
        self.host = host
        self.port = port
        self.reason = reason


class WorkerApiUnavailable(GatewayError):
    """No worker API answered within the worker's patience. The CLI exits 75 (a temporary
    failure): the dispatcher that adopts the worker serves the socket again."""

    exit_code = 75


class WorkerApiError(GatewayError):
    """The worker API refused a request: ``kind`` says why (``lease``, ``refused``,
    ``invalid``, ``usage``, ``internal``; see docs/worker.md) and the message is its one line."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ApiError(GatewayError):
    """A dashboard request refused with ``status`` (the message is the JSON body's line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TranscriptionFailed(GatewayError):
    """The transcription endpoint (``agent.transcription``) gave no text for a voice note; the
    message is one line for the chat user, without the endpoint's URL or key."""


__all__ = ["ApiError", "ConfigError", "DashboardUnavailable", "GatewayError", "LockHeld",
           "TranscriptionFailed"]
