"""Sending a reply: the text, then the local files it mentions as native attachments.

Files are found by the adapter's ``extract_local_files`` (absolute and ``~/`` paths), plus paths
in backticks — agents put paths there — when the file exists. Every file then passes the
delivery policy (allowed roots, denied credential folders, size caps) before anything is sent; a
refused file is named, by file name only, in one line after the text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from gateway.notifier import refusal_line
from platforms.base import Destination, PlatformAdapter
from platforms.delivery import DeliveryPolicy, deliver_files
from platforms.receipts import Receipt

log = logging.getLogger(__name__)

_BACKTICKED = re.compile(r"`([^`\n]{2,1024})`")


def backticked_files(text: str, policy: DeliveryPolicy) -> list[Path]:
    """Paths in backticks that exist and that the policy lets go (others are left as text)."""
    out: list[Path] = []
    for match in _BACKTICKED.finditer(text):
        raw = match.group(1).strip()
        if not (raw.startswith("/") or raw.startswith("~/")):
            continue
        path = Path(raw).expanduser()
        if isinstance(policy.check(path), Path):
            out.append(path)
    return out


async def send_reply(adapter: PlatformAdapter, dest: Destination, text: str,
                     policy: DeliveryPolicy | None) -> list[Receipt]:
    """Send ``text`` (and, with a policy, the files it names) to ``dest``."""
    files: list[Path] = []
    body = text
    if policy is not None:
        found, cleaned = adapter.extract_local_files(text)
        quoted = await asyncio.to_thread(backticked_files, text, policy)
        files = list(dict.fromkeys([*found, *quoted]))
        if found:
            body = cleaned
    receipts: list[Receipt] = []
    if body.strip() or not files:
        receipt = await adapter.send(dest, body.strip() or "(empty answer)")
        receipts.append(receipt)
        if not receipt.ok:
            log.warning("%s: reply not delivered: %s", adapter.name, receipt.reason,
                        extra={"platform": dest.platform})
    if files and policy is not None:
        sent = await deliver_files(adapter, dest, files, policy=policy)
        receipts.extend(sent)
        refused = [r for r in sent if not r.ok]
        if refused:
            line = refusal_line(refused)
            if line:
                await adapter.send(dest, line)
    return receipts
