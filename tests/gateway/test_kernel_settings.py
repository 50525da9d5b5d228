"""gateway.kernel_settings: the kernel's settings values carry what config.yaml says, under the
kernel's own names where they differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import kernel_settings
from gateway.config import ConfigError, load_config

CONFIG = """\
kanban:
  max_spawn: 7
  max_spawn_host: 3
  dispatch_interval_seconds: 2
  failure_limit: 5
  claim_ttl_seconds: 60
  auto_decompose: false
  auto_decompose_per_tick: 9
  auto_promote_children: false
  orchestrator_profile: lead
  default_assignee: helper
  max_fanout: 4
  decompose_cooldown_seconds: 11
  host_labels: [gpu]
  max_artifacts_per_completion: 3
  max_completion_bytes: 99
delivery: {max_attachment_bytes: 1234}
workers: {sandbox: required}
auxiliary:
  kanban_decomposer: {base_url: 'http://127.0.0.1:1/v1', model: m, api_key_env: KEY, timeout: 3,
                      retries: 1}
"""


def test_the_kernel_settings_carry_the_configured_values(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(CONFIG, encoding="utf-8")
    config = load_config(file, {"KEY": "k-1"}, home=tmp_path)

    board = kernel_settings.board_options(config.kanban, config.delivery)
    assert (board.failure_limit, board.claim_ttl_seconds) == (5, 60.0)
    assert board.max_artifact_bytes == 1234  # delivery.max_attachment_bytes
    assert (board.max_artifacts_per_completion, board.max_completion_bytes) == (3, 99)

    dispatch = kernel_settings.dispatch_settings(config.kanban, config.workers,
                                                 worker_api=tmp_path / "api.sock")
    assert (dispatch.sandbox, dispatch.worker_api) == ("required", tmp_path / "api.sock")
    assert (dispatch.max_spawn, dispatch.max_spawn_host, dispatch.interval_seconds,
            dispatch.claim_ttl_seconds) == (7, 3, 2.0, 60.0)
    assert (dispatch.orchestrator_profile, dispatch.default_assignee, dispatch.host_labels) == (
        "lead", "helper", ("gpu",))

    decompose = kernel_settings.decompose_settings(config)
    assert (decompose.auto_decompose, decompose.per_tick, decompose.auto_promote_children,
            decompose.max_fanout, decompose.cooldown_seconds) == (False, 9, False, 4, 11.0)
    assert (decompose.orchestrator_profile, decompose.default_assignee) == ("lead", "helper")
    endpoint = decompose.endpoint
    assert (endpoint.slot, endpoint.base_url, endpoint.model, endpoint.api_key, endpoint.timeout,
            endpoint.retries) == ("kanban_decomposer", "http://127.0.0.1:1/v1", "m", "k-1", 3.0, 1)


def test_without_a_config_the_kernel_gets_its_defaults(tmp_path: Path) -> None:
    from kanban import BoardOptions
    from kanban.agents import DecomposeSettings
    from kanban.runtime import DispatchSettings

    config = load_config(None, {}, home=tmp_path)
    board = kernel_settings.board_options(config.kanban)
    assert board.failure_limit == BoardOptions().failure_limit
    assert board.claim_ttl_seconds == BoardOptions().claim_ttl_seconds
    dispatch = kernel_settings.dispatch_settings(config.kanban)
    assert dispatch.max_spawn == DispatchSettings().max_spawn
    assert kernel_settings.decompose_settings(config).max_fanout == DecomposeSettings().max_fanout
    assert kernel_settings.storage(config.storage).is_postgres is False


def test_an_unquoted_off_turns_the_sandbox_off_and_other_yaml_booleans_are_refused(
        tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text("workers: {sandbox: off}\n", encoding="utf-8")  # YAML reads it as false
    assert load_config(file, {}, home=tmp_path).workers.sandbox == "off"
    file.write_text("workers: {sandbox: on}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="sandbox"):
        load_config(file, {}, home=tmp_path)
