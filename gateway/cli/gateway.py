"""``relayboard gateway run [--config FILE]``: the daemon (see :mod:`gateway.daemon`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli.invocation import AppContext, app_of
from gateway.daemon import LockHeld, run_gateway, setup_logging


@click.group()
def gateway() -> None:
    """The gateway daemon: platforms, dispatcher and notifier in one process."""


@gateway.command("run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: the root --config, else <home>/config.yaml).")
@click.pass_context
def run(ctx: click.Context, config_file: str | None) -> None:
    """Run until SIGINT/SIGTERM (a second signal exits at once). Workers keep running."""
    app = app_of(ctx)
    if config_file:
        app = AppContext(home=app.home, config_file=Path(config_file), environ=app.environ)
    setup_logging(())  # before the config loads, so its warnings go through the same handler
    try:
        code = run_gateway(app.config, app.environ, config_file=app.config_file)
    except LockHeld as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)
