"""LLM-backed parts: the auxiliary client, worker profiles, the decomposer and describer.

Names are exported lazily: importing this package costs nothing until a name is used, so a CLI
verb that only needs profiles never loads the LLM client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kanban.agents.decomposer import (
        DecomposeSettings,
        Outcome,
        decompose_all,
        decompose_task,
    )
    from kanban.agents.describer import DescribeOutcome, describe_profiles
    from kanban.agents.llm import DECOMPOSER_SLOT, DESCRIBER_SLOT, LLMEndpoint
    from kanban.agents.profiles import Profile, Profiles

_WHERE = {
    "DECOMPOSER_SLOT": "llm", "DESCRIBER_SLOT": "llm", "LLMEndpoint": "llm",
    "DecomposeSettings": "decomposer", "Outcome": "decomposer", "decompose_all": "decomposer",
    "decompose_task": "decomposer",
    "DescribeOutcome": "describer", "describe_profiles": "describer",
    "Profile": "profiles", "Profiles": "profiles",
}

__all__ = [
    "DECOMPOSER_SLOT",
    "DESCRIBER_SLOT",
    "DecomposeSettings",
    "DescribeOutcome",
    "LLMEndpoint",
    "Outcome",
    "Profile",
    "Profiles",
    "decompose_all",
    "decompose_task",
    "describe_profiles",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kanban.agents' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kanban.agents.{module}"), name)
