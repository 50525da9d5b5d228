"""Built-in demo workers, so a first run shows the product with no LLM account or agent CLI.

``EXAMPLES`` maps a kind to the profile fields it needs; ``relayboard profile example NAME --kind
chart`` (or ``profile create NAME --example chart``) writes such a profile, whose command runs
``relayboard example chart`` — found on the worker's PATH like every ``relayboard`` a worker runs.
"""

from __future__ import annotations

from typing import Any

from kanban.agents.profiles import Profile, Profiles
from kanban.errors import InvalidInput

EXAMPLES: dict[str, dict[str, Any]] = {
    "chart": {
        "description": "Draws charts: reads numbers from the task (or an attached CSV) and "
                       "delivers a PNG chart and the data as CSV. Good for sales figures, "
                       "metrics and any list of numbers.",
        "command": "relayboard example chart",
    },
}


def example_fields(kind: str) -> dict[str, Any]:
    try:
        fields = dict(EXAMPLES[kind])
    except KeyError:
        raise InvalidInput(f"unknown example {kind!r} (known: {', '.join(sorted(EXAMPLES))})"
                           ) from None
    fields["description_auto"] = False
    return fields


def create_example_profile(profiles: Profiles, name: str, kind: str) -> Profile:
    """Create profile ``name`` running the built-in ``kind`` worker."""
    return profiles.create(name, **example_fields(kind))
