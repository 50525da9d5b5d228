"""``relayboard security audit [--json] [--fix]``: the installation's risks, each with its fix;
exit code 1 on any high-severity finding (see :mod:`gateway.audit`)."""

from __future__ import annotations

import asyncio
import json

import click

from gateway.cli.invocation import app_of, only_errors_logged


@click.group(help="Security checks of this installation.")
def security() -> None:
    pass


@security.command(help="List the risks of this installation (config, profiles, file modes, "
                       "sandbox, PostgreSQL role), each with its fix. Exit 1 on any high one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option("--fix", is_flag=True,
              help="Take group and other permissions off the home's files first, and say so.")
@click.pass_context
def audit(ctx: click.Context, as_json: bool, fix: bool) -> None:
    from gateway.audit import audit as run_audit
    from gateway.audit import fix_modes

    app = app_of(ctx)
    with only_errors_logged():  # the config's warnings belong to `relayboard doctor`
        fixed = fix_modes(app.home, app.config_file, app.environ) if fix else []
        findings = asyncio.run(run_audit(app.home, app.config_file, app.environ))
    high = any(f.severity == "high" for f in findings)
    if as_json:
        click.echo(json.dumps({"ok": not high, "home": str(app.home),
                               "fixed": [{"path": str(t.path), "before": f"{t.before:04o}",
                                          "after": f"{t.after:04o}"} for t in fixed],
                               "findings": [f.to_dict() for f in findings]},
                              indent=2, ensure_ascii=False))
    else:
        for change in fixed:
            click.echo(f"fixed: {change.line()}")
        for finding in findings:
            click.echo(finding.line())
        counts = {s: sum(f.severity == s for f in findings) for s in ("high", "medium", "low")}
        click.echo("no findings" if not findings else
                   f"{counts['high']} high, {counts['medium']} medium, {counts['low']} low")
    if high:
        ctx.exit(1)
