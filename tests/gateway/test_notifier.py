"""The notifier against a real board and the in-memory FakeAdapter: messages, files, retries."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from gateway.notifier import DeliverySettings, Notifier, NotifierSettings, render
from kanban.board import Board
from kanban.models import Event
from kanban.testing import claim_and_complete, fake_clock, make_task
from platforms.errors import RateLimited
from platforms.fake import FakeAdapter
from platforms.receipts import Receipt

FAST = NotifierSettings(backoff_base=0.0, backoff_cap=0.0, tick_seconds=0.05)


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    raw = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def notifier(board: Board, fake: FakeAdapter, tmp_path: Path,
             settings: NotifierSettings = FAST) -> Notifier:
    user_home = tmp_path / "user"
    user_home.mkdir(exist_ok=True)
    return Notifier(lambda: [board], board.changes, {"fake": fake},
                    DeliverySettings(relayboard_home=tmp_path / "home", user_home=user_home),
                    settings)


def test_message_format() -> None:
    from kanban.models import Task

    task = Task.placeholder(12, "")
    task.title, task.assignee, task.status = "Quarterly report", "reporter", "done"
    done = Event(1, 12, None, "completed", {"summary": "Revenue up.\nMore text", "result": "ok"},
                 None)
    assert render(done, task).text == "✔ done · #12 Quarterly report · @reporter\nRevenue up."
    assert render(done, task).result == "ok"  # the summary was shown; the result goes after
    blocked = Event(2, 12, None, "blocked", {"reason": "needs the Q3 numbers"}, None)
    assert render(blocked, task).text.splitlines() == [
        "⛔ blocked · #12 Quarterly report · @reporter", "needs the Q3 numbers"]
    gave_up = Event(3, 12, None, "gave_up", {"error": "exit 1: boom"}, None)
    assert render(gave_up, task).text.endswith("✖ gave up · #12 Quarterly report · @reporter\n"
                                               "exit 1: boom")
    short = Event(4, 12, None, "completed", {"result": "42"}, None)
    assert render(short, task) == render(short, task).__class__(
        "✔ done · #12 Quarterly report · @reporter\n42", None)


async def test_completion_with_artifacts_is_delivered_with_files_and_refusals(
    board: Board, tmp_path: Path
) -> None:
    task = await make_task(board, "Quarterly report", assignee="reporter")
    work = board.attachments_path(task.id)
    work.mkdir(parents=True)
    (work / "chart.png").write_bytes(png_bytes())
    (work / "report.pdf").write_bytes(b"%PDF-1.4 report")
    (work / "data.csv").write_bytes(b"a,b\n1,2\n")
    ssh = tmp_path / "user" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_rsa").write_text("PRIVATE")
    long_result = "line one\n" * 40
    await board.subscribe(task.id, platform="fake", chat="c1", thread="t1")
    await claim_and_complete(board, task.id, summary="Revenue up 4 %", result=long_result,
                             metadata={"artifacts": [str(work / "chart.png"),
                                                     str(work / "report.pdf"),
                                                     str(work / "data.csv"),
                                                     str(ssh / "id_rsa")]})
    fake = FakeAdapter(platform="fake")
    assert await notifier(board, fake, tmp_path).pump() == 1
    methods = [c.method for c in fake.calls]
    assert methods == ["send", "send_multiple_images", "send_document", "send_document", "send"]
    head = fake.calls[0].text or ""
    assert head.splitlines() == [
        "✔ done · #1 Quarterly report · @reporter", "Revenue up 4 %",
        "id_rsa — not sent: credential folder"]
    assert str(tmp_path) not in head
    assert fake.calls[0].dest.thread == "t1"
    assert [p.name for c in fake.calls for p in c.files] == ["chart.png", "report.pdf",
                                                            "data.csv"]
    assert fake.calls[-1].text == long_result.strip()
    [row] = await board.outbox()
    assert row["state"] == "sent"
    steps = {r["step"]: r["status"] for r in row["receipts"]}
    assert steps == {"refused:id_rsa": "rejected", "message": "delivered", "images": "delivered",
                     "file:report.pdf": "delivered", "file:data.csv": "delivered",
                     "result": "delivered"}
    [sub] = await board.subscriptions(task.id)
    assert sub.deliveries[0]["receipts"] == row["receipts"]


async def test_paths_in_the_summary_are_delivered_when_no_artifacts(
    board: Board, tmp_path: Path
) -> None:
    task = await make_task(board, "t")
    attach = board.attachments_path(task.id)
    attach.mkdir(parents=True)
    (attach / "notes.txt").write_text("hi")
    await board.subscribe(task.id, platform="fake", chat="c1")
    await claim_and_complete(board, task.id, summary=f"saved to {attach / 'notes.txt'}")
    fake = FakeAdapter(platform="fake")
    await notifier(board, fake, tmp_path).pump()
    assert [c.method for c in fake.calls] == ["send", "send_document"]


async def test_a_file_in_a_hidden_folder_never_leaves(board: Board, tmp_path: Path) -> None:
    # Under the task's own attachments (an allowed root that outlives the workspace, which a
    # hand-completed run removes), but inside a dot-folder.
    hidden = board.attachments_dir / "1" / ".git"
    hidden.mkdir(parents=True)
    (hidden / "config.txt").write_text("secret")
    task = await make_task(board, "t")
    await board.subscribe(task.id, platform="fake", chat="c1")
    await claim_and_complete(board, task.id,
                             metadata={"artifacts": [str(hidden / "config.txt")]})
    fake = FakeAdapter(platform="fake")
    await notifier(board, fake, tmp_path).pump()
    assert [c.method for c in fake.calls] == ["send"]
    assert "config.txt — not sent: a hidden folder" in (fake.calls[0].text or "")


async def test_transient_failures_retry_honouring_retry_after_and_send_once(
    board: Board, tmp_path: Path
) -> None:
    task = await make_task(board, "t")
    await board.subscribe(task.id, platform="fake", chat="c1")
    await claim_and_complete(board, task.id, summary="s")
    fake = FakeAdapter(platform="fake")
    fake.script_failures(1, RateLimited("slow down", retry_after=30.0))
    fake.script_failures(1, Receipt.failed("500", retryable=True))
    n = notifier(board, fake, tmp_path)
    await n.pump()
    [row] = await board.outbox()
    assert row["state"] == "retry" and row["next_attempt_at"] - row["created_at"] >= 29
    assert await board.claim_notifications() == []  # Retry-After is honoured
    # Past it: the 500 is retried, then the message goes.
    for _ in range(2):
        [item] = await board.claim_notifications(at=row["next_attempt_at"] + 1)
        await n.deliver(board, item)
    [row] = await board.outbox()
    assert row["state"] == "sent" and row["attempts"] == 3
    delivered = [r for r in row["receipts"] if r["status"] == "delivered"]
    assert len(delivered) == 1 and n.delivered == 1


async def test_a_retry_repeats_only_the_steps_that_failed(board: Board, tmp_path: Path) -> None:
    task = await make_task(board, "t")
    work = board.attachments_path(task.id)
    work.mkdir(parents=True)
    (work / "a.pdf").write_bytes(b"%PDF a")
    await board.subscribe(task.id, platform="fake", chat="c1")
    await claim_and_complete(board, task.id, metadata={"artifacts": [str(work / "a.pdf")]})
    fake = FakeAdapter(platform="fake")
    n = notifier(board, fake, tmp_path)
    original = fake.send_document
    calls = 0

    async def flaky(*args: object, **kwargs: object) -> Receipt:
        nonlocal calls
        calls += 1
        if calls == 1:
            return Receipt.failed("upload 502", retryable=True)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    fake.send_document = flaky  # type: ignore[method-assign]
    await n.pump()
    await n.pump()
    assert [c.method for c in fake.calls] == ["send", "send_document"]
    assert (await board.outbox())[0]["state"] == "sent"


async def test_a_bad_subscription_is_disabled_and_never_holds_up_another(
    board: Board, tmp_path: Path
) -> None:
    a = await make_task(board, "a")
    b = await make_task(board, "b")
    await board.subscribe(a.id, platform="nowhere", chat="c1")
    await board.subscribe(b.id, platform="fake", chat="c2")
    for task in (a, b):
        await claim_and_complete(board, task.id)
    await board.archive([a.id])
    fake = FakeAdapter(platform="fake")
    n = notifier(board, fake, tmp_path, NotifierSettings(disable_after=2, backoff_base=0.0))
    await n.pump()
    assert [c.dest.chat for c in fake.calls] == ["c2"]
    [sub_a] = await board.subscriptions(a.id)
    assert sub_a.disabled and "not enabled in this gateway" in (sub_a.disabled_reason or "")


async def test_a_crash_that_trips_the_breaker_sends_one_gave_up_naming_the_error(
    board: Board, tmp_path: Path
) -> None:
    task = await make_task(board, "flaky", assignee="w", max_retries=2)
    await board.subscribe(task.id, platform="fake", chat="c1")
    fake = FakeAdapter(platform="fake")
    n = notifier(board, fake, tmp_path)
    clock = fake_clock(board)
    for error in ("exit 1: first boom", "exit 1: ConnectionError: api.example.com"):
        claim = await board.claim(task.id)
        await board.record_failure(task.id, run_id=claim.run_id, kind="crashed", error=error)
        await n.pump()
        clock.advance(3600)  # past the crash's back-off
    assert fake.texts == [
        "✖ crashed · #1 flaky · @w\nexit 1: first boom",
        "✖ gave up · #1 flaky · @w\nexit 1: ConnectionError: api.example.com",
    ]
    rows = await board.outbox()
    assert [r["state"] for r in rows] == ["sent", "sent", "sent"]  # gave_up, crashed, crashed
    assert rows[1]["receipts"][0]["step"] == "superseded"


async def test_a_result_equal_to_the_one_line_summary_is_not_sent_twice(
    board: Board, tmp_path: Path,
) -> None:
    task = await make_task(board, "chart")
    await board.subscribe(task.id, platform="fake", chat="c1")
    await claim_and_complete(board, task.id, summary="bar chart of 6 values",
                             result="bar chart of 6 values")
    fake = FakeAdapter(platform="fake")
    await notifier(board, fake, tmp_path).pump()
    assert [c.method for c in fake.calls] == ["send"]
    assert (fake.calls[0].text or "").endswith("bar chart of 6 values")


async def test_a_silent_subscription_delivers_to_a_silent_destination(
    board: Board, tmp_path: Path,
) -> None:
    quiet, loud = await make_task(board, "quiet"), await make_task(board, "loud")
    await board.subscribe(quiet.id, platform="fake", chat="c1", silent=True)
    await board.subscribe(loud.id, platform="fake", chat="c2")
    await claim_and_complete(board, quiet.id, summary="s")
    await claim_and_complete(board, loud.id, summary="s")
    fake = FakeAdapter(platform="fake")
    await notifier(board, fake, tmp_path).pump()
    silent_by_chat = {c.dest.chat: c.dest.silent for c in fake.calls}
    assert silent_by_chat == {"c1": True, "c2": False}
