"""The ``relayboard`` command line: a thin renderer over :mod:`gateway.commands`."""

from gateway.cli.root import cli, main

__all__ = ["cli", "main"]
