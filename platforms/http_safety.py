"""What the dashboard's HTTP surface does with untrusted bytes, both directions.

Out: a file someone else made (a worker's artifact, a chat attachment) is served so that it can
never run in the dashboard's origin. An SVG or HTML file opened from the dashboard would
otherwise be a page of the dashboard: its script could call the API as the operator, and a
second artifact loaded with ``<script src>`` passes the page's ``script-src 'self'``. So every
file response carries

* ``Content-Disposition: attachment`` unless it is a raster image (PNG, JPEG, GIF, WebP), judged
  by its extension *and* its first bytes, so a script renamed ``chart.png`` is still a download;
* ``X-Content-Type-Options: nosniff``, so the browser keeps the declared type;
* ``Content-Security-Policy: sandbox; default-src 'none'``: even when shown, the document gets a
  unique opaque origin and no script, form, plugin or fetch.

In: a request body is read through :func:`read_body`, which refuses a declared length over the
cap before reading anything and stops reading at the cap, so a 200 MB body costs at most the cap
in memory; :func:`parse_json` turns every malformed body (deep nesting included) into one
``ValueError``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request

from platforms.untrusted import clean_file_name

KiB = 1024
# Every JSON body the dashboard and the web chat accept. The largest field the board takes is a
# text of 1,000,000 bytes (a task body, a result); JSON escaping can double that (every newline
# is two characters), so 4 MiB lets any valid request through and nothing much larger.
JSON_BODY_LIMIT = 4 * 1024 * KiB
SANDBOX_CSP = "sandbox; default-src 'none'"

# Raster formats a browser shows in <img> and that carry no script. SVG is an XML document
# (script, links, foreign objects) and is never among them.
RASTER_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
                "gif": "image/gif", "webp": "image/webp"}
SNIFF_BYTES = 12


def raster_by_name(name: str) -> bool:
    """Whether ``name`` has a raster image extension (what the page may put in ``<img>``)."""
    return Path(name).suffix.lower().lstrip(".") in RASTER_TYPES


def raster_type(name: str, head: bytes) -> str | None:
    """The image type when ``name``'s extension and the file's first bytes agree on a raster
    format, else None (the file is then served as a download)."""
    declared = RASTER_TYPES.get(Path(name).suffix.lower().lstrip("."))
    if declared is None:
        return None
    sniffed = _sniff(head)
    return declared if sniffed == declared else None


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def file_headers(name: str, *, inline: bool) -> dict[str, str]:
    """The headers of every file response (``inline`` only for a sniffed raster image)."""
    shown = clean_file_name(name)
    # The plain filename= for old clients: ASCII, no quote; filename*= carries the real name.
    ascii_name = re.sub(r'[^\x20-\x7e]|["\\]', "_", shown)
    disposition = "inline" if inline else "attachment"
    return {
        "Content-Disposition": f"{disposition}; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{quote(shown, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX_CSP,
    }


def media_type(name: str, head: bytes, *, inline: bool) -> str:
    """An image type for an inline raster image; every download is plain bytes to the browser,
    so no declared type can make it render (or run) in a tab."""
    if inline:
        return raster_type(name, head) or "application/octet-stream"
    return "application/octet-stream"


def file_response(name: str, head: bytes, *, download: bool) -> tuple[str, dict[str, str]]:
    """(media type, headers) of one file response: shown inline only when it is a raster image
    by name and first bytes and the viewer did not ask for a download; otherwise a download."""
    inline = not download and raster_type(name, head) is not None
    return media_type(name, head, inline=inline), file_headers(name, inline=inline)


class BodyTooLarge(Exception):
    """A request body over the cap (one line for the person; answer 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk and never past ``limit`` bytes.

    Raises :class:`BodyTooLarge` as soon as a declared ``Content-Length`` or the bytes received
    exceed ``limit``; the rest of the body is never read (the server drops it with the
    connection), so memory stays bounded by the cap however large the upload."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise BodyTooLarge(limit)
    return bytes(data)


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON; every malformed body — bad UTF-8, bad syntax, nesting deep enough to
    exhaust the parser's recursion — is one ``ValueError``."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the request body must be JSON") from exc
