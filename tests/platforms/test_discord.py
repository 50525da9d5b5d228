from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from platforms.base import AdapterState, Destination, InboundMessage
from platforms.discord import DiscordAdapter
from platforms.errors import (
    AdapterConfigError,
    AuthError,
    ProtocolError,
    TransientError,
)
from platforms.receipts import ReceiptStatus
from tests.fakes.common import free_port
from tests.fakes.discord_server import (
    BOT_USER,
    CHANNEL_ID,
    THREAD_ID,
    TOKEN,
    DiscordServer,
    user,
)
from tests.platforms.logs import LogWaiter

ORIGINAL_BASE = Route.BASE
ORIGINAL_GATEWAY = DiscordWebSocket.DEFAULT_GATEWAY
DEST = Destination("discord", CHANNEL_ID, thread=THREAD_ID)
MESSAGES = f"POST /channels/{THREAD_ID}/messages"


def make_adapter(server: DiscordServer, **kw: object) -> DiscordAdapter:
    kw.setdefault("allowed_users", ["42"])
    kw.setdefault("base_url", server.api_base)
    return DiscordAdapter(
        TOKEN,
        gateway_url=server.gateway_url,
        guild_ready_timeout=0.1,
        ready_timeout=30,  # generous: a loaded CI machine, not the adapter, is the slow part
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def started(
    discord_server: DiscordServer,
) -> AsyncIterator[tuple[DiscordAdapter, asyncio.Queue[InboundMessage]]]:
    adapter = make_adapter(discord_server, allowed_users=["42", "43"])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    try:
        yield adapter, inbox
    finally:
        await adapter.close()
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == (ORIGINAL_BASE, ORIGINAL_GATEWAY)


async def test_gateway_handshake_and_inbound_messages(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    _, inbox = started
    (identify,) = discord_server.ops(2)
    assert identify["d"]["token"] == TOKEN
    assert identify["d"]["intents"] & (1 << 15)  # MESSAGE_CONTENT
    assert discord_server.ops(1)  # heartbeat sent after HELLO (answered with op 11)
    await discord_server.push_message(content="my own echo", author=BOT_USER)
    await discord_server.push_message(content="other bot", author=user("77", "bot", bot=True))
    await discord_server.push_message(content="stranger", author=user("5", "eve"))
    await discord_server.push_message(
        channel_id=THREAD_ID, content="/status", author=user("42", "bob")
    )
    # Bots (ourselves included) are dropped; a stranger is delivered, not authorized.
    stranger = await asyncio.wait_for(inbox.get(), 5)
    assert (stranger.user_id, stranger.text, stranger.authorized) == ("5", "stranger", False)
    msg = await asyncio.wait_for(inbox.get(), 5)
    assert msg.authorized
    assert (msg.platform, msg.chat, msg.thread, msg.user_id, msg.user_name, msg.text) == (
        "discord",
        CHANNEL_ID,
        THREAD_ID,
        "42",
        "bob",
        "/status",
    )
    await discord_server.push_message(content="top level", author=user("43", "amy"))
    msg = await asyncio.wait_for(inbox.get(), 5)
    assert (msg.chat, msg.thread, msg.text) == (CHANNEL_ID, None, "top level")
    assert inbox.empty()


async def test_text_split_at_2000_into_the_thread(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    adapter, _ = started
    text = " ".join(f"word{i}" for i in range(900))  # ~6.7k characters
    receipt = await adapter.send(DEST, text)
    posts = discord_server.calls(MESSAGES)
    assert receipt.ok and len(receipt.message_ids) == len(posts) == 4
    assert all(len(p.params["content"]) <= 2000 for p in posts)
    assert " ".join(p.params["content"] for p in posts) == text
    assert discord_server.calls(f"POST /channels/{CHANNEL_ID}/messages") == []


async def test_files_at_most_ten_per_message_with_bytes_and_names(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]],
    discord_server: DiscordServer,
    tmp_path: Path,
) -> None:
    adapter, _ = started
    pics = []
    for i in range(11):
        p = tmp_path / f"img{i:02}.png"
        p.write_bytes(f"png-{i}".encode())
        pics.append(p)
    receipts = await adapter.send_multiple_images(DEST, pics, caption="charts")
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF")
    receipts.append(await adapter.send_document(DEST, doc, caption="report"))
    vid = tmp_path / "clip.mp4"
    vid.write_bytes(b"mp4")
    receipts.append(await adapter.send_video(DEST, vid))
    assert [r.ok for r in receipts] == [True] * 4
    posts = discord_server.calls(MESSAGES)
    assert [len(p.files) for p in posts] == [10, 1, 1, 1]
    assert [p.params.get("content") for p in posts] == ["charts", None, "report", None]
    sent = [f for p in posts[:2] for f in p.files.values()]
    assert sent == [(p.name, p.read_bytes()) for p in pics]
    assert list(posts[2].files.values()) == [("report.pdf", b"%PDF")]


async def test_size_limit_from_guild_refuses_before_upload(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]],
    discord_server: DiscordServer,
    tmp_path: Path,
) -> None:
    adapter, _ = started
    big = tmp_path / "big.zip"
    big.write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    receipt = await adapter.send_document(DEST, big)
    assert receipt.status is ReceiptStatus.TOO_LARGE
    assert receipt.limit == 10 * 1024 * 1024
    assert discord_server.calls(MESSAGES) == []


