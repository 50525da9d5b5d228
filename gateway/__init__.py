"""Composition root: the daemon, watchers, notifier, chat router, dashboard and the root CLI."""

from __future__ import annotations

from functools import cache

DISTRIBUTION = "relayboard"


@cache
def version() -> str:
    """The installed distribution's version (``relayboard --version``); read when asked, since
    looking up distribution metadata costs start-up time every command would pay."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
