"""The notifier: subscribed task events → chat messages with their files, through the outbox."""

from gateway.notifier.format import headline, refusal_line, render
from gateway.notifier.outgoing_files import (
    artifact_paths,
    build_policy,
    policy_for_roots,
    screen,
    task_roots,
)
from gateway.notifier.pump import DeliverySettings, Notifier, NotifierSettings

__all__ = [
    "DeliverySettings",
    "Notifier",
    "NotifierSettings",
    "artifact_paths",
    "build_policy",
    "headline",
    "policy_for_roots",
    "refusal_line",
    "render",
    "screen",
    "task_roots",
]
