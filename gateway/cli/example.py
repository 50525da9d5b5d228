"""The built-in demo workers: ``relayboard example chart`` (what the dispatcher runs for a demo
profile) and ``relayboard profile example NAME --kind chart`` (makes such a profile; no LLM
needed)."""

from __future__ import annotations

import os
import sys

import click

from gateway.cli.invocation import app_of, emit_json, json_option
from gateway.examples import EXAMPLES, create_example_profile


@click.group("example")
def example() -> None:
    """Built-in demo workers (run by the dispatcher, not by hand)."""


@example.command("chart")
def example_chart() -> None:
    """Chart the task's numbers (or sample sales) as PNG + CSV and complete it."""
    from gateway.examples.chart import main as chart_main

    # A worker-side helper reads the RELAYBOARD_* worker variables (allowed at this edge).
    sys.exit(chart_main(dict(os.environ)))


@click.command("example")
@click.argument("name")
@click.option("--kind", type=click.Choice(sorted(EXAMPLES)), default="chart", show_default=True,
              help="Which built-in demo worker the profile runs.")
@json_option
@click.pass_context
def profile_example(ctx: click.Context, name: str, kind: str, as_json: bool) -> None:
    """Create profile NAME that runs a built-in demo worker (no LLM needed)."""
    made = create_example_profile(app_of(ctx).profiles(), name, kind)
    if as_json:
        emit_json(made.to_dict())
    else:
        click.echo(f"created profile {made.name} ({kind} demo worker) at {made.home}")
