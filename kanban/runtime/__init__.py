"""The process runtime: the dispatcher, worker spawning, workspaces.

Names are exported lazily, so importing the package does not start up the dispatcher's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kanban.runtime.dispatcher import CycleReport, Dispatcher, DispatchSettings

_WHERE = {"CycleReport": "dispatcher", "DispatchSettings": "dispatcher",
          "Dispatcher": "dispatcher"}

__all__ = ["CycleReport", "DispatchSettings", "Dispatcher"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kanban.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kanban.runtime.{module}"), name)
