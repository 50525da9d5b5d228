"""Chat files are private like the rest of the home: ``<home>/web-chat/`` and
``<home>/chat/history/`` folders 0700 and their files 0600 whatever the umask, and a tree an
older version left readable is tightened when it is next used."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from gateway.chat.history import History, entry
from platforms.base import Destination, InboundMessage
from platforms.web import WebAdapter

DEST = Destination("web", "dashboard", "main")


pytestmark = pytest.mark.usefixtures("umask_022")


def _modes(root: Path) -> dict[str, int]:
    """Every folder and file under (and including) ``root``, by relative path."""
    out = {".": stat.S_IMODE(os.lstat(root).st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(os.lstat(path).st_mode)
    return out


def _assert_private(root: Path) -> None:
    modes = _modes(root)
    for name, mode in modes.items():
        expected = 0o700 if (root / name).is_dir() else 0o600
        assert mode == expected, (name, oct(mode))


async def test_web_chat_history_uploads_and_files_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    history_dir = home / "web-chat"
    adapter = WebAdapter(history_dir=history_dir)
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize=4)
    await adapter.start(inbox)
    try:
        await adapter.send(DEST, "hello")
        report = tmp_path / "report.pdf"
        report.write_bytes(b"%PDF-1.7 report")
        await adapter.send_document(DEST, report, caption="the report")
        await adapter.upload("notes.txt", b"my notes")
    finally:
        await adapter.close()
    modes = _modes(history_dir)
    assert any(name.endswith(".jsonl") for name in modes)
    assert any(name.startswith("files/") and name.endswith("report.pdf") for name in modes)
    assert any(name.startswith("uploads/") and name.endswith("notes.txt") for name in modes)
    _assert_private(history_dir)


async def test_an_old_readable_web_chat_folder_is_tightened_at_start(tmp_path: Path) -> None:
    history_dir = tmp_path / "web-chat"
    (history_dir / "files" / "abc").mkdir(parents=True, mode=0o755)
    for folder in (history_dir, history_dir / "files", history_dir / "files" / "abc"):
        os.chmod(folder, 0o755)
    (history_dir / "main.jsonl").write_text("", encoding="utf-8")
    (history_dir / "files" / "abc" / "old.png").write_bytes(b"png")
    for path in (history_dir / "main.jsonl", history_dir / "files" / "abc" / "old.png"):
        os.chmod(path, 0o644)
    adapter = WebAdapter(history_dir=history_dir)
    await adapter.start(asyncio.Queue(maxsize=1))
    await adapter.close()
    _assert_private(history_dir)


async def test_chat_history_is_private_and_old_trees_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    history = History(home / "chat" / "history", limit=2)
    for i in range(6):  # past twice the limit: the compaction rewrites the file
        await history.append("telegram", "42", None, entry("user", f"hi {i}"))
    assert [e.text for e in await history.recent("telegram", "42", None)] == ["hi 4", "hi 5"]
    _assert_private(home / "chat")

    # A history an older version wrote with the umask's modes.
    for path in (home / "chat", home / "chat" / "history",
                 home / "chat" / "history" / "telegram"):
        os.chmod(path, 0o755)
    for path in (home / "chat" / "history" / "telegram").iterdir():
        os.chmod(path, 0o644)
    reopened = History(home / "chat" / "history", limit=2)
    assert len(await reopened.recent("telegram", "42", None)) == 2  # reading fixes them
    _assert_private(home / "chat")
