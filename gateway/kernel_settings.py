"""Config → the kernel's plain settings values. One mapping, used by the CLI and the daemon.

``kanban`` never reads config; it takes frozen dataclasses (``BoardOptions``, ``DispatchSettings``,
``DecomposeSettings``, ``LLMEndpoint``). This module is the only place that builds them: a
setting whose key has its name is taken as it is, the others are named below.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from gateway.config import Config
from gateway.config_schema import (
    AuxSlot,
    DeliveryConfig,
    KanbanConfig,
    StorageConfig,
    WorkersConfig,
)
from gateway.host import local_zone
from kanban import BoardOptions, Storage

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from kanban.agents import DecomposeSettings, LLMEndpoint
    from kanban.retention import RetentionSettings
    from kanban.runtime import DispatchSettings

# The dispatcher's and the LLM client's modules are imported inside the functions that need
# them: `relayboard kanban create` builds only BoardOptions and must start fast.

Settings = TypeVar("Settings", bound="DataclassInstance")


def _settings(kind: type[Settings], section: BaseModel, **others: Any) -> Settings:
    """``kind`` with each field that ``section`` has a key of the same name for, and ``others``."""
    same = {f.name: getattr(section, f.name) for f in dataclasses.fields(kind)
            if f.name in type(section).model_fields}
    return kind(**{**same, **others})


def board_options(config: KanbanConfig, delivery: DeliveryConfig | None = None) -> BoardOptions:
    """``delivery.max_attachment_bytes`` also bounds each artifact file a board on PostgreSQL
    keeps in its database (no file larger could be delivered anyway)."""
    limit = (delivery or DeliveryConfig()).max_attachment_bytes
    return _settings(BoardOptions, config, max_artifact_bytes=limit)


def retention_settings(config: KanbanConfig) -> RetentionSettings:
    """``kanban.retention`` as the kernel's settings (what ``gc`` and the gateway apply)."""
    from kanban.retention import RetentionSettings

    return _settings(RetentionSettings, config.retention)


def storage(config: StorageConfig) -> Storage:
    """The boards' storage (the DSN was read from ``storage.dsn_env`` at load time)."""
    if config.backend == "postgresql" and config.dsn:
        return Storage.postgres(config.dsn, namespace=config.namespace)
    return Storage()


def dispatch_settings(config: KanbanConfig, workers: WorkersConfig | None = None,
                      worker_api: Path | None = None) -> DispatchSettings:
    """The dispatcher's settings; ``worker_api`` is the socket the calling process serves."""
    from kanban.runtime import DispatchSettings

    return _settings(DispatchSettings, config, interval_seconds=config.dispatch_interval_seconds,
                     sandbox=(workers or WorkersConfig()).sandbox, worker_api=worker_api)


def llm_endpoint(slot: str, aux: AuxSlot) -> LLMEndpoint:
    """One ``auxiliary.<slot>`` block as the kernel's endpoint value."""
    from kanban.agents import LLMEndpoint

    return _settings(LLMEndpoint, aux, slot=slot)


def decompose_settings(config: Config) -> DecomposeSettings:
    from kanban.agents import DECOMPOSER_SLOT, DecomposeSettings

    k = config.kanban
    return _settings(DecomposeSettings, k, per_tick=k.auto_decompose_per_tick,
                     cooldown_seconds=k.decompose_cooldown_seconds,
                     endpoint=llm_endpoint(DECOMPOSER_SLOT, config.auxiliary.kanban_decomposer))


def time_zone(kanban: KanbanConfig) -> str:
    """``kanban.timezone``, or the host's zone (``UTC`` when the host names none)."""
    return local_zone(kanban.timezone)
