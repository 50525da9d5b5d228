from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from platforms.base import Destination, InboundMessage, ReceiptStatus
from platforms.errors import AuthError
from platforms.retry import Backoff
from platforms.telegram import TelegramAdapter
from platforms.text import utf16_len
from tests.fakes.telegram_server import BOT_ID, TOKEN, TelegramServer
from tests.platforms.images import png_bytes

CHAT = "4242"
DEST = Destination("telegram", CHAT, thread="77")


def make_adapter(server: TelegramServer, **kw: object) -> TelegramAdapter:
    return TelegramAdapter(
        TOKEN,
        base_url=server.url,
        poll_timeout=0,
        request_timeout=5,
        backoff=Backoff(base=0.3, cap=1, jitter=0),
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
    a = TelegramAdapter("1:wrong", base_url=telegram_server.url, request_timeout=5)
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
        msg = await asyncio.wait_for(inbox.get(), 5)
        assert msg == InboundMessage(
            platform="telegram", chat="-100", thread="5", user_id="42", user_name="alice",
            text="/kanban list", message_id=msg.message_id, is_self=False,
        )  # fmt: skip
        assert inbox.empty()
        # the next poll acknowledges the batch with offset = last update_id + 1
        await telegram_server.wait_until(
            lambda: any(c.params.get("offset") == "4" for c in telegram_server.calls("getUpdates"))
        )
    finally:
        await a.close()


async def test_polling_survives_failures_with_backoff(telegram_server: TelegramServer) -> None:
    a = make_adapter(telegram_server)
    telegram_server.fail_next(
        "getUpdates", 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}, times=2
    )
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await a.start(inbox)
    try:
        polls = await telegram_server.wait_until(
            lambda: (c := telegram_server.calls("getUpdates")) and len(c) >= 3 and c
        )
        # base 0.3s then 0.6s, no jitter: the backoff grows between the failed polls
        assert polls[1].at - polls[0].at >= 0.3
        assert polls[2].at - polls[1].at >= 0.6
        telegram_server.push_message(chat_id=1, text="back")
        msg = await asyncio.wait_for(inbox.get(), 5)
        assert msg.text == "back" and a.connections == 2
    finally:
        await a.close()
