"""Attacks on what the dashboard serves and reads, performed against the real app in process
(httpx ASGITransport): active files (SVG, a script renamed ``.png``) must come back as sandboxed
downloads, and oversized or deeply nested bodies must be refused without being buffered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.config import load_config
from gateway.dashboard import create_app
from kanban import Board
from platforms.base import Destination, InboundMessage
from platforms.http_safety import JSON_BODY_LIMIT
from platforms.web import WebAdapter

ORIGIN = "http://127.0.0.1:8765"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
EVIL_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg"><script>'
            b'fetch("/api/tasks",{method:"POST",body:JSON.stringify({title:"pwned"})})'
            b"</script></svg>")
UPLOAD_LIMIT = 256 * 1024
DEST = Destination("web", "dashboard", "main")


@dataclass
class Site:
    app: Starlette
    client: httpx.AsyncClient
    web: WebAdapter

    async def board(self) -> Board:
        board: Board = await self.app.state.dashboard.boards.open("default")
        return board


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    home = tmp_path / "home"
    home.mkdir()
    web = WebAdapter(history_dir=home / "web-chat", max_bytes=UPLOAD_LIMIT)
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize=10)
    await web.start(inbox)
    app = create_app(home, load_config(None, {}, home=home), web_adapter=web)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN,
                                     headers={"Origin": ORIGIN}) as client:
            yield Site(app, client, web)


def assert_sandboxed_download(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "application/octet-stream"
    policies = response.headers.get_list("content-security-policy")
    assert any(p.startswith("sandbox") and "default-src 'none'" in p for p in policies), policies


def assert_sandboxed_image(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("inline;")
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    policies = response.headers.get_list("content-security-policy")
    assert any(p.startswith("sandbox") for p in policies), policies


async def completed_with(site: Site, files: dict[str, bytes]) -> dict[str, Any]:
    """A done task whose artifacts are ``files`` (written in its workspace); its detail JSON."""
    board = await site.board()
    task = (await board.create_task("chart")).task
    claim = await board.claim(task.id)
    workspace = board.workspaces_dir / str(task.id)
    workspace.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (workspace / name).write_bytes(data)
    await board.complete(task.id, lease=claim.lease,
                         artifacts=[str(workspace / name) for name in files])
    response = await site.client.get(f"/api/tasks/{task.id}")
    assert response.status_code == 200
    detail: dict[str, Any] = response.json()
    return detail


# ---- A: active content -------------------------------------------------------------------------

async def test_an_svg_artifact_is_a_sandboxed_download_and_never_an_image(site: Site) -> None:
    detail = await completed_with(site, {"evil.svg": EVIL_SVG, "fake.png": EVIL_SVG,
                                         "page.html": b"<script>alert(1)</script>",
                                         "chart.png": PNG})
    files = {f["name"]: f for f in detail["artifacts"]}
    assert files["evil.svg"]["kind"] == "file"  # the page offers a link, never an <img>
    assert files["chart.png"]["kind"] == "image"
    for name in ("evil.svg", "fake.png", "page.html"):
        got = await site.client.get(files[name]["url"])
        assert got.content.startswith(b"<")
        assert_sandboxed_download(got)
    assert_sandboxed_image(await site.client.get(files["chart.png"]["url"]))
    assert_sandboxed_download(await site.client.get(files["chart.png"]["url"] + "?download=1"))


async def test_an_svg_sent_to_the_web_chat_is_a_sandboxed_download(site: Site,
                                                                   tmp_path: Path) -> None:
    svg = tmp_path / "evil.svg"
    svg.write_bytes(EVIL_SVG)
    renamed = tmp_path / "chart.png"
    renamed.write_bytes(EVIL_SVG)
    real = tmp_path / "real.png"
    real.write_bytes(PNG)
    # An adapter asked to send an SVG "as an image" (the kind table calls SVG an image).
    receipts = await site.web.send_multiple_images(DEST, [svg, renamed, real])
    assert all(r.ok for r in receipts)
    [message] = (await site.client.get("/chat/messages?thread=main")).json()["messages"]
    files = {f["name"]: f for f in message["files"]}
    assert files["evil.svg"]["kind"] == "document"
    for name in ("evil.svg", "chart.png"):
        assert_sandboxed_download(await site.client.get("/chat/" + files[name]["url"]))
    assert_sandboxed_image(await site.client.get("/chat/" + files["real.png"]["url"]))
    upload = await site.client.post("/chat/upload?name=up.svg", content=EVIL_SVG)
    assert upload.status_code == 201 and upload.json()["kind"] != "image"
    ref = upload.json()["ref"]
    assert_sandboxed_download(await site.client.get(f"/chat/files/{ref}/up.svg"))


async def test_an_old_history_record_of_an_svg_image_is_still_a_download(
    site: Site, tmp_path: Path,
) -> None:
    svg = tmp_path / "old.svg"
    svg.write_bytes(EVIL_SVG)
    await site.web.send_document(DEST, svg)
    [message] = site.web.messages("main")
    [kept] = message.files
    # What a history file written before this fix says: an SVG filed as an image.
    site.web._files[kept.id] = type(kept)(kept.id, kept.name, "image", kept.size, kept.path)
    assert site.web._files[kept.id].public()["kind"] == "document"
    assert_sandboxed_download(await site.client.get(f"/chat/files/{kept.id}/{kept.name}"))


# ---- D: request bodies --------------------------------------------------------------------------

class Counted:
    """A streamed request body of ``total`` bytes that counts what the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        block = b" " * self.chunk
        while self.sent < self.total:
            self.sent += len(block)
            yield block


BODY_ROUTES = [("POST", "/api/tasks"), ("POST", "/api/boards"), ("PUT", "/api/orchestration"),
               ("PATCH", "/api/profiles/nobody"), ("POST", "/chat/messages")]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_200_mb_body_is_refused_without_being_read(site: Site, method: str,
                                                            path: str) -> None:
    body = Counted(200 * 1024 * 1024)
    response = await site.client.request(method, path, content=body.__aiter__())
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["error"]
    assert body.sent <= JSON_BODY_LIMIT + 2 * body.chunk  # stopped at the cap, not at 200 MB


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_declared_oversize_body_is_refused_before_reading(site: Site, method: str,
                                                                  path: str) -> None:
    body = Counted(JSON_BODY_LIMIT + 1)
    response = await site.client.request(
        method, path, content=body.__aiter__(),
        headers={"Content-Length": str(JSON_BODY_LIMIT + 1)})
    assert response.status_code == 413, response.text
    assert body.sent == 0


async def test_an_oversize_upload_stops_at_the_attachment_cap(site: Site) -> None:
    body = Counted(200 * 1024 * 1024)
    response = await site.client.post("/chat/upload?name=big.bin", content=body.__aiter__())
    assert response.status_code == 413
    assert body.sent <= UPLOAD_LIMIT + 2 * body.chunk


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_deeply_nested_json_is_a_one_line_400(site: Site, method: str, path: str) -> None:
    depth = 200_000
    response = await site.client.request(method, path,
                                         content=b"[" * depth + b"]" * depth)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "\n" not in error and "Traceback" not in response.text


async def test_a_body_under_the_cap_still_works(site: Site) -> None:
    # Just under the board's text limit, and over 1 MiB once JSON escapes the newlines.
    body = "line\n" * 199_000
    response = await site.client.post("/api/tasks", json={"title": "x" * 500, "body": body})
    assert response.status_code == 201, response.text
