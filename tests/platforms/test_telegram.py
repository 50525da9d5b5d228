from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from platforms.base import AdapterState, Destination, InboundMessage
from platforms.chunking import utf16_len
from platforms.errors import (
    AdapterConfigError,
    AuthError,
    Conflict,
    ProtocolError,
    TransientError,
)
from platforms.receipts import ReceiptStatus
from platforms.telegram import TelegramAdapter
from tests.fakes.common import free_port
from tests.fakes.telegram_server import BOT_ID, TOKEN, TelegramServer, visible_text
from tests.platforms.images import png_bytes

CHAT = "4242"
DEST = Destination("telegram", CHAT, thread="77")


def make_adapter(server: TelegramServer, **kw: object) -> TelegramAdapter:
    kw.setdefault("allowed_users", ["42"])
    return TelegramAdapter(
        TOKEN,
        base_url=server.api_base,
        poll_timeout=0,
        request_timeout=5,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def adapter(telegram_server: TelegramServer) -> AsyncIterator[TelegramAdapter]:
    a = make_adapter(telegram_server)
    try:
        yield a
    finally:
        await a.close()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_long_text_is_split_in_utf16_units_into_the_topic(
    adapter: TelegramAdapter, telegram_server: TelegramServer
) -> None:
    text = ("😀" * 1500 + "\n") * 3 + "tail"  # 3 lines of 3000 UTF-16 units each
    receipt = await adapter.send(DEST, text)
    sent = telegram_server.calls("sendMessage")
    assert receipt.status is ReceiptStatus.DELIVERED
    assert len(receipt.message_ids) == len(sent) == 3
    assert all(utf16_len(c.params["text"]) <= 4096 for c in sent)
    assert all(c.params["message_thread_id"] == "77" for c in sent)
    assert all(c.params["chat_id"] == CHAT for c in sent)
    assert "".join(c.params["text"] for c in sent).replace("\n", "") == text.replace("\n", "")


async def test_documents_videos_and_photos_carry_bytes_names_and_thread(
    adapter: TelegramAdapter, telegram_server: TelegramServer, tmp_path: Path
) -> None:
    doc = write(tmp_path / "report.pdf", b"%PDF-1.4 fake")
    vid = write(tmp_path / "clip.mp4", b"\x00\x00\x00\x18ftypmp42")
    pic = write(tmp_path / "chart.png", png_bytes(800, 600))
    receipts = [
        await adapter.send_document(DEST, doc, caption="the report"),
        await adapter.send_video(DEST, vid),
        *await adapter.send_multiple_images(DEST, [pic], caption="chart"),
    ]
    assert [r.status for r in receipts] == [ReceiptStatus.DELIVERED] * 3
    (d,) = telegram_server.calls("sendDocument")
    (v,) = telegram_server.calls("sendVideo")
    (p,) = telegram_server.calls("sendPhoto")
    assert d.files["document"] == ("report.pdf", b"%PDF-1.4 fake")
    assert d.params["caption"] == "the report"
    assert v.files["video"] == ("clip.mp4", vid.read_bytes())
    assert p.files["photo"] == ("chart.png", pic.read_bytes())
    assert p.params["caption"] == "chart"
    for call in (d, v, p):
        assert call.params["message_thread_id"] == "77"
        assert call.params["chat_id"] == CHAT


async def test_images_grouped_by_ten_and_bad_photos_sent_as_documents(
    adapter: TelegramAdapter, telegram_server: TelegramServer, tmp_path: Path
) -> None:
    pics = [write(tmp_path / f"p{i:02}.png", png_bytes(100 + i, 100)) for i in range(13)]
    wide = write(tmp_path / "wide.png", png_bytes(4200, 200))  # ratio 21
    huge = write(tmp_path / "huge.png", png_bytes(6000, 5000))  # sides sum 11000
    heavy = write(tmp_path / "heavy.jpg", b"\xff\xd8" + b"\x00" * (10 * 1024 * 1024 + 1))
    receipts = await adapter.send_multiple_images(
        DEST, [*pics[:5], wide, *pics[5:], huge, heavy], caption="charts"
    )
    assert all(r.ok for r in receipts)
    groups = telegram_server.calls("sendMediaGroup")
    assert [len(json.loads(g.params["media"])) for g in groups] == [10, 3]
    media = json.loads(groups[0].params["media"])
    assert media[0]["caption"] == "charts" and "caption" not in media[1]
    sent_names = [name for g in groups for name, _ in g.files.values()]
    assert sent_names == [p.name for p in pics]
    first_bytes = {name: data for name, data in groups[0].files.values()}
    assert first_bytes["p00.png"] == pics[0].read_bytes()
    assert all(g.params["message_thread_id"] == "77" for g in groups)
    docs = telegram_server.calls("sendDocument")
    assert [d.files["document"][0] for d in docs] == ["wide.png", "huge.png", "heavy.jpg"]
    assert all(d.params["message_thread_id"] == "77" for d in docs)
    assert telegram_server.calls("sendPhoto") == []


async def test_flood_limit_retry_after_is_honoured(
    adapter: TelegramAdapter, telegram_server: TelegramServer
) -> None:
    telegram_server.fail_next(
        "sendMessage", 429,
        {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
         "parameters": {"retry_after": 1}},
    )  # fmt: skip
    receipt = await adapter.send(DEST, "hello")
    assert receipt.ok
    first, second = telegram_server.calls("sendMessage")
    assert second.at - first.at >= 1.0
    assert second.params["text"] == "hello"


async def test_oversize_refused_before_upload(
    telegram_server: TelegramServer, tmp_path: Path
) -> None:
    a = make_adapter(telegram_server, max_upload_bytes=2 * 1024 * 1024)
    try:
        big = write(tmp_path / "dump.csv", b"x" * (3 * 1024 * 1024))
        receipt = await a.send_document(DEST, big)
        assert receipt.status is ReceiptStatus.TOO_LARGE
        assert receipt.reason == "dump.csv: too large (3.0 MB > 2.0 MB)"
        assert str(tmp_path) not in (receipt.reason or "")
        missing = await a.send_video(DEST, tmp_path / "nope.mp4")
        assert missing.status is ReceiptStatus.REJECTED
        assert telegram_server.calls("sendDocument") == telegram_server.calls("sendVideo") == []
    finally:
        await a.close()


async def test_api_errors_become_receipts(
    adapter: TelegramAdapter, telegram_server: TelegramServer
) -> None:
    telegram_server.fail_next(
        "sendMessage",
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
    )
    telegram_server.fail_next(
        "sendMessage", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    )
    r1 = await adapter.send(DEST, "a")
    r2 = await adapter.send(DEST, "b")
    assert (r1.status, r1.retryable) == (ReceiptStatus.REJECTED, False)
    assert "chat not found" in (r1.reason or "").lower()
    assert (r2.status, r2.retryable) == (ReceiptStatus.FAILED, True)


async def test_bad_token_is_an_auth_error(telegram_server: TelegramServer) -> None:
    a = TelegramAdapter(
        "1:wrong", allowed_users=[], base_url=telegram_server.api_base, request_timeout=5
    )
    with pytest.raises(AuthError):
        await a.start(asyncio.Queue())
    await a.close()


async def test_inbound_messages_filtered_and_threaded(
    telegram_server: TelegramServer,
) -> None:
    a = make_adapter(telegram_server, allowed_users=["42"])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await a.start(inbox)
    try:
        telegram_server.push_message(chat_id=-100, text="from myself", user_id=BOT_ID, is_bot=True)
        telegram_server.push_message(chat_id=-100, text="stranger", user_id=7)
        telegram_server.push_message(chat_id=-100, text="/kanban list", user_id=42, thread_id=5)
        stranger = await asyncio.wait_for(inbox.get(), 5)
        assert (stranger.user_id, stranger.authorized) == ("7", False)  # refused by the router
        msg = await asyncio.wait_for(inbox.get(), 5)
        assert msg == InboundMessage(
            platform="telegram", chat="-100", thread="5", user_id="42", user_name="alice",
            text="/kanban list", message_id=msg.message_id, is_self=False, authorized=True,
            is_group=True,
        )  # fmt: skip
        assert inbox.empty()
        # the next poll acknowledges the batch with offset = last update_id + 1
        await telegram_server.wait_until(
            lambda: any(c.params.get("offset") == "4" for c in telegram_server.calls("getUpdates"))
        )
    finally:
        await a.close()


async def test_a_failed_poll_ends_the_run_with_the_mapped_error(
    telegram_server: TelegramServer,
) -> None:
    a = make_adapter(telegram_server)
    telegram_server.fail_next(
        "getUpdates", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    )
    try:
        # no retry of its own: the gateway's runner decides when to poll again
        with pytest.raises(TransientError, match="Bad Gateway"):
            await asyncio.wait_for(a.run(asyncio.Queue()), 5)
        assert a.status().state is AdapterState.STOPPED
        assert "getUpdates failed" in a.status().detail
        assert len(telegram_server.calls("getUpdates")) == 1
    finally:
        await a.close()


# --- start: webhook, conflicts, errors, allowed users ---------------------------------------------


async def test_start_deletes_a_webhook_before_polling(telegram_server: TelegramServer) -> None:
    telegram_server.webhook_url = "https://example.com/hook"
    a = make_adapter(telegram_server)
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await a.start(inbox)
    try:
        telegram_server.push_message(chat_id=1, text="hello")
        assert (await asyncio.wait_for(inbox.get(), 5)).text == "hello"
        methods = [r.method for r in telegram_server.requests]
        assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
        (delete,) = telegram_server.calls("deleteWebhook")
        assert delete.params.get("drop_pending_updates") in (None, False, "False", "false")
        assert telegram_server.webhook_url == ""
        assert a.status().state is AdapterState.CONNECTED
    finally:
        await a.close()
    assert a.status().state is AdapterState.STOPPED


async def test_a_second_poller_ends_the_run_with_a_conflict(
    telegram_server: TelegramServer,
) -> None:
    telegram_server.other_poller = True
    a = make_adapter(telegram_server)
    reports: list[AdapterState] = []
    try:
        with pytest.raises(Conflict, match="another process is polling with this bot token"):
            await asyncio.wait_for(a.run(asyncio.Queue(), lambda s, _: reports.append(s)), 5)
        assert reports == [AdapterState.CONNECTING, AdapterState.STOPPED]  # never connected
        assert "another process is polling" in a.status().detail
        assert [r.method for r in telegram_server.requests][-1] == "getUpdates"
    finally:
        await a.close()


async def test_start_errors_are_mapped_and_never_show_the_token(
    telegram_server: TelegramServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = TelegramAdapter(
        "1:wrong-token", allowed_users=[], base_url=telegram_server.api_base, request_timeout=5
    )
    with pytest.raises(AuthError) as auth:
        await bad.start(asyncio.Queue())
    assert "1:wrong-token" not in str(auth.value)
    assert auth.value.__cause__ is None  # the SDK's message named the token
    assert bad.status().state is AdapterState.STOPPED
    assert "start failed" in bad.status().detail and "1:wrong-token" not in bad.status().detail
    await bad.close()

    telegram_server.fail_next("getMe", 200, {"ok": True, "result": {"unexpected": True}})
    odd = make_adapter(telegram_server)
    with pytest.raises(ProtocolError, match="unexpected TypeError while connecting"):
        await odd.start(asyncio.Queue())  # PTB fails building its User from the answer
    await odd.close()

    unreachable = TelegramAdapter(
        TOKEN, allowed_users=[], base_url=f"http://127.0.0.1:{free_port()}/bot", request_timeout=2
    )
    with pytest.raises(TransientError):
        await unreachable.start(asyncio.Queue())
    await unreachable.close()

    a = make_adapter(telegram_server)
    await a.start(asyncio.Queue())
    assert (await a.send(DEST, "hi")).ok
    await a.close()
    # every record but the fake server's own access log (which is not ours to mask)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "1:wrong-token" not in ours and TOKEN not in ours
    assert "HTTP Request: POST" in ours and "/bot***/sendMessage" in ours  # httpx, masked


async def test_empty_allowed_users_serves_nobody_and_says_so(
    telegram_server: TelegramServer, caplog: pytest.LogCaptureFixture
) -> None:
    a = make_adapter(telegram_server, allowed_users=[])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await a.start(inbox)
    try:
        telegram_server.push_message(chat_id=1, text="anyone?", user_id=42)
        await telegram_server.wait_until(
            lambda: any(c.params.get("offset") == "2" for c in telegram_server.calls("getUpdates"))
        )
        assert inbox.get_nowait().authorized is False
    finally:
        await a.close()
    (notice,) = [r for r in caplog.records if "allowed_users is empty" in r.message]
    assert notice.levelno == logging.WARNING
    assert "nobody will be served" in notice.message
    # How an operator finds an id; the text itself is not logged.
    assert "message from user 42, who is not in allowed_users" in caplog.text
    assert "anyone?" not in caplog.text


async def test_star_serves_everyone_with_a_warning(
    telegram_server: TelegramServer, caplog: pytest.LogCaptureFixture
) -> None:
    a = make_adapter(telegram_server, allowed_users=["*"])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await a.start(inbox)
    try:
        telegram_server.push_message(chat_id=1, text="hi", user_id=7)
        assert (await asyncio.wait_for(inbox.get(), 5)).user_id == "7"
    finally:
        await a.close()
    (warning,) = [r for r in caplog.records if "everyone" in r.message]
    assert warning.levelno == logging.WARNING


@pytest.mark.parametrize("value", [None, "42", ["42", ""]])
def test_allowed_users_must_be_an_explicit_list(value: object) -> None:
    with pytest.raises(AdapterConfigError, match="allowed_users"):
        TelegramAdapter(TOKEN, allowed_users=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="allowed_users"):
        TelegramAdapter(TOKEN)  # type: ignore[call-arg]
    with pytest.raises(AdapterConfigError, match="no bot token"):
        TelegramAdapter("", allowed_users=[])


def test_base_url_is_ptbs_own_and_a_bare_host_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = TelegramAdapter(TOKEN, allowed_users=[], base_url="http://h:1/custom/bot/")
    assert a.bot.base_url == f"http://h:1/custom/bot{TOKEN}"
    assert a.bot.base_file_url == f"http://h:1/custom/file/bot{TOKEN}"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    TelegramAdapter(TOKEN, allowed_users=[], base_url="http://h:1")
    assert "does not end in /bot" in caplog.text


# --- formatting and chunking ---------------------------------------------------------------------


async def test_text_goes_as_html_with_everything_else_escaped(
    adapter: TelegramAdapter, telegram_server: TelegramServer
) -> None:
    src = "**Done** · 5 < 6 & `a<b` see [report](https://x.io/r?a=1&b=2) <i>not a tag</i>"
    assert (await adapter.send(DEST, src)).ok
    (call,) = telegram_server.calls("sendMessage")
    assert call.params["parse_mode"] == "HTML"
    assert call.params["text"] == (
        "<b>Done</b> · 5 &lt; 6 &amp; <code>a&lt;b</code> see "
        '<a href="https://x.io/r?a=1&amp;b=2">report</a> &lt;i&gt;not a tag&lt;/i&gt;'
    )
    assert visible_text(call.params["text"]) == ("Done · 5 < 6 & a<b see report <i>not a tag</i>")


async def test_markup_the_server_refuses_is_resent_as_plain_text(
    adapter: TelegramAdapter, telegram_server: TelegramServer
) -> None:
    telegram_server.fail_next(
        "sendMessage",
        400,
        {"ok": False, "error_code": 400,
         "description": "Bad Request: can't parse entities: unsupported start tag"},
    )  # fmt: skip
    assert (await adapter.send(DEST, "**bold**")).ok
    first, second = telegram_server.calls("sendMessage")
    assert (first.params["text"], first.params["parse_mode"]) == ("<b>bold</b>", "HTML")
    assert second.params["text"] == "**bold**" and "parse_mode" not in second.params


async def test_a_long_code_block_in_a_chat_is_numbered_and_keeps_valid_markup(
    adapter: TelegramAdapter, telegram_server: TelegramServer
) -> None:
    code = "\n".join(f"if x_{i} < {i}: total += {i}  # & more" for i in range(200))
    src = f"Output:\n```python\n{code}\n```\nend"
    receipt = await adapter.send(Destination("telegram", CHAT), src)  # no thread: numbered
    sent = telegram_server.calls("sendMessage")
    assert receipt.ok and len(sent) == len(receipt.message_ids) >= 2
    total = len(sent)
    for i, call in enumerate(sent, 1):
        text = call.params["text"]
        seen = visible_text(text)  # the fake refuses unbalanced or unescaped HTML
        assert utf16_len(seen) <= 4096
        assert seen.startswith(f"({i}/{total})")
        if i > 1:
            assert text.startswith(f'({i}/{total})\n<pre><code class="language-python">')
        assert text.count("<pre>") == text.count("</pre>") == 1
    assert visible_text(sent[-1].params["text"]).endswith("\nend")
    joined = "".join(visible_text(c.params["text"]) for c in sent)
    assert all(f"if x_{i} < {i}: total += {i}  # & more" in joined for i in range(200))


async def test_captions_are_html_too(
    adapter: TelegramAdapter, telegram_server: TelegramServer, tmp_path: Path
) -> None:
    doc = write(tmp_path / "q3.pdf", b"%PDF-1.4")
    assert (await adapter.send_document(DEST, doc, caption="**Q3** report <final>")).ok
    (call,) = telegram_server.calls("sendDocument")
    assert call.params["caption"] == "<b>Q3</b> report &lt;final&gt;"
    assert call.params["parse_mode"] == "HTML"


async def test_start_can_be_called_again_after_a_failure(telegram_server: TelegramServer) -> None:
    telegram_server.fail_next(
        "getMe", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    )
    a = make_adapter(telegram_server)
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    with pytest.raises(TransientError):
        await a.start(inbox)
    assert a.status().state is AdapterState.STOPPED
    assert "Bad Gateway" in a.status().detail
    await a.start(inbox)
    try:
        assert a.status().state is AdapterState.CONNECTED
        telegram_server.push_message(chat_id=1, text="ok")
        assert (await asyncio.wait_for(inbox.get(), 5)).text == "ok"
    finally:
        await a.close()


async def test_a_silent_destination_sends_without_notification(
    adapter: TelegramAdapter, telegram_server: TelegramServer, tmp_path: Path
) -> None:
    quiet = Destination("telegram", CHAT, thread="77", silent=True)
    assert (await adapter.send(quiet, "shh")).status is ReceiptStatus.DELIVERED
    await adapter.send_document(quiet, write(tmp_path / "r.pdf", b"%PDF-1.4"))
    assert (await adapter.send(DEST, "loud")).status is ReceiptStatus.DELIVERED
    quiet_text, loud_text = telegram_server.calls("sendMessage")
    (doc,) = telegram_server.calls("sendDocument")
    assert str(quiet_text.params.get("disable_notification")).lower() == "true"
    assert str(doc.params.get("disable_notification")).lower() == "true"
    assert "disable_notification" not in loud_text.params


async def test_a_voice_note_arrives_as_an_audio_file_that_downloads(
    telegram_server: TelegramServer, tmp_path: Path
) -> None:
    adapter = TelegramAdapter(TOKEN, allowed_users=["42"], base_url=telegram_server.api_base)
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await adapter.start(inbox)
    try:
        telegram_server.push_message(chat_id=5, text="", voice=b"OggS\x00voice")
        msg = await asyncio.wait_for(inbox.get(), 10)
        (ref,) = msg.files
        assert ref.audio and ref.name.endswith(".ogg") and ref.size == 10
        path = await adapter.download(ref, tmp_path, 1024)
        assert path.read_bytes() == b"OggS\x00voice"
    finally:
        await adapter.close()
