"""``relayboard profile …``: create, list, show and describe worker profiles."""

from __future__ import annotations

import asyncio

import click
from rich.markup import escape
from rich.table import Table

from gateway.cli.invocation import app_of, console, emit_json, json_option
from gateway.kernel_settings import llm_endpoint
from kanban.agents import DESCRIBER_SLOT, DescribeOutcome, Profile, describe_profiles
from kanban.errors import InvalidInput, KanbanError


@click.group()
def profile() -> None:
    """Manage worker profiles (the roster of agents)."""


@profile.command("create")
@click.argument("name")
@click.option("--description", default=None, help="What this profile is good at (routing uses it).")
@click.option("--command", "command", default=None,
              help="Worker argv template, one string split like a shell. {task_id} {board} "
              "{workspace} {prompt_file} {model} go in as they are when they are a whole word "
              "(or --flag={x}); inside a larger word such as an sh -c script, only plain values "
              "are (read \"$RELAYBOARD_WORKSPACE\" … there instead).")
@click.option("--model", default=None, help="Model for the built-in worker.")
@click.option("--example", type=click.Choice(["chart"]), default=None,
              help="Run a built-in demo worker (no LLM or agent CLI needed): `chart` draws a PNG "
              "chart and a CSV from the numbers in the task.")
@json_option
@click.pass_context
def create(ctx: click.Context, name: str, description: str | None, command: str | None,
           model: str | None, example: str | None, as_json: bool) -> None:
    """Create profile NAME."""
    fields: dict[str, object] = {}
    if example is not None:
        from gateway.examples import example_fields

        fields.update(example_fields(example))  # explicit --description/--command still win
    if description is not None:
        fields["description"] = description.strip()
        fields["description_auto"] = False
    if command is not None:
        fields["command"] = command
    if model is not None:
        fields["model"] = model
    app = app_of(ctx)
    # A profile's command runs on this host for every task assigned to it: the operator's only.
    app.require_operator("create profiles")
    made = app.profiles().create(name, **fields)
    if as_json:
        emit_json(_public(made))
    else:
        click.echo(f"created profile {made.name} at {made.home}")


@profile.command("list")
@json_option
@click.pass_context
def list_profiles(ctx: click.Context, as_json: bool) -> None:
    """List profiles with their descriptions."""
    profiles = app_of(ctx).profiles().list()
    if as_json:
        emit_json([_public(p) for p in profiles])
        return
    if not profiles:
        click.echo("no profiles (create one with `relayboard profile create NAME`)")
        return
    table = Table("name", "model", "skills", "description")
    for p in profiles:
        table.add_row(p.name, escape(p.model or "-"),
                      str(len(p.skills or p.installed_skills())), escape(_description_cell(p)))
    console().print(table)


@profile.command("show")
@click.argument("name")
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one profile."""
    p = app_of(ctx).profiles().require(name)
    if as_json:
        emit_json(_public(p))
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("name", p.name), ("home", str(p.home)), ("description", _description_cell(p)),
        ("model", p.model or "-"), ("base_url", p.base_url or "-"),
        ("api_key_env", p.api_key_env or "-"),
        ("command", _command_cell(p)),
        ("skills", ", ".join(p.skills or p.installed_skills()) or "-"),
        ("toolsets", ", ".join(p.toolsets) or "-"),
        ("env", ", ".join(sorted(p.env)) or "-"),  # names only: values may be secrets
    ]
    if p.problem:
        rows.append(("problem", p.problem))
    for key, value in rows:
        table.add_row(key, escape(value))
    console().print(table)


@profile.command("describe")
@click.argument("name", required=False)
@click.option("--text", default=None, help="Set a description written by you.")
@click.option("--auto", "auto", is_flag=True,
              help="Generate a 1-2 sentence description with auxiliary.profile_describer.")
@click.option("--all", "all_profiles", is_flag=True, help="Every profile (with --auto).")
@click.option("--overwrite", is_flag=True,
              help="Let --auto replace a description a person wrote.")
@json_option
@click.pass_context
def describe(ctx: click.Context, name: str | None, text: str | None, auto: bool,
             all_profiles: bool, overwrite: bool, as_json: bool) -> None:
    """Show, set (--text) or generate (--auto) profile descriptions."""
    if text is not None and auto:
        raise InvalidInput("use either --text or --auto, not both")
    if all_profiles and name:
        raise InvalidInput("give a profile NAME or --all, not both")
    if all_profiles and text is not None:
        raise InvalidInput("--text sets one profile's description; name the profile")
    if not name and not all_profiles:
        raise InvalidInput("name a profile, or use --all")
    app = app_of(ctx)
    if text is not None or auto:
        app.require_operator("change profile descriptions")
    profiles = app.profiles()
    names = profiles.names() if all_profiles else [str(name)]
    if not all_profiles:
        profiles.require(str(name))
    if text is None and not auto:  # read-only
        shown = [profiles.load(n) for n in names]
        if as_json:
            emit_json([{"name": p.name, "description": p.description,
                        "description_auto": p.description_auto} for p in shown])
        else:
            for p in shown:
                click.echo(f"{p.name}: {_description_cell(p)}")
        return
    endpoint = llm_endpoint(DESCRIBER_SLOT, app.config.auxiliary.profile_describer)
    outcomes = asyncio.run(describe_profiles(
        profiles, names, text=text, endpoint=endpoint, overwrite=overwrite))
    if not as_json and not all_profiles and outcomes[0].action == "failed":
        raise KanbanError(outcomes[0].reason or "describing failed")  # one "error:" line
    _report(outcomes, as_json)
    if any(o.action == "failed" for o in outcomes):
        ctx.exit(1)


def _report(outcomes: list[DescribeOutcome], as_json: bool) -> None:
    if as_json:
        emit_json([o.to_dict() for o in outcomes])
        return
    for o in outcomes:
        if o.action == "failed":
            click.echo(f"{o.name}: failed: {o.reason}", err=True)
        elif o.action == "skipped":
            click.echo(f"{o.name}: kept: {o.reason}")
        else:
            tag = " (auto)" if o.auto else ""
            click.echo(f"{o.name}: {o.description}{tag}")


REDACTED = "***"


def _public(p: Profile) -> dict[str, object]:
    """A profile as JSON without secret values: ``env`` entries may hold tokens, so only their
    names are shown (each value is replaced by ``***``)."""
    data = p.to_dict()
    data["env"] = {name: REDACTED for name in sorted(p.env)}
    return data


def _command_cell(p: Profile) -> str:
    # An unreadable file is not an empty one: never claim the built-in worker would run.
    if p.unreadable is not None:
        return "(unknown: the profile is unreadable)"
    return " ".join(p.command) if p.command else "(built-in worker)"


def _description_cell(p: Profile) -> str:
    text = p.description + (" (auto)" if p.description_auto else "") or "(undescribed)"
    return f"{text}  [problem: {p.problem}]" if p.problem else text


def _register_example() -> None:
    # `profile example NAME --kind chart` lives with the demo machinery; it imports nothing heavy.
    from gateway.cli.example import profile_example

    profile.add_command(profile_example, "example")


_register_example()
