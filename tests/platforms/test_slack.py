from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from platforms.base import AdapterState, Destination, InboundMessage
from platforms.errors import (
    AdapterConfigError,
    AuthError,
    FileTooLarge,
    ProtocolError,
    TransientError,
)
from platforms.receipts import ReceiptStatus
from platforms.slack import SlackAdapter, to_mrkdwn
from tests.fakes.common import free_port
from tests.fakes.slack_server import APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER, SlackServer
from tests.platforms.images import png_bytes
from tests.platforms.logs import LogWaiter

DEST = Destination("slack", "C123", thread="1700000000.000100")


def make_adapter(server: SlackServer, **kw: object) -> SlackAdapter:
    kw.setdefault("allowed_users", ["U1"])
    return SlackAdapter(
        BOT_TOKEN,
        APP_TOKEN,
        base_url=server.api_base,
        ping_interval=0.3,
        timeout=5,
        retry_backoff=0.05,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def adapter(slack_server: SlackServer) -> AsyncIterator[SlackAdapter]:
    a = make_adapter(slack_server)
    try:
        yield a
    finally:
        await a.close()


def test_markdown_becomes_mrkdwn_outside_code() -> None:
    src = "# Done\n**bold** and [docs](https://x.io/a) ~~old~~ `**raw**`"
    assert to_mrkdwn(src) == "*Done*\n*bold* and <https://x.io/a|docs> ~old~ `**raw**`"


async def test_long_text_chunked_into_the_thread(
    adapter: SlackAdapter, slack_server: SlackServer
) -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(100))  # ~9.8k characters
    receipt = await adapter.send(DEST, "**Report**\n" + text)
    posts = slack_server.calls("chat.postMessage")
    assert receipt.ok and len(receipt.message_ids) == len(posts) == 3
    assert all(len(p.params["text"]) <= 4000 for p in posts)
    assert all(p.params["thread_ts"] == DEST.thread for p in posts)
    assert all(p.params["channel"] == "C123" and p.params["mrkdwn"] is True for p in posts)
    assert posts[0].params["text"].startswith("*Report*\nline 0 ")
    assert posts[0].params["_auth"] == f"Bearer {BOT_TOKEN}"


async def test_document_upload_flow_into_the_thread(
    adapter: SlackAdapter, slack_server: SlackServer, tmp_path: Path
) -> None:
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF-1.4 quarterly")
    receipt = await adapter.send_document(DEST, doc, caption="**Q3** report")
    (url_call,) = slack_server.calls("files.getUploadURLExternal")
    (complete,) = slack_server.calls("files.completeUploadExternal")
    file_id = next(iter(slack_server.uploaded))
    assert receipt.ok and receipt.message_ids == (file_id,)
    assert (url_call.params["filename"], url_call.params["length"]) == ("report.pdf", "18")
    assert slack_server.uploaded[file_id] == b"%PDF-1.4 quarterly"
    assert complete.params["channel_id"] == "C123"
    assert complete.params["thread_ts"] == DEST.thread
    assert complete.params["initial_comment"] == "*Q3* report"
    assert [f["id"] for f in json.loads(complete.params["files"])] == [file_id]


async def test_images_share_one_completion_up_to_ten(
    adapter: SlackAdapter, slack_server: SlackServer, tmp_path: Path
) -> None:
    pics = []
    for i in range(12):
        p = tmp_path / f"chart{i:02}.png"
        p.write_bytes(png_bytes(10 + i, 10))
        pics.append(p)
    receipts = await adapter.send_multiple_images(DEST, pics, caption="charts")
    completes = slack_server.calls("files.completeUploadExternal")
    assert [r.ok for r in receipts] == [True, True]
    assert [len(json.loads(c.params["files"])) for c in completes] == [10, 2]
    assert completes[0].params["initial_comment"] == "charts"
    assert "initial_comment" not in completes[1].params
    assert all(c.params["thread_ts"] == DEST.thread for c in completes)
    names = [slack_server.uploads[fid][0] for fid in slack_server.uploaded]
    assert names == [p.name for p in pics]
    assert list(slack_server.uploaded.values()) == [p.read_bytes() for p in pics]
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftyp")
    assert (await adapter.send_video(DEST, video)).ok
    assert slack_server.calls("files.completeUploadExternal")[-1].params["thread_ts"] == DEST.thread


