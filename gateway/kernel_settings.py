"""Config → the kernel's plain settings values. One mapping, used by the CLI and the daemon.

``kanban`` never reads config; it takes frozen dataclasses (``BoardOptions``, ``DispatchSettings``,
``DecomposeSettings``, ``LLMEndpoint``). This module is the only place that builds them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import Config
from gateway.config_schema import AuxSlot, DeliveryConfig, KanbanConfig, StorageConfig
from kanban import BoardOptions, Storage

if TYPE_CHECKING:
    from kanban.agents import DecomposeSettings, LLMEndpoint
    from kanban.runtime import DispatchSettings

# The dispatcher's and the LLM client's modules are imported inside the functions that need
# them: `relayboard kanban create` builds only BoardOptions and must start fast.


def board_options(config: KanbanConfig, delivery: DeliveryConfig | None = None) -> BoardOptions:
    """``delivery.max_attachment_bytes`` also bounds each artifact file a board on PostgreSQL
    keeps in its database (no file larger could be delivered anyway)."""
    limit = (delivery or DeliveryConfig()).max_attachment_bytes
    return BoardOptions(failure_limit=config.failure_limit,
                        claim_ttl_seconds=config.claim_ttl_seconds, max_artifact_bytes=limit,
                        max_artifacts_per_completion=config.max_artifacts_per_completion,
                        max_completion_bytes=config.max_completion_bytes)


def storage(config: StorageConfig) -> Storage:
    """The boards' storage (the DSN was read from ``storage.dsn_env`` at load time)."""
    if config.backend == "postgresql" and config.dsn:
        return Storage.postgres(config.dsn, namespace=config.namespace)
    return Storage()


def dispatch_settings(config: KanbanConfig) -> DispatchSettings:
    from kanban.runtime import DispatchSettings

    return DispatchSettings(
        max_spawn=config.max_spawn,
        max_spawn_host=config.max_spawn_host,
        interval_seconds=config.dispatch_interval_seconds,
        claim_ttl_seconds=config.claim_ttl_seconds,
        default_assignee=config.default_assignee,
        orchestrator_profile=config.orchestrator_profile,
        host_labels=config.host_labels,
    )


def llm_endpoint(slot: str, aux: AuxSlot) -> LLMEndpoint:
    """One ``auxiliary.<slot>`` block as the kernel's endpoint value."""
    from kanban.agents import LLMEndpoint

    return LLMEndpoint(slot=slot, base_url=aux.base_url, model=aux.model, api_key=aux.api_key,
                       timeout=aux.timeout, retries=aux.retries)


def decompose_settings(config: Config) -> DecomposeSettings:
    from kanban.agents import DECOMPOSER_SLOT, DecomposeSettings

    k = config.kanban
    return DecomposeSettings(
        auto_decompose=k.auto_decompose,
        per_tick=k.auto_decompose_per_tick,
        auto_promote_children=k.auto_promote_children,
        orchestrator_profile=k.orchestrator_profile,
        default_assignee=k.default_assignee,
        max_fanout=k.max_fanout,
        cooldown_seconds=k.decompose_cooldown_seconds,
        endpoint=llm_endpoint(DECOMPOSER_SLOT, config.auxiliary.kanban_decomposer),
    )
