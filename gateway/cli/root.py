"""The root CLI: ``relayboard [--home DIR] [--config FILE] <group> …`` (also ``python -m gateway``).

Every verb takes ``--json``. Any :class:`~kanban.errors.KanbanError` or
:class:`~gateway.errors.GatewayError` becomes one ``error: …`` line on stderr and exit code 1;
usage errors (a bad option value, a missing argument, on any verb) are one ``error: …`` line too,
with exit code 2 (click's convention). Groups are imported when used, so ``kanban create``
does not pay for the profile describer's imports.
"""

from __future__ import annotations

import importlib
import sys

import click

from gateway import DISTRIBUTION, early_signals
from gateway.cli.invocation import AppContext, OneLineUsageGroup, fail_cleanly

_GROUPS = {
    "dashboard": "gateway.cli.dashboard",
    "doctor": "gateway.cli.doctor",
    "example": "gateway.cli.example",
    "gateway": "gateway.cli.gateway",
    "kanban": "gateway.cli.kanban",
    "mcp": "gateway.cli.mcp",
    "pairing": "gateway.cli.pairing",
    "profile": "gateway.cli.profile",
    "security": "gateway.cli.security",
    "worker": "gateway.cli.worker",
}


class _LazyRoot(OneLineUsageGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _GROUPS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            command = getattr(importlib.import_module(module), cmd_name)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyRoot, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, prog_name="relayboard",
                      message="%(prog)s %(version)s")
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Relayboard home (default: $RELAYBOARD_HOME, else ~/.relayboard).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: <home>/config.yaml).")
@click.pass_context
def cli(ctx: click.Context, home: str | None, config_file: str | None) -> None:
    """Relayboard: a chat gateway with a durable multi-agent kanban board."""
    if ctx.invoked_subcommand != "gateway":
        # Only the daemon turns a stop signal during start-up into a clean stop; every other
        # command gets the default actions back (and dies of a signal that came meanwhile).
        early_signals.release()
    ctx.obj = AppContext.create(home, config_file)


def main(argv: list[str] | None = None) -> None:
    try:
        with fail_cleanly():
            cli.main(args=argv, prog_name="relayboard", standalone_mode=True)
    finally:
        early_signals.release()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
