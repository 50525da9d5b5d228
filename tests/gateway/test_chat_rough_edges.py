"""Small things a new user meets first: where the result will be posted ("here" or "in this
thread"), answers that reply to the command, refused files named in the completion, a refusal
budget that survives a restart, and ``/status`` that says who is asking."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from gateway.chat import REFUSAL, RouterSettings
from gateway.chat.refusals import RefusalBudget, budget_path
from kanban.board import Board
from kanban.testing import claim_and_complete, make_task
from platforms.fake import FakeAdapter
from platforms.receipts import Receipt
from tests.gateway.test_chat import ALICE, replies
from tests.gateway.test_daemon import running
from tests.gateway.test_notifier import notifier
from tests.kanban.workers.harness import wait_until

BOSS = "boss"


def fake_platform() -> FakeAdapter:
    return FakeAdapter(platform="fake", allowed_users=[ALICE, BOSS])


def admins() -> RouterSettings:
    return RouterSettings(admins={"fake": frozenset({BOSS})})


async def started(fake: FakeAdapter) -> bool:
    return fake.started


async def test_the_ack_says_here_without_a_thread_and_replies_to_the_command(
    tmp_path: Path,
) -> None:
    fake = fake_platform()
    async with running(tmp_path / "home", "kanban: {auto_decompose: false}\n",
                       {"fake": lambda: fake}):
        await wait_until(lambda: started(fake), what="adapter started")
        private = await fake.inject(chat="dm1", user_id=ALICE, text="/kanban create One")
        (ack,) = await replies(fake, 1)
        threaded = await fake.inject(chat="c1", thread="t7", user_id=ALICE,
                                     text="/kanban create Two")
        await replies(fake, 2)
        follow = await fake.inject(chat="dm1", user_id=ALICE, text="/subscribe 2")
        _, in_thread, following = await replies(fake, 3)
    assert ack.startswith("Created #1 One") and ack.endswith("I'll post the result here.")
    assert in_thread.endswith("I'll post the result in this thread.")
    assert following == "Following #2 here: its result will be posted here."
    sends = [c for c in fake.calls if c.method == "send"]
    assert [c.dest.reply_to for c in sends] == [private.message_id, threaded.message_id,
                                                follow.message_id]
    assert sends[1].dest.thread == "t7"


async def test_status_shows_the_askers_role_and_admins_also_the_sandbox_and_queue(
    tmp_path: Path,
) -> None:
    fake = fake_platform()
    async with running(tmp_path / "home", "kanban: {auto_decompose: false}\n",
                       {"fake": lambda: fake}, router_settings=admins()):
        await wait_until(lambda: started(fake), what="adapter started")
        await fake.inject(chat="c1", user_id=ALICE, text="/kanban create Waits")
        await replies(fake, 1)
        await fake.inject(chat="c1", user_id=ALICE, text="/status")
        member = (await replies(fake, 2))[1]
        await fake.inject(chat="c1", user_id=BOSS, text="/status")
        admin = (await replies(fake, 3))[2]
    assert "your role: member" in member.splitlines()[0]
    assert "sandbox" not in member and "Queue" not in member
    assert "your role: admin" in admin.splitlines()[0]
    assert "Worker sandbox: " in admin
    assert "Queue: 1 task ready for a worker · 0 notifications waiting" in admin


async def test_the_refusal_budget_survives_a_restart_of_the_gateway(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.chat.router")
    home = tmp_path / "home"
    refusal = REFUSAL.format(user_id="eve", platform="fake")
    first = fake_platform()
    async with running(home, "", {"fake": lambda: first}) as daemon:
        await wait_until(lambda: started(first), what="adapter started")
        await first.inject(chat="c9", user_id="eve", text="hello")
        assert await replies(first, 1) == [refusal]
        assert daemon.router.refusals == 1
    path = budget_path(home)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert "hello" not in path.read_text(encoding="utf-8")

    second = fake_platform()
    async with running(home, "", {"fake": lambda: second}) as daemon:
        await wait_until(lambda: started(second), what="adapter started again")
        await second.inject(chat="c9", user_id="eve", text="anyone there?")
        await second.inject(chat="c9", user_id="mallory", text="hi")

        async def ignored() -> bool:
            return "user eve (not allowed) ignored; refused already" in caplog.text
        await wait_until(ignored, what="eve ignored after the restart")
        # mallory was never refused: she still gets her one refusal.
        assert await replies(second, 1) == [REFUSAL.format(user_id="mallory", platform="fake")]
        assert daemon.router.refusals == 1


async def test_the_budget_refuses_again_after_the_interval_and_ignores_a_bad_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    path = tmp_path / "run" / "chat-refusals.json"
    budget = RefusalBudget(path, interval=3600, clock=lambda: now[0])
    assert await budget.take("telegram", "7")
    assert not await budget.take("telegram", "7")
    assert await budget.take("slack", "7")  # per platform
    now[0] += 3599
    assert not await RefusalBudget(path, interval=3600, clock=lambda: now[0]).take(
        "telegram", "7")
    now[0] += 2
    assert await RefusalBudget(path, interval=3600, clock=lambda: now[0]).take("telegram", "7")
    path.write_text("{not json", encoding="utf-8")
    assert await RefusalBudget(path, interval=3600, clock=lambda: now[0]).take("telegram", "7")
    assert "refusal budget chat-refusals.json is unreadable" in caplog.text


async def test_a_file_the_platform_refuses_on_upload_is_named_in_one_more_line(
    board: Board, tmp_path: Path,
) -> None:
    task = await make_task(board, "Keys")
    work = board.attachments_path(task.id)
    work.mkdir(parents=True)
    (work / "notes.pdf").write_bytes(b"%PDF-1.4 notes")
    await board.subscribe(task.id, platform="fake", chat="c1")
    await claim_and_complete(board, task.id, summary="done",
                             metadata={"artifacts": [str(work / "notes.pdf")]})
    fake = FakeAdapter(platform="fake")
    fake.script_failures(1, Receipt.delivered(["m1"]))  # the completion message goes
    fake.script_failures(1, Receipt.rejected("notes.pdf: file type not allowed",
                                             name="notes.pdf"))
    assert await notifier(board, fake, tmp_path).pump() == 1
    texts = [c.text for c in fake.calls if c.method == "send"]
    assert texts == ["✔ done · #1 Keys\ndone", "notes.pdf — not sent: file type not allowed"]
    assert str(tmp_path) not in "".join(t or "" for t in texts)