async def test_rate_limit_is_waited_out(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    adapter, _ = started
    discord_server.fail_next(
        MESSAGES, 429, {"message": "You are being rate limited.", "retry_after": 1.0,
                        "global": False},
        {"Retry-After": "1", "X-RateLimit-Scope": "user", "Via": "1.1 google"},
    )  # fmt: skip
    receipt = await adapter.send(DEST, "hello")
    first, second = discord_server.calls(MESSAGES)
    assert receipt.ok and second.params["content"] == "hello"
    assert second.at - first.at >= 1.0


async def test_unknown_channel_rejected(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    adapter, _ = started
    discord_server.fail_next(
        "POST /channels/9/messages", 404, {"message": "Unknown Channel", "code": 10003}
    )
    receipt = await adapter.send(Destination("discord", "9"), "hi")
    assert receipt.status is ReceiptStatus.REJECTED


async def test_dropped_gateway_reconnects_and_resumes(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    _, inbox = started
    discord_server.refuse_sockets = 1
    await discord_server.drop_sockets(code=4000)
    await discord_server.wait_until(lambda: discord_server.ops(6), limit=30)
    attempts = discord_server.calls("gateway")
    assert len(attempts) == 3  # first, refused, resumed
    assert discord_server.ops(6)[0]["d"]["session_id"] == "sess-1"
    await discord_server.push_message(content="after resume", author=user("42", "bob"))
    assert (await asyncio.wait_for(inbox.get(), 5)).text == "after resume"


async def test_bad_token_is_an_auth_error_and_urls_restored(discord_server: DiscordServer) -> None:
    adapter = DiscordAdapter(
        "wrong",
        allowed_users=[],
        base_url=discord_server.api_base,
        gateway_url=discord_server.gateway_url,
    )
    with pytest.raises(AuthError):
        await adapter.start(asyncio.Queue())
    await adapter.close()
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == (ORIGINAL_BASE, ORIGINAL_GATEWAY)


async def test_status_through_a_resumed_connection(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    adapter, inbox = started
    assert adapter.status().state is AdapterState.CONNECTED
    discord_server.refuse_sockets = 1
    await discord_server.drop_sockets(code=4000)
    await discord_server.wait_until(lambda: len(discord_server.calls("gateway")) == 2, limit=30)
    assert adapter.status().state is AdapterState.RETRYING  # refused; backing off
    await discord_server.wait_until(lambda: discord_server.ops(6), limit=30)
    await discord_server.push_message(content="hello again", author=user("42", "bob"))
    await asyncio.wait_for(inbox.get(), 5)
    assert adapter.status().state is AdapterState.CONNECTED


async def test_a_gateway_that_ends_for_good_shows_as_stopped(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]],
    discord_server: DiscordServer,
    platform_log: LogWaiter,
) -> None:
    adapter, _ = started
    await discord_server.drop_sockets(code=4004)  # authentication failed: no reconnect
    await platform_log.wait_for("discord: inbound stopped")
    status = adapter.status()
    assert status.state is AdapterState.STOPPED
    assert "refused the token" in status.detail
    await adapter.start(asyncio.Queue())  # what the gateway's retry does: a fresh connection
    assert adapter.status().state is AdapterState.CONNECTED
    assert len(discord_server.ops(2)) == 2  # identified again


async def test_missing_message_content_intent_is_a_config_error(
    discord_server: DiscordServer,
) -> None:
    discord_server.message_content_enabled = False
    adapter = make_adapter(discord_server)
    with pytest.raises(AdapterConfigError, match="MESSAGE CONTENT INTENT"):
        await adapter.start(asyncio.Queue())
    assert adapter.status().state is AdapterState.STOPPED
    assert "Privileged Gateway Intents" in adapter.status().detail
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == (ORIGINAL_BASE, ORIGINAL_GATEWAY)
    discord_server.message_content_enabled = True  # the operator flips the switch
    await adapter.start(asyncio.Queue())  # and the gateway's next attempt works
    assert adapter.status().state is AdapterState.CONNECTED
    await adapter.close()
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == (ORIGINAL_BASE, ORIGINAL_GATEWAY)


def test_allowed_users_is_required_and_explicit() -> None:
    with pytest.raises(TypeError, match="allowed_users"):
        DiscordAdapter(TOKEN)  # type: ignore[call-arg]
    with pytest.raises(AdapterConfigError, match="allowed_users"):
        DiscordAdapter(TOKEN, allowed_users="42")


async def test_start_errors_are_mapped_never_raw(discord_server: DiscordServer) -> None:
    # base_url as the bare host (the old meaning) reaches no API: a mapped error, not a KeyError
    host_only = make_adapter(discord_server, base_url=discord_server.url)
    with pytest.raises(ProtocolError, match=r"is base_url discord.py's Route.BASE"):
        await host_only.start(asyncio.Queue())
    await host_only.close()
    unreachable = make_adapter(discord_server, base_url=f"http://127.0.0.1:{free_port()}/api/v10")
    with pytest.raises(TransientError):
        await unreachable.start(asyncio.Queue())
    await unreachable.close()
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == (ORIGINAL_BASE, ORIGINAL_GATEWAY)


async def test_parts_in_a_channel_are_numbered_and_code_stays_fenced(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    adapter, _ = started
    code = "\n".join(f"line {i}: ok" for i in range(300))
    receipt = await adapter.send(Destination("discord", CHANNEL_ID), f"```py\n{code}\n```")
    posts = discord_server.calls(f"POST /channels/{CHANNEL_ID}/messages")
    assert receipt.ok and len(posts) >= 2
    for i, post in enumerate(posts, 1):
        content = post.params["content"]
        assert len(content) <= 2000
        assert content.startswith(f"({i}/{len(posts)})\n```py\n")
        assert content.endswith("\n```")


async def test_allowed_users_empty_serves_nobody(
    discord_server: DiscordServer, platform_log: LogWaiter, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(discord_server, allowed_users=[])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    try:
        await discord_server.push_message(content="hi", author=user("42", "bob"))
        await platform_log.wait_for("message from user 42, who is not in allowed_users")
        assert inbox.get_nowait().authorized is False
    finally:
        await adapter.close()
    assert "discord: allowed_users is empty — nobody will be served" in caplog.text


async def test_a_silent_destination_suppresses_notifications(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    adapter, _ = started
    quiet = Destination(DEST.platform, DEST.chat, DEST.thread, silent=True)
    assert (await adapter.send(quiet, "shh")).ok
    assert (await adapter.send(DEST, "loud")).ok
    quiet_post, loud_post = discord_server.calls(MESSAGES)
    suppress_notifications = 1 << 12  # Discord's SUPPRESS_NOTIFICATIONS message flag
    assert int(quiet_post.params.get("flags", 0)) & suppress_notifications
    assert not int(loud_post.params.get("flags", 0)) & suppress_notifications


async def test_a_forged_file_name_reaches_discord_on_one_line_without_bidi(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]],
    discord_server: DiscordServer,
    tmp_path: Path,
) -> None:
    """A file name with a line break and ``✔ done · #1`` after it, or a right-to-left
    override, is uploaded under a cleaned name: the attachment as the server receives it."""
    adapter, _ = started
    forged = tmp_path / "report\n✔ done · #1.pdf"
    forged.write_bytes(b"%PDF one")
    flipped = tmp_path / "invoice\u202efdp.exe"
    flipped.write_bytes(b"%PDF two")
    receipts = [await adapter.send_document(DEST, forged, caption="files"),
                await adapter.send_document(DEST, flipped)]
    assert all(r.ok for r in receipts)
    names = [name for p in discord_server.calls(MESSAGES) for name, _data in p.files.values()]
    assert names == ["report ✔ done · #1.pdf", "invoicefdp.exe"]
    assert not any("\n" in n or "\u202e" in n for n in names)


async def test_a_voice_message_attachment_is_marked_as_audio(
    started: tuple[DiscordAdapter, asyncio.Queue[InboundMessage]], discord_server: DiscordServer
) -> None:
    _, inbox = started
    await discord_server.push_message(content="", author=user("42", "bob"),
                                      files={"voice-message.ogg": b"OggS\x00",
                                             "table.csv": b"a,b\n"})
    msg = await asyncio.wait_for(inbox.get(), 5)
    assert [(f.name, f.audio) for f in msg.files] == [("voice-message.ogg", True),
                                                      ("table.csv", False)]
