"""The process entry point of ``relayboard`` and ``python -m gateway``.

It holds stop signals (:mod:`gateway.early_signals`) before the CLI is imported, so a SIGTERM at
any moment of the gateway's start ends it cleanly with exit code 0.
"""

from __future__ import annotations

from gateway import early_signals


def main() -> None:
    early_signals.hold()
    from gateway.cli import main as cli_main

    cli_main()
