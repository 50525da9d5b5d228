"""``relayboard pairing list | approve CODE [--admin] | deny CODE`` (each with ``--json``): the
operator's answer to strangers who asked for access on a ``dm_policy: pairing`` platform (see
:mod:`gateway.chat.pairing`).

``approve`` adds the user id to ``platforms.<name>.allowed_users`` (``admins`` with ``--admin``)
in config.yaml, rewritten round-trip with its comments kept, and records the approval in the home,
where the running gateway reads it: the user is served from their next message, no restart.
"""

from __future__ import annotations

import json

import click

from gateway.cli.invocation import app_of


@click.group(help="Approve or deny strangers who asked for access with a pairing code.")
def pairing() -> None:
    pass


@pairing.command("list", help="The pairing requests waiting (expired ones are dropped).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    from gateway.chat.pairing import PairingStore

    store = PairingStore(app_of(ctx).home)
    items = store.pending()
    now = store.clock()
    if as_json:
        click.echo(json.dumps({"pending": [p.to_dict(now) for p in items]}, indent=2,
                              ensure_ascii=False))
        return
    if not items:
        click.echo("no pairing requests waiting")
        return
    click.echo(f"{'PLATFORM':<10} {'CODE':<9} {'USER ID':<20} {'NAME':<20} {'AGE':>6} "
               f"{'EXPIRES':>8}")
    for p in items:
        click.echo(f"{p.platform:<10} {p.code:<9} {p.user_id:<20} {p.user_name or '-':<20} "
                   f"{_minutes(now - p.created):>6} {'in ' + _minutes(p.expires - now):>8}")


@pairing.command(help="Let the user who got CODE in: add them to platforms.<name>.allowed_users "
                      "(admins with --admin) in config.yaml.")
@click.argument("code")
@click.option("--admin", is_flag=True, help="Add them to admins (the operator's rights in chat).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.pass_context
def approve(ctx: click.Context, code: str, admin: bool, as_json: bool) -> None:
    from gateway.chat.pairing import PairingStore
    from gateway.chat.pairing_admin import approve as approve_code

    app = app_of(ctx)
    store = PairingStore(app.home)
    done = approve_code(store, app.config_file or app.home / "config.yaml", code, admin=admin)
    if as_json:
        click.echo(json.dumps(done.to_dict(store.clock()), indent=2, ensure_ascii=False))
    else:
        click.echo(done.line())


@pairing.command(help="Refuse the request of the user who got CODE (they may ask again later).")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.pass_context
def deny(ctx: click.Context, code: str, as_json: bool) -> None:
    from gateway.chat.pairing import PairingStore

    store = PairingStore(app_of(ctx).home)
    item = store.deny(code)
    if as_json:
        click.echo(json.dumps({"denied": item.to_dict(store.clock())}, indent=2,
                              ensure_ascii=False))
        return
    click.echo(f"denied {item.platform} user {item.user_id} (code {item.code})")


def _minutes(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
