"""Each enabled chat platform answers its "who am I" call through its real SDK, against its
configured ``base_url`` (Telegram ``getMe``, Slack ``auth.test``, Discord ``/users/@me``)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from gateway.config import Config
from gateway.doctor.local import EXTERNAL
from gateway.doctor.report import Check, fail, ok, one_line
from platforms.errors import AuthError, PlatformError

DEFAULT_BASES = {"telegram": "https://api.telegram.org/bot", "slack": "https://slack.com/api/",
                 "discord": "https://discord.com/api/v10"}


async def reachability_checks(config: Config, timeout: float) -> list[Check]:
    names = [n for n, p in sorted(config.platforms.items())
             if p.enabled and n in EXTERNAL and not p.missing_secrets()]
    return list(await asyncio.gather(*(_reach(config, n, timeout) for n in names)))


async def _reach(config: Config, name: str, timeout: float) -> Check:
    from gateway.daemon.adapters import adapter_options
    from platforms.registry import create_adapter

    platform = config.platforms[name]
    base = platform.base_url or DEFAULT_BASES[name]
    host = urlsplit(base).netloc or base
    check = f"reach:{name}"
    token_vars = ", ".join(sorted(platform.secret_vars.values()))
    try:
        adapter = create_adapter(name, **adapter_options(platform))
    except PlatformError as exc:
        return fail(check, one_line(exc), f"fix platforms.{name} in config.yaml")
    try:
        async with asyncio.timeout(timeout):
            who = await adapter.whoami()
    except AuthError as exc:
        return fail(check, f"{host} refused the token ({one_line(exc)})",
                    f"check {token_vars}: a revoked or mistyped token?")
    except PlatformError as exc:
        return fail(check, f"{host}: {one_line(exc)}",
                    f"check the network, a proxy, or platforms.{name}.base_url")
    except TimeoutError:
        return fail(check, f"{host} did not answer within {timeout:g} s",
                    f"check the network, a proxy, or platforms.{name}.base_url")
    finally:
        await adapter.close()
    return ok(check, f"{host} answers: {who}")
