"""Artifact exfiltration, each attack performed for real against a real board, the notifier and an
adapter that reads every uploaded byte: a workspace swapped for a link to ``~/.ssh``, a hard
link to a key, another task's attachment declared as this task's artifact, and a file flipped
between a real file and a link to a key while the notifier delivers it, hundreds of times."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.notifier import DeliverySettings, Notifier, NotifierSettings
from kanban.board import Board
from kanban.errors import InvalidInput
from kanban.runtime.workspaces import cleanup_completed
from kanban.testing import claim_and_complete, make_task
from platforms.base import Destination
from platforms.fake import FakeAdapter
from platforms.receipts import Receipt

FAST = NotifierSettings(backoff_base=0.0, backoff_cap=0.0, tick_seconds=0.05, batch=64)
SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- do not leak"


class ReadingAdapter(FakeAdapter):
    """The fake adapter, keeping the bytes of every file at the moment it is uploaded."""

    def __init__(self) -> None:
        super().__init__(platform="fake", allowed_users=[])
        self.received: list[tuple[str, bytes]] = []

    def _read(self, paths: Sequence[Path]) -> None:
        for path in paths:
            try:
                self.received.append((path.name, path.read_bytes()))
            except OSError:
                self.received.append((path.name, b""))

    async def send_document(self, dest: Destination, path: Path,
                            caption: str | None = None) -> Receipt:
        self._read([path])
        return await super().send_document(dest, path, caption)

    async def send_multiple_images(self, dest: Destination, paths: Sequence[Path],
                                   caption: str | None = None) -> list[Receipt]:
        self._read(paths)
        return await super().send_multiple_images(dest, paths, caption)

    def leaked(self) -> bool:
        return any(SECRET in data for _, data in self.received)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    """``~/.ssh/id_rsa`` of a fake user home."""
    ssh = tmp_path / "user" / ".ssh"
    ssh.mkdir(parents=True)
    path = ssh / "id_rsa"
    path.write_bytes(SECRET)
    return path


def notifier(board: Board, adapter: FakeAdapter, tmp_path: Path) -> Notifier:
    return Notifier(lambda: [board], board.changes, {"fake": adapter},
                    DeliverySettings(relayboard_home=tmp_path / "home",
                                     user_home=tmp_path / "user"), FAST)


async def test_a_workspace_swapped_for_a_link_to_ssh_delivers_nothing(
    board: Board, tmp_path: Path, key: Path
) -> None:
    task = await make_task(board, "t")
    await board.subscribe(task.id, platform="fake", chat="c1")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True, exist_ok=True)
    os.rmdir(workspace)
    workspace.symlink_to(key.parent)  # the worker: rm -r $WS && ln -s ~/.ssh $WS
    with pytest.raises(InvalidInput, match="workspace is a symbolic link"):
        await board.complete(task.id, lease=claim.lease, artifacts=["id_rsa"])
    assert not any(board.attachments_dir.rglob("id_rsa"))
    assert key.read_bytes() == SECRET  # not moved out of ~/.ssh either
    # It completes without declaring anything, naming a file through the link in its summary.
    (key.parent / "keys.csv").write_bytes(SECRET)
    done = await board.complete(task.id, lease=claim.lease,
                                summary=f"keys at {workspace / 'keys.csv'}")
    if not os.path.lexists(workspace):  # a hand-claimed run's workspace goes at completion:
        workspace.symlink_to(key.parent)  # the worker, still running, links it again
    adapter = ReadingAdapter()
    await notifier(board, adapter, tmp_path).pump()
    assert adapter.received == [] and not adapter.leaked()
    assert adapter.texts[0].splitlines()[-1].startswith("keys.csv — not sent: ")
    # Cleanup removes only the link, and copies nothing through it.
    report = await cleanup_completed(board, done)
    assert not os.path.lexists(workspace)
    assert key.read_bytes() == SECRET and key.parent.is_dir()
    assert report.artifacts == {}


async def test_a_linked_folder_inside_the_workspace_is_refused_at_staging(
    board: Board, key: Path
) -> None:
    task = await make_task(board, "t")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "out").symlink_to(key.parent)
    with pytest.raises(InvalidInput, match="out: is a symbolic link"):
        await board.complete(task.id, lease=claim.lease, artifacts=["out/id_rsa"])
    assert key.read_bytes() == SECRET
    assert not any(board.attachments_dir.rglob("id_rsa"))


async def test_a_hard_link_to_a_key_is_refused_at_staging_and_at_delivery(
    board: Board, tmp_path: Path, key: Path
) -> None:
    task = await make_task(board, "t")
    await board.subscribe(task.id, platform="fake", chat="c1")
    claim = await board.claim(task.id)
    workspace = Path(claim.workspace or "")
    workspace.mkdir(parents=True, exist_ok=True)
    os.link(key, workspace / "k.txt")  # ln ~/.ssh/id_rsa k.txt
    with pytest.raises(InvalidInput, match=r"k\.txt: has 2 hard links"):
        await board.complete(task.id, lease=claim.lease, artifacts=["k.txt"])
    # The same link placed straight into its attachments (bypassing staging) and declared.
    attachments = board.attachments_path(task.id)
    attachments.mkdir(parents=True)
    os.link(key, attachments / "notes.txt")
    await board.complete(task.id, lease=claim.lease,
                         metadata={"artifacts": [str(attachments / "notes.txt")]})
    adapter = ReadingAdapter()
    await notifier(board, adapter, tmp_path).pump()
    assert adapter.received == [] and not adapter.leaked()
    assert adapter.texts[0].splitlines()[-1] == "notes.txt — not sent: a hard link"


async def test_another_tasks_attachment_never_reaches_this_tasks_thread(
    board: Board, tmp_path: Path
) -> None:
    other = await make_task(board, "payroll")
    theirs = board.attachments_path(other.id) / "salaries.csv"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"name,salary\nalice,1\n")
    mine = await make_task(board, "innocent")
    await board.subscribe(mine.id, platform="fake", chat="c1")
    own = board.attachments_path(mine.id) / "chart.csv"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"x,y\n")
    other_ws = board.workspaces_dir / str(other.id)
    other_ws.mkdir(parents=True)
    (other_ws / "draft.csv").write_bytes(b"secret draft")
    await claim_and_complete(board, mine.id, artifacts=[str(theirs), str(own),
                                                        str(other_ws / "draft.csv")])
    adapter = ReadingAdapter()
    await notifier(board, adapter, tmp_path).pump()
    assert adapter.received == [("chart.csv", b"x,y\n")]
    assert adapter.texts[0].splitlines()[-2:] == [
        "salaries.csv — not sent: outside the allowed folders",
        "draft.csv — not sent: outside the allowed folders"]
    # Mentioned in a summary instead of declared: the same.
    again = await make_task(board, "again")
    await board.subscribe(again.id, platform="fake", chat="c2")
    await claim_and_complete(board, again.id, summary=f"see {theirs}")
    await notifier(board, adapter, tmp_path).pump()
    assert [name for name, _ in adapter.received] == ["chart.csv"]
    assert "salaries.csv — not sent: outside the allowed folders" in adapter.texts[-1]


class Swapper(threading.Thread):
    """Flips ``path`` between a real file and a link to the key, atomically, until stopped."""

    def __init__(self, path: Path, key: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.key = path, key
        self.stop = threading.Event()
        self.flips = 0

    def run(self) -> None:
        tmp_file = self.path.with_name(".swap-file")
        tmp_link = self.path.with_name(".swap-link")
        while not self.stop.is_set():
            tmp_file.write_bytes(b"public,data\n")
            os.replace(tmp_file, self.path)
            tmp_link.unlink(missing_ok=True)
            os.symlink(self.key, tmp_link)
            os.replace(tmp_link, self.path)
            self.flips += 1


async def test_a_file_swapped_for_a_link_while_it_is_delivered_never_leaks(
    board: Board, tmp_path: Path, key: Path
) -> None:
    # 600 subscriptions to one task: one completion, 600 deliveries of the same racing file.
    task = await make_task(board, "report")
    chats = 600
    for n in range(chats):
        await board.subscribe(task.id, platform="fake", chat=f"c{n}")
    target = board.attachments_path(task.id) / "data.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"public,data\n")
    swapper = Swapper(target, key)
    adapter = ReadingAdapter()
    swapper.start()
    try:
        await claim_and_complete(board, task.id, artifacts=[str(target)])
        await notifier(board, adapter, tmp_path).pump()
    finally:
        swapper.stop.set()
        swapper.join(10)
    rows = await board.outbox(limit=chats)
    assert len(rows) == chats and all(r["state"] == "sent" for r in rows)
    assert not adapter.leaked()
    assert all(data == b"public,data\n" for _, data in adapter.received)
    # The race was really run: the swapper flipped throughout, and some deliveries saw the link.
    refused = [r for row in rows for r in row["receipts"] if r["status"] == "rejected"]
    assert swapper.flips > 50
    assert refused and adapter.received
    reasons = {r["reason"] for r in refused}
    assert reasons <= {"data.csv: refused (a symbolic link)",
                       "data.csv: refused (credential location)",
                       "data.csv: file not found"}, reasons
