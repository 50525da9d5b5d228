"""Forged lines through names and titles, performed against the real SDKs and their fake servers:
a task title and a file name carrying a newline and ``✔ done · #1``, or a right-to-left override
(U+202E), must reach the chat on one line with nothing invisible, as the server receives it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.commands import printable
from gateway.notifier import DeliverySettings, Notifier, NotifierSettings, render
from kanban.board import Board
from kanban.models import Event, Task
from kanban.testing import claim_and_complete, make_task
from platforms.base import Destination
from platforms.slack import SlackAdapter
from platforms.telegram import TelegramAdapter
from platforms.untrusted import clean_file_name, clean_line, clean_text
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, SlackServer
from tests.fakes.telegram_server import TOKEN, TelegramServer

FAST = NotifierSettings(backoff_base=0.0, backoff_cap=0.0, tick_seconds=0.05)
RLO = "\u202e"
FORGED = "\n✔ done · #1 Pay the invoice · @admin"
# Every character that must never reach a chat from a name: controls and bidi formatting.
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                       "\u2028\u2029]")


def test_the_shared_cleaners() -> None:
    assert clean_line("a\nb\r\nc\u2028d") == "a ⏎ b ⏎ c ⏎ d"
    assert clean_line(f"x{RLO}y\x1b[31m\x07\u200f\u2066z\x85w") == "xy[31mz ⏎ w"
    assert clean_file_name(f"report{FORGED}.pdf") == \
        "report ✔ done · #1 Pay the invoice · @admin.pdf"
    assert clean_file_name(f"invoice{RLO}fdp.exe") == "invoicefdp.exe"
    assert clean_file_name("a/../..") == "file" and clean_file_name("\x00") == "file"
    assert clean_text(f"one\r\ntwo{RLO}\tthree\x00") == "one\ntwo\tthree"
    assert printable(f"a{RLO}b\u200ec\u061cd") == "a\\u202eb\\u200ec\\u061cd"


def test_a_title_cannot_start_a_line_in_the_notification() -> None:
    task = Task.placeholder(12, "")
    task.title, task.assignee = f"Chart{FORGED}", f"bob{RLO}nimda"
    done = Event(1, 12, None, "completed", {"summary": f"fine{RLO}"}, None)
    lines = render(done, task).text.split("\n")
    assert lines == ["✔ done · #12 Chart ⏎ ✔ done · #1 Pay the invoice · @admin · @bobnimda",
                     "fine"]


async def test_forged_names_through_the_notifier_reach_telegram_on_one_line(
    board: Board, tmp_path: Path,
) -> None:
    task = await make_task(board, f"Quarterly report{FORGED}", assignee="reporter")
    work = board.attachments_path(task.id)
    work.mkdir(parents=True)
    forged_doc = work / f"report{FORGED}.pdf"
    forged_doc.write_bytes(b"%PDF-1.4 one")
    reversed_doc = work / f"invoice{RLO}fdp.exe.txt"
    reversed_doc.write_bytes(b"two")
    missing = work / f"gone{FORGED}.csv"
    await board.subscribe(task.id, platform="telegram", chat="4242")
    await claim_and_complete(board, task.id, summary=f"Done{RLO} — see files",
                             metadata={"artifacts": [str(forged_doc), str(reversed_doc),
                                                     str(missing)]})
    user_home = tmp_path / "user"
    user_home.mkdir()
    async with TelegramServer() as server:
        adapter = TelegramAdapter(TOKEN, base_url=server.api_base, poll_timeout=0,
                                  request_timeout=5, allowed_users=["42"])
        try:
            notifier = Notifier(lambda: [board], board.changes, {"telegram": adapter},
                                DeliverySettings(relayboard_home=tmp_path / "home",
                                                 user_home=user_home), FAST)
            assert await notifier.pump() == 1
        finally:
            await adapter.close()
        [message] = server.calls("sendMessage")
        documents = server.calls("sendDocument")
    text = message.params["text"]
    assert not INVISIBLE.search(text), text
    lines = text.split("\n")
    assert len(lines) == 3, lines
    assert lines[0].startswith("✔ done · #1 Quarterly report ⏎ ✔ done · #1 Pay the invoice")
    assert lines[1] == "Done — see files"
    assert lines[2].startswith("gone ✔ done · #1 Pay the invoice · @admin.csv — not sent: ")
    names = sorted(d.files["document"][0] for d in documents)
    assert names == ["invoicefdp.exe.txt", "report ✔ done · #1 Pay the invoice · @admin.pdf"]
    assert all(not INVISIBLE.search(n) for n in names)


async def test_a_forged_file_name_reaches_slack_clean(tmp_path: Path) -> None:
    path = tmp_path / f"chart{RLO}gnp.exe{FORGED}.pdf"
    path.write_bytes(b"%PDF-1.4 x")
    async with SlackServer() as server:
        adapter = SlackAdapter(BOT_TOKEN, APP_TOKEN, base_url=server.api_base, ping_interval=0.3,
                               timeout=5, retry_backoff=0.05, allowed_users=["U1"])
        try:
            receipt = await adapter.send_document(Destination("slack", "C1"), path)
        finally:
            await adapter.close()
        assert receipt.ok, receipt
        (url_call,) = server.calls("files.getUploadURLExternal")
        (complete,) = server.calls("files.completeUploadExternal")
    name = url_call.params["filename"]
    assert name == "chartgnp.exe ✔ done · #1 Pay the invoice · @admin.pdf"
    titles = [f.get("title") for f in json.loads(complete.params["files"])]
    assert titles == [name]
