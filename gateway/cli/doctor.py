"""``relayboard doctor [--json]``: one line per check, ✓ / ⚠ / ✗ with the fix; exit code 1 when
any check fails (see :mod:`gateway.doctor`)."""

from __future__ import annotations

import asyncio
import json

import click

from gateway.cli.invocation import app_of, only_errors_logged


@click.command(help="Check this installation: config, tokens, platforms, dashboard port, "
                    "lock, boards, staging, sandbox, profiles, PostgreSQL. Exit 1 on any ✗.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option("--timeout", type=click.FloatRange(0.1, 120.0), default=10.0, show_default=True,
              help="Seconds each platform has to answer.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, timeout: float) -> None:
    from gateway.doctor import run_checks

    app = app_of(ctx)
    with only_errors_logged():  # the config's warnings are the config check's line
        checks = asyncio.run(run_checks(app.home, app.config_file, app.environ,
                                        platform_timeout=timeout))
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": not failed, "home": str(app.home),
                               "checks": [c.to_dict() for c in checks]},
                              indent=2, ensure_ascii=False))
    else:
        for check in checks:
            click.echo(check.line())
        counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "fail")}
        click.echo(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} "
                   "failure(s)")
    if failed:
        ctx.exit(1)