async def test_rate_limit_retry_after_honoured(
    adapter: SlackAdapter, slack_server: SlackServer
) -> None:
    slack_server.fail_next(
        "chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
    )
    receipt = await adapter.send(DEST, "hello")
    first, second = slack_server.calls("chat.postMessage")
    assert receipt.ok
    assert second.at - first.at >= 1.0


async def test_server_errors_retried_then_reported(
    adapter: SlackAdapter, slack_server: SlackServer, tmp_path: Path
) -> None:
    doc = tmp_path / "a.csv"
    doc.write_text("a,b\n1,2\n")
    slack_server.fail_next("files.completeUploadExternal", 503, {"ok": False, "error": "down"})
    assert (await adapter.send_document(DEST, doc)).ok
    assert len(slack_server.calls("files.completeUploadExternal")) == 2
    slack_server.fail_next("chat.postMessage", 500, {"ok": False}, times=3)
    failed = await adapter.send(DEST, "x")
    assert (failed.status, failed.retryable) == (ReceiptStatus.FAILED, True)
    assert len(slack_server.calls("chat.postMessage")) == 3  # first try + 2 retries


async def test_unknown_channel_is_rejected(adapter: SlackAdapter) -> None:
    receipt = await adapter.send(Destination("slack", "nope"), "hi")
    assert (receipt.status, receipt.reason) == (ReceiptStatus.REJECTED, "channel_not_found")


async def test_oversize_refused_before_upload(slack_server: SlackServer, tmp_path: Path) -> None:
    a = make_adapter(slack_server, max_file_bytes=1024 * 1024)
    big = tmp_path / "dump.zip"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    receipt = await a.send_document(DEST, big)
    assert receipt.status is ReceiptStatus.TOO_LARGE
    assert receipt.reason == "dump.zip: too large (2.0 MB > 1.0 MB)"
    assert slack_server.calls("files.getUploadURLExternal") == []
    assert slack_server.calls("upload") == []


async def test_socket_mode_inbound_acked_and_self_ignored(
    adapter: SlackAdapter, slack_server: SlackServer
) -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    (open_call,) = slack_server.calls("apps.connections.open")
    assert open_call.params["_auth"] == f"Bearer {APP_TOKEN}"
    base = {"type": "message", "channel": "C123", "ts": "1700000001.000200"}
    envs = [
        await slack_server.push_event({**base, "user": BOT_USER, "text": "my own post"}),
        await slack_server.push_event({**base, "user": "U9", "bot_id": BOT_ID, "text": "bot"}),
        await slack_server.push_event({**base, "subtype": "channel_join", "user": "U1"}),
        await slack_server.push_event(
            {**base, "user": "U1", "text": "!kanban list", "thread_ts": "1700000000.000100"}
        ),
    ]
    msg = await asyncio.wait_for(inbox.get(), 5)
    assert msg == InboundMessage(
        platform="slack", chat="C123", thread="1700000000.000100", user_id="U1",
        user_name="alice", text="!kanban list", message_id="1700000001.000200", authorized=True,
        is_group=True,
    )  # fmt: skip
    await slack_server.wait_until(lambda: set(slack_server.acks) >= set(envs))
    assert inbox.empty()


async def test_dropped_socket_reconnects(adapter: SlackAdapter, slack_server: SlackServer) -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    slack_server.refuse_sockets = 1
    await slack_server.drop_sockets()
    # a fresh URL from apps.connections.open, one refused handshake, then a new socket
    await slack_server.wait_until(lambda: len(slack_server.sockets) == 2)
    attempts = slack_server.calls("socket")
    assert len(attempts) == 3
    assert attempts[2].at - attempts[1].at >= 0.3  # waited ping_interval before retrying
    assert len(slack_server.calls("apps.connections.open")) == 2
    await slack_server.push_event(
        {"type": "message", "channel": "C1", "user": "U1", "text": "back", "ts": "1.2"}
    )
    assert (await asyncio.wait_for(inbox.get(), 5)).text == "back"


async def test_bad_token_is_an_auth_error(slack_server: SlackServer) -> None:
    a = SlackAdapter("xoxb-wrong", APP_TOKEN, allowed_users=[], base_url=slack_server.api_base)
    with pytest.raises(AuthError):
        await a.start(asyncio.Queue())
    await a.close()


