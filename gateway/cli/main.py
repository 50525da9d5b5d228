"""The root CLI: ``relayboard [--home DIR] [--config FILE] <group> …`` (also ``python -m gateway``).

Every verb takes ``--json``. Any :class:`~kanban.errors.KanbanError` or
:class:`~gateway.config.ConfigError` becomes one ``error: …`` line on stderr and exit code 1;
usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import sys

import click

from gateway import __version__
from gateway.cli import dashboard as cli_dashboard
from gateway.cli import decompose as cli_decompose
from gateway.cli import dispatch as cli_dispatch
from gateway.cli import kanban as cli_kanban
from gateway.cli import profile as cli_profile
from gateway.cli.context import AppContext, fail_cleanly


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="relayboard")
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Relayboard home (default: $RELAYBOARD_HOME, else ~/.relayboard).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: <home>/config.yaml).")
@click.pass_context
def cli(ctx: click.Context, home: str | None, config_file: str | None) -> None:
    """Relayboard: a chat gateway with a durable multi-agent kanban board."""
    ctx.obj = AppContext.create(home, config_file)


cli.add_command(cli_kanban.kanban)
cli.add_command(cli_profile.profile)
cli_dispatch.register(cli_kanban.kanban)
cli_decompose.register(cli_kanban.kanban)
cli_dashboard.register(cli)


def main(argv: list[str] | None = None) -> None:
    with fail_cleanly():
        cli.main(args=argv, prog_name="relayboard", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
