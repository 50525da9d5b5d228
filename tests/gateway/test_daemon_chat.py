"""The daemon's chat wiring: the web chat through the router and the notifier, the dashboard
served beside it, and adapters that stop by themselves after connecting are started again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from platforms.base import AdapterState, Destination, InboundMessage
from platforms.errors import AuthError
from platforms.fake import FakeAdapter
from platforms.web import WebAdapter
from tests.gateway.chat_harness import make_reporter, truthy
from tests.gateway.test_daemon import running
from tests.kanban.workers.harness import wait_until


async def test_web_chat_create_is_answered_and_notified_in_the_same_thread(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    make_reporter(home, tmp_path / "scripts")
    async with running(home, "kanban: {auto_decompose: false}\ndashboard: {port: 0}\n", web=True,
                       dashboard=True) as daemon:
        web = daemon.web
        assert isinstance(web, WebAdapter)

        async def serving() -> str | None:
            return (await daemon.status())["dashboard"]

        url = await wait_until(serving, what="dashboard serving")
        async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=10) as http:
            session = (await http.get("/api/session")).json()
            assert session["chat"] is True
            upload = await http.post("/chat/upload", params={"name": "sales.csv"},
                                     content=b"month,sales\nJan,3\n")
            assert upload.status_code == 201
            posted = await http.post("/chat/messages", json={
                "thread": "main", "files": [upload.json()["ref"]],
                "text": "/kanban create Quarterly report --assignee reporter"})
            assert posted.status_code == 201

        async def delivered() -> set[str] | None:
            # The message comes first, then the files: wait for the last of them.
            names = {f.name for m in web.messages("main") for f in m.files}
            return names if {"chart.png", "report.pdf", "data.csv"} <= names else None

        names = await wait_until(delivered, within=60, what="completion in the web chat")
        assert "sales.csv" in names  # the user's upload, shown in their own message
        texts = [m.text for m in web.messages("main") if m.role == "bot"]
        assert texts[0].startswith("Created #1 Quarterly report")
        assert "Attached: sales.csv" in texts[0]
        assert any(t.startswith("✔ done · #1 Quarterly report") for t in texts)
        board = await daemon.boards.open("default")
        assert (board.attachments_path(1) / "sales.csv").read_bytes() == b"month,sales\nJan,3\n"
        status = await daemon.status()
        assert status["adapters"]["web"]["state"] == "connected"
        assert status["chat"] == {"handled": 1, "refusals": 0}


async def test_an_adapter_that_stops_after_connecting_is_started_again(tmp_path: Path) -> None:
    made: list[FakeAdapter] = []

    def factory() -> FakeAdapter:
        made.append(FakeAdapter(platform="fake", allowed_users=["u1"]))
        return made[-1]

    async with running(tmp_path / "home", "", {"fake": factory}) as daemon:
        await wait_until(lambda: truthy(made and made[0].started), what="first start")
        # What discord.py giving up looks like from outside: run() raises the mapped error.
        made[0].lose_connection(AuthError("gateway closed: 4004 authentication failed"))

        async def restarted() -> bool:
            return len(made) == 2 and made[1].started and made[0].closed

        await wait_until(restarted, what="a fresh adapter started")
        status = await daemon.status()
        assert status["adapters"]["fake"]["state"] == "connected"
        assert status["adapters"]["fake"]["attempts"] == 2
        # The new adapter is the one the router and the notifier use.
        await made[1].inject(chat="c", user_id="u1", text="/help")

        async def answered() -> Any:
            return made[1].texts

        assert (await wait_until(answered, what="help"))[0].startswith("Commands:")


async def test_the_web_adapter_streams_typing_and_refuses_unknown_uploads(
    tmp_path: Path,
) -> None:
    web = WebAdapter(history_dir=tmp_path / "chat", allowed_users=["*"])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await web.start(inbox)
    transport = httpx.ASGITransport(app=web.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        bad = await http.post("/messages", json={"text": "hi", "files": ["nope"]})
        assert bad.status_code == 400 and "upload" in bad.json()["error"]
        web.max_bytes = 10
        big = await http.post("/upload", params={"name": "big.csv"}, content=b"x" * 11)
        assert big.status_code == 413 and "too large" in big.json()["error"]
    listener = web._fanout.subscribe()
    await web.typing(Destination("web", "dashboard", "main"))
    frame = await asyncio.wait_for(listener.get(), 1)
    assert getattr(frame, "thread", None) == "main"
    await web.close()
    assert web.status().state is AdapterState.STOPPED