async def test_text_is_escaped_for_slack_exactly(
    adapter: SlackAdapter, slack_server: SlackServer
) -> None:
    src = "5 < 6 && 7 > 3 <!channel> for <@U024BE7LH>: **done**, see [q&a](https://x.io/?a=1&b=2)"
    assert (await adapter.send(DEST, src)).ok
    (post,) = slack_server.calls("chat.postMessage")
    assert post.params["text"] == (
        "5 &lt; 6 &amp;&amp; 7 &gt; 3 &lt;!channel&gt; for <@U024BE7LH>: *done*, "
        "see <https://x.io/?a=1&amp;b=2|q&amp;a>"
    )


async def test_parts_are_numbered_in_a_channel_but_not_in_a_thread(
    adapter: SlackAdapter, slack_server: SlackServer
) -> None:
    code = "\n".join(f"row {i}: a<b & c>d" for i in range(400))  # ~8k characters once escaped
    src = f"Log:\n```text\n{code}\n```"
    assert (await adapter.send(Destination("slack", "C123"), src)).ok
    channel_posts = slack_server.calls("chat.postMessage")
    total = len(channel_posts)
    assert total >= 3
    for i, post in enumerate(channel_posts, 1):
        text = post.params["text"]
        assert len(text) <= 4000 and "thread_ts" not in post.params
        assert text.startswith(f"({i}/{total})")
        assert text.count("```") == 2  # every part is a closed code block
        assert "&lt;" in text and "<b" not in text
    assert channel_posts[1].params["text"].startswith(f"(2/{total})\n```\nrow ")
    assert (await adapter.send(DEST, src)).ok
    thread_posts = slack_server.calls("chat.postMessage")[total:]
    assert thread_posts[0].params["text"].startswith("Log:\n```\nrow 0")
    assert not any(p.params["text"].startswith("(") for p in thread_posts)


def test_allowed_users_is_required_and_explicit() -> None:
    with pytest.raises(TypeError, match="allowed_users"):
        SlackAdapter(BOT_TOKEN, APP_TOKEN)  # type: ignore[call-arg]
    with pytest.raises(AdapterConfigError, match="allowed_users"):
        SlackAdapter(BOT_TOKEN, APP_TOKEN, allowed_users=None)  # type: ignore[arg-type]


async def test_start_errors_are_mapped(slack_server: SlackServer) -> None:
    no_app_token = SlackAdapter(BOT_TOKEN, None, allowed_users=[], base_url=slack_server.api_base)
    with pytest.raises(AdapterConfigError, match="app-level token"):
        await no_app_token.start(asyncio.Queue())
    assert no_app_token.status().state is AdapterState.STOPPED
    unreachable = SlackAdapter(
        BOT_TOKEN,
        APP_TOKEN,
        allowed_users=[],
        base_url=f"http://127.0.0.1:{free_port()}/api/",
        max_retries=0,
    )
    with pytest.raises(TransientError):
        await unreachable.start(asyncio.Queue())
    await unreachable.close()
    not_slack = SlackAdapter(BOT_TOKEN, APP_TOKEN, allowed_users=[], base_url=slack_server.url)
    with pytest.raises(ProtocolError, match="not a Slack Web API answer"):
        await not_slack.start(asyncio.Queue())  # the fake answers 404 off /api/
    await not_slack.close()


async def test_status_follows_the_socket(adapter: SlackAdapter, slack_server: SlackServer) -> None:
    assert adapter.status().state is AdapterState.STOPPED
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    assert adapter.status().state is AdapterState.CONNECTED
    slack_server.refuse_sockets = 1
    await slack_server.drop_sockets()
    await slack_server.wait_until(lambda: len(slack_server.calls("socket")) == 2)
    # the refused handshake: the SDK waits ping_interval before the next try
    assert adapter.status().state is AdapterState.RETRYING
    await slack_server.wait_until(lambda: len(slack_server.sockets) == 2)
    await slack_server.push_event(
        {"type": "message", "channel": "C1", "user": "U1", "text": "back", "ts": "1.3"}
    )
    await asyncio.wait_for(inbox.get(), 5)
    assert adapter.status().state is AdapterState.CONNECTED
    await adapter.close()
    assert adapter.status().state is AdapterState.STOPPED


