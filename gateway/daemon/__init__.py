"""The gateway daemon: supervisor, board hub, dispatcher watcher, adapters, home lock."""

from gateway.daemon.adapters import AdapterRunner, AdapterState, adapter_factories
from gateway.daemon.components import Daemon
from gateway.daemon.hub import BoardHub
from gateway.daemon.lock import HomeLock
from gateway.daemon.logs import RedactSecrets, setup_logging
from gateway.daemon.run import run_gateway
from gateway.daemon.supervisor import Supervisor
from gateway.daemon.watcher import ConfigFollower, DispatchWatcher
from gateway.errors import LockHeld
from kanban.backoff import Backoff  # the kernel's: the one backoff formula

__all__ = [
    "AdapterRunner",
    "AdapterState",
    "Backoff",
    "BoardHub",
    "ConfigFollower",
    "Daemon",
    "DispatchWatcher",
    "HomeLock",
    "LockHeld",
    "RedactSecrets",
    "Supervisor",
    "adapter_factories",
    "run_gateway",
    "setup_logging",
]
