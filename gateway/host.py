"""Facts of the host the configuration leaves open: the home folder and the local time zone.

Standard library only (tzlocal on demand): the CLI reads these before it knows whether it
needs the config's schema at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "RELAYBOARD_HOME"


def resolve_home(cli_home: str | Path | None, environ: Mapping[str, str]) -> Path:
    """``--home DIR`` > ``$RELAYBOARD_HOME`` > ``~/.relayboard``, made absolute."""
    if cli_home:
        return Path(cli_home).expanduser().resolve()
    if environ.get(HOME_ENV):
        return Path(environ[HOME_ENV]).expanduser().resolve()
    return (Path(environ.get("HOME", str(Path.home()))) / ".relayboard").resolve()


def local_zone(configured: str | None) -> str:
    """``configured`` (``kanban.timezone``), or the host's zone (``UTC`` when it names none)."""
    if configured:
        return configured
    import tzlocal

    try:
        return tzlocal.get_localzone_name() or "UTC"
    except (OSError, LookupError, ValueError):  # an unreadable or odd /etc/localtime
        return "UTC"
