"""Composition root: the daemon, watchers, notifier, chat router, dashboard and the root CLI."""

__version__ = "0.1.0"