async def test_allowed_users_empty_serves_nobody_and_star_everyone(
    slack_server: SlackServer, caplog: pytest.LogCaptureFixture, platform_log: LogWaiter
) -> None:
    event = {"type": "message", "channel": "C1", "user": "U7", "text": "hi", "ts": "2.1"}
    nobody = make_adapter(slack_server, allowed_users=[])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await nobody.start(inbox)
    try:
        await slack_server.push_event(event)
        await platform_log.wait_for("message from user U7, who is not in allowed_users")
        assert (await asyncio.wait_for(inbox.get(), 5)).authorized is False
    finally:
        await nobody.close()
    everyone = make_adapter(slack_server, allowed_users=["*"])
    await everyone.start(inbox)
    try:
        await slack_server.push_event(event)
        msg = await asyncio.wait_for(inbox.get(), 5)
        assert (msg.user_id, msg.authorized) == ("U7", True)
    finally:
        await everyone.close()
    assert "slack: allowed_users is empty — nobody will be served" in caplog.text
    assert 'slack: allowed_users is ["*"] — everyone' in caplog.text


async def test_tokens_never_reach_the_log(
    slack_server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = SlackAdapter(
        "xoxb-wrong-token", APP_TOKEN, allowed_users=[], base_url=slack_server.api_base
    )
    with pytest.raises(AuthError):
        await bad.start(asyncio.Queue())
    a = make_adapter(slack_server)
    await a.start(asyncio.Queue())
    assert (await a.send(DEST, "hi")).ok
    await a.close()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    for token in (BOT_TOKEN, APP_TOKEN, "xoxb-wrong-token"):
        assert token not in ours


async def test_app_mention_is_handled_like_a_dm_and_delivered_once(
    adapter: SlackAdapter, slack_server: SlackServer
) -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    said = {"channel": "C1", "user": "U1", "ts": "1700000002.000100",
            "text": f"<@{BOT_USER}> !kanban list"}
    # A channel the app reads delivers the mention as a message and as an app_mention.
    await slack_server.push_event({"type": "app_mention", **said})
    await slack_server.push_event({"type": "message", **said})
    msg = await asyncio.wait_for(inbox.get(), 5)
    assert (msg.text, msg.chat, msg.authorized) == ("!kanban list", "C1", True)
    await slack_server.push_event({"type": "app_mention", **said, "ts": "1700000003.000100",
                                   "text": f"<@{BOT_USER}> hello"})
    assert (await asyncio.wait_for(inbox.get(), 5)).text == "hello"
    assert inbox.empty()


async def test_a_shared_file_is_downloaded_with_the_bot_token_and_capped(
    adapter: SlackAdapter, slack_server: SlackServer, tmp_path: Path
) -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    shared = slack_server.share_file("../sales.csv", b"month,sales\nJan,1\n")
    await slack_server.push_event({"type": "message", "subtype": "file_share", "channel": "C1",
                                   "user": "U1", "ts": "1.5", "text": "", "files": [shared]})
    (ref,) = (await asyncio.wait_for(inbox.get(), 5)).files
    path = await adapter.download(ref, tmp_path / "in", 1024)
    assert (path.parent, path.name) == (tmp_path / "in", "sales.csv")  # no way out of the folder
    assert path.read_bytes() == b"month,sales\nJan,1\n"
    (fetch,) = slack_server.calls("private_file")
    assert fetch.params["_auth"] == f"Bearer {BOT_TOKEN}"
    with pytest.raises(FileTooLarge):
        await adapter.download(ref, tmp_path / "in", 5)
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["sales.csv"]


async def test_an_audio_file_share_is_marked_as_audio(
    adapter: SlackAdapter, slack_server: SlackServer,
) -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    files = [slack_server.share_file("memo.m4a", b"\x00\x00\x00\x18ftypM4A "),
             slack_server.share_file("notes.txt", b"text")]
    await slack_server.push_event({"type": "message", "subtype": "file_share", "channel": "C1",
                                   "user": "U1", "ts": "1.6", "text": "", "files": files})
    refs = (await asyncio.wait_for(inbox.get(), 5)).files
    assert [(r.name, r.audio) for r in refs] == [("memo.m4a", True), ("notes.txt", False)]
