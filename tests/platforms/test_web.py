"""The web chat adapter: the platform contract, its HTTP sub-app, files and bounded history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from platforms.base import Destination, InboundMessage
from platforms.receipts import ReceiptStatus
from platforms.registry import create_adapter
from platforms.web import WebAdapter

DEST = Destination("web", "dashboard", "main")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


Web = tuple[WebAdapter, "asyncio.Queue[InboundMessage]"]


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Web]:
    adapter = WebAdapter(history_dir=tmp_path / "history")
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize=4)
    await adapter.start(inbox)
    yield adapter, inbox
    await adapter.close()


def client_for(adapter: WebAdapter) -> httpx.AsyncClient:
    app = Starlette(routes=[Mount("/chat", adapter.asgi_app())])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_registry_builds_the_web_adapter(tmp_path: Path) -> None:
    adapter = create_adapter("web", allowed_users=["web"], history_dir=tmp_path)
    assert isinstance(adapter, WebAdapter) and adapter.name == "web"


async def test_a_typed_message_reaches_the_inbox(web: Web) -> None:
    adapter, inbox = web
    async with client_for(adapter) as client:
        response = await client.post("/chat/messages", json={"text": " /kanban list ",
                                                             "thread": "main"})
        assert response.status_code == 201
        stored = response.json()
    message = inbox.get_nowait()
    assert (message.platform, message.chat, message.thread, message.text) == (
        "web", "dashboard", "main", "/kanban list")
    assert message.message_id == stored["id"] and stored["role"] == "user"
    assert message.reply_destination() == DEST


async def test_bad_inbound_requests_are_refused(web: Web) -> None:
    adapter, inbox = web
    async with client_for(adapter) as client:
        for body in ({"text": ""}, {"text": "hi", "thread": "../etc"}, {"nope": 1}):
            response = await client.post("/chat/messages", json=body)
            assert response.status_code == 400, body
            assert response.json()["error"]
        for _ in range(4):
            assert (await client.post("/chat/messages", json={"text": "x"})).status_code == 201
        busy = await client.post("/chat/messages", json={"text": "one too many"})
        assert busy.status_code == 503 and "busy" in busy.json()["error"]
    assert inbox.qsize() == 4


async def test_sends_are_stored_per_thread_and_chunked(web: Web) -> None:
    adapter, _ = web
    adapter.text_length = 10
    receipt = await adapter.send(DEST, "0123456789 abcdefghij")
    assert receipt.ok and len(receipt.message_ids) == 2
    other = await adapter.send(Destination("web", "dashboard", "side"), "elsewhere")
    assert other.ok
    assert [m.text for m in adapter.messages("main")] == ["0123456789", "abcdefghij"]
    assert adapter.threads() == ["main", "side"]
    assert (await adapter.send(DEST, "")).status is ReceiptStatus.REJECTED
    bad = await adapter.send(Destination("web", "dashboard", "no/slashes"), "x")
    assert bad.status is ReceiptStatus.REJECTED


async def test_images_and_documents_are_served_only_when_sent(web: Web, tmp_path: Path) -> None:
    adapter, _ = web
    chart = tmp_path / "chart.png"
    chart.write_bytes(PNG)
    data = tmp_path / "data.csv"
    data.write_text("a,1\n", encoding="utf-8")
    never_sent = tmp_path / "secret.txt"
    never_sent.write_text("private", encoding="utf-8")
    receipts = await adapter.send_multiple_images(DEST, [chart], caption="Your chart")
    assert [r.ok for r in receipts] == [True]
    doc = await adapter.send_document(DEST, data)
    assert doc.ok and doc.name == "data.csv"
    missing = await adapter.send_document(DEST, tmp_path / "gone.pdf")
    assert missing.status is ReceiptStatus.REJECTED and str(tmp_path) not in (missing.reason or "")
    chart.unlink()  # the chat keeps its own copy: the picture outlives the workspace
    async with client_for(adapter) as client:
        listed = (await client.get("/chat/messages?thread=main")).json()["messages"]
        image_msg, doc_msg = listed
        assert image_msg["text"] == "Your chart" and image_msg["files"][0]["kind"] == "image"
        assert "path" not in image_msg["files"][0]
        image = await client.get("/chat/" + image_msg["files"][0]["url"])
        assert image.status_code == 200 and image.content == PNG
        assert image.headers["content-disposition"].startswith("inline")
        csv = await client.get("/chat/" + doc_msg["files"][0]["url"])
        assert csv.content == b"a,1\n"
        assert csv.headers["content-disposition"].startswith("attachment")
        file_id = image_msg["files"][0]["id"]
        assert (await client.get(f"/chat/files/{file_id}/secret.txt")).status_code == 404
        assert (await client.get("/chat/files/guess/secret.txt")).status_code == 404


async def test_history_survives_a_restart_and_stays_bounded(tmp_path: Path) -> None:
    history = tmp_path / "history"
    first = WebAdapter(history_dir=history, history_limit=5)
    await first.start(asyncio.Queue())
    chart = tmp_path / "chart.png"
    chart.write_bytes(PNG)
    await first.send_multiple_images(DEST, [chart])
    for index in range(12):
        await first.send(DEST, f"message {index}")
    await first.close()
    lines = (history / "main.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 10  # compacted at twice the limit
    second = WebAdapter(history_dir=history, history_limit=5)
    await second.start(asyncio.Queue())
    assert [m.text for m in second.messages("main")] == [f"message {i}" for i in range(7, 12)]
    assert not any((history / "files").iterdir())  # the dropped image's copy went with it
    receipt = await second.send(DEST, "next")
    assert int(receipt.message_ids[0]) > max(m.seq for m in second.messages("main")[:-1])
    json.loads(lines[-1])  # every line is one JSON record


async def test_stream_pushes_new_messages_and_resumes(tmp_path: Path) -> None:
    from tests.gateway.browser.harness import serve, sse

    adapter = WebAdapter(history_dir=tmp_path / "h")
    await adapter.start(asyncio.Queue())
    await adapter.send(DEST, "before")
    app = Starlette(routes=[Mount("/chat", adapter.asgi_app())])
    app.state.dashboard = _NoDashboard(adapter)
    async with serve(app) as served, httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        async with sse(client, "/chat/stream", {"Last-Event-ID": "0"}) as stream:
            first = await stream.next("message")
            assert first["data"]["text"] == "before"
            await adapter.send(DEST, "after")
            second = await stream.next("message")
            assert (second["data"]["text"], int(second["id"])) == ("after", int(first["id"]) + 1)
        async with sse(client, "/chat/stream", {"Last-Event-ID": second["id"]}) as resumed:
            await adapter.send(DEST, "only this")
            assert (await resumed.next("message"))["data"]["text"] == "only this"


class _NoDashboard:
    """What the test server's shutdown hook expects, for an app with only the chat mounted."""

    def __init__(self, adapter: WebAdapter) -> None:
        from gateway.dashboard.live import LiveHub

        self.live = LiveHub()
        self.web_adapter = adapter
