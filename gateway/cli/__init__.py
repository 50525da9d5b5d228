"""The ``relayboard`` command line: a thin renderer over :mod:`gateway.commands`."""

from gateway.cli.main import cli, main

__all__ = ["cli", "main"]
