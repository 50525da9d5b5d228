from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from platforms.base import Destination, InboundMessage
from platforms.chunking import split_text, utf16_len
from platforms.delivery import DeliveryPolicy, deliver_files
from platforms.errors import AdapterConfigError, TransientError
from platforms.fake import FakeAdapter
from platforms.receipts import MiB, Receipt, ReceiptStatus
from platforms.registry import ADAPTERS, create_adapter

DEST = Destination("fake", "c1", thread="t1")


def touch(path: Path, size: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


def policy(root: Path, home: Path, **kw: object) -> DeliveryPolicy:
    return DeliveryPolicy(allowed_roots=[root], home=home, **kw)  # type: ignore[arg-type]


def assert_no_dirs(receipt: Receipt, *dirs: Path) -> None:
    for d in dirs:
        assert str(d) not in (receipt.reason or "")


def test_file_inside_root_is_allowed_and_a_link_never_followed(root: Path, home: Path) -> None:
    f = touch(root / "w" / "chart.png")
    link = root / "link.png"
    link.symlink_to(f)  # even to a file that is itself allowed: nothing goes through a link
    assert policy(root, home).check(f) == f
    verdict = policy(root, home).check(link)
    assert isinstance(verdict, Receipt) and verdict.reason == "link.png: refused (a symbolic link)"


def test_outside_root_refused_and_a_link_out_of_it_too(
    tmp_path: Path, root: Path, home: Path
) -> None:
    secret = touch(tmp_path / "elsewhere" / "report.pdf")
    root.mkdir()
    (root / "sneaky.pdf").symlink_to(secret)
    (root / "sub").symlink_to(secret.parent)  # a linked folder below the root
    for candidate, why in ((secret, "outside the allowed folders"),
                           (root / "sneaky.pdf", "a symbolic link"),
                           (root / "sub" / "report.pdf", "a symbolic link")):
        verdict = policy(root, home).check(candidate)
        assert isinstance(verdict, Receipt)
        assert verdict.status is ReceiptStatus.REJECTED
        assert why in (verdict.reason or ""), candidate
        assert_no_dirs(verdict, tmp_path)


@pytest.mark.parametrize(
    "sub",
    [
        ".ssh/id_rsa.txt",
        ".aws/creds.json",
        ".gnupg/k.txt",
        ".kube/config.yaml",
        ".docker/config.json",
        ".config/x.yml",
    ],
)
def test_credential_dirs_refused_even_inside_a_root(home: Path, sub: str) -> None:
    f = touch(home / sub)
    verdict = policy(home, home).check(f)  # the whole home is an allowed root
    assert isinstance(verdict, Receipt)
    assert verdict.status is ReceiptStatus.REJECTED
    assert "credential" in (verdict.reason or "")
    assert_no_dirs(verdict, home)


def test_env_files_and_extra_denied_paths_refused(root: Path, home: Path) -> None:
    env = touch(root / ".env")
    env_local = touch(root / "app" / ".env.local")
    cfg = touch(root / "relay" / "config.yaml")
    secrets = touch(root / "relay" / "secrets" / "token.txt")
    pol = policy(
        root, home, denied_paths=[root / "relay" / "config.yaml", root / "relay" / "secrets"]
    )
    for f in (env, env_local, cfg, secrets):
        verdict = pol.check(f)
        assert isinstance(verdict, Receipt) and verdict.status is ReceiptStatus.REJECTED, f
    link = root / "innocent.txt"
    link.symlink_to(env)
    assert isinstance(pol.check(link), Receipt)
    assert pol.check(touch(root / "relay" / "notes.txt")) == (root / "relay" / "notes.txt")


def test_missing_file_is_rejected_with_basename_only(root: Path, home: Path) -> None:
    root.mkdir()
    verdict = policy(root, home).check(root / "deep" / "gone.pdf")
    assert isinstance(verdict, Receipt)
    assert verdict.reason == "gone.pdf: file not found"


def test_policy_cap_gives_too_large_receipt(root: Path, home: Path) -> None:
    f = touch(root / "big.pdf", size=3 * MiB)
    verdict = policy(root, home, max_bytes=2 * MiB).check(f)
    assert isinstance(verdict, Receipt)
    assert verdict.status is ReceiptStatus.TOO_LARGE
    assert verdict.reason == "big.pdf: too large (3.0 MB > 2.0 MB)"
    assert (verdict.size, verdict.limit) == (3 * MiB, 2 * MiB)


async def test_deliver_files_partitions_checks_and_captions(root: Path, home: Path) -> None:
    fake = FakeAdapter(max_bytes=1 * MiB, group_size=2, allowed_users=[])
    imgs = [touch(root / f"i{n}.png") for n in range(3)]
    video = touch(root / "v.mp4")
    song = touch(root / "s.mp3")
    doc = touch(root / "d.pdf")
    big = touch(root / "big.csv", size=MiB + 1)
    outside = touch(root.parent / "o.pdf")
    receipts = await deliver_files(
        fake,
        DEST,
        [doc, imgs[0], video, big, outside, imgs[1], song, imgs[2], imgs[0]],
        policy=policy(root, home),
        caption="Task 7 done",
    )
    methods = [(c.method, [p.name for p in c.files], c.text) for c in fake.calls]
    assert methods == [
        ("send_multiple_images", ["i0.png", "i1.png"], "Task 7 done"),
        ("send_multiple_images", ["i2.png"], None),
        ("send_video", ["v.mp4"], None),
        ("send_document", ["s.mp3"], None),
        ("send_document", ["d.pdf"], None),
    ]
    assert all(c.dest == DEST for c in fake.calls)
    statuses = [r.status.value for r in receipts]
    assert statuses == ["too_large", "rejected"] + ["delivered"] * 5
    assert receipts[0].reason == "big.csv: too large (1.000 MB > 1.000 MB)"
    for r in receipts:
        assert_no_dirs(r, root)


async def test_fake_records_chunks_scripts_failures_and_injects() -> None:
    fake = FakeAdapter(text_length=10, allowed_users=["u1"])
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    await fake.start(inbox)
    ok = await fake.send(DEST, "hello world, this is long")
    assert ok.ok and len(ok.message_ids) == len(fake.calls[0].chunks) == 4
    fake.script_failures(1, Receipt.failed("down", retryable=True, retry_after=2))
    fake.script_failures(1, TransientError("boom"))
    r = await fake.send(DEST, "x")
    assert (r.status, r.retryable, r.retry_after) == (ReceiptStatus.FAILED, True, 2)
    with pytest.raises(TransientError):
        await fake.send(DEST, "y")
    assert (await fake.send(DEST, "z")).ok
    assert fake.texts == ["hello world, this is long", "x", "y", "z"]
    await fake.inject(chat="c1", text="/status", user_id="u1", thread="t")
    await fake.inject(chat="c1", text="nope", user_id="stranger")
    await fake.inject(chat="c1", text="me", user_id="u1", is_self=True)
    msg = await asyncio.wait_for(inbox.get(), 1)
    assert (msg.text, msg.thread, msg.reply_destination(), msg.authorized) == (
        "/status",
        "t",
        Destination("fake", "c1", "t"),
        True,
    )
    # A stranger's message is delivered, marked unauthorized (the router refuses politely);
    # the bot's own message is dropped.
    stranger = await asyncio.wait_for(inbox.get(), 1)
    assert (stranger.user_id, stranger.authorized) == ("stranger", False)
    assert inbox.empty()
    await fake.close()
    assert fake.closed


async def test_fake_refuses_missing_and_oversize_files(tmp_path: Path) -> None:
    fake = FakeAdapter(max_bytes=10, allowed_users=[])
    r = await fake.send_document(DEST, tmp_path / "nope.pdf")
    assert r.status is ReceiptStatus.REJECTED and r.reason == "nope.pdf: file not found"
    r = await fake.send_video(DEST, touch(tmp_path / "v.mp4", size=11))
    assert r.status is ReceiptStatus.TOO_LARGE


def test_split_text_limits_and_utf16() -> None:
    assert split_text("", 5) == []
    assert split_text("abc def ghi", 7) == ["abc def", "ghi"]
    assert split_text("line1\nline2\nline3", 12) == ["line1\nline2", "line3"]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    emoji = "😀" * 5  # 10 UTF-16 units
    chunks = split_text(emoji, 4, length=utf16_len)
    assert chunks == ["😀😀", "😀😀", "😀"]
    assert utf16_len("a😀") == 3


def test_registry_builds_fake_and_refuses_unknown() -> None:
    assert set(ADAPTERS) >= {"telegram", "slack", "discord", "fake"}
    adapter = create_adapter("fake", allowed_users=["1"])
    assert isinstance(adapter, FakeAdapter) and adapter.name == "fake"
    with pytest.raises(AdapterConfigError, match="unknown platform 'irc'"):
        create_adapter("irc", allowed_users=[])
    with pytest.raises(AdapterConfigError, match="bad options"):
        create_adapter("fake", allowed_users=[], tokne="x")


def test_no_environment_reads() -> None:
    src = Path(__file__).resolve().parents[2] / "platforms"
    for f in src.glob("*.py"):
        text = f.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv" not in text, f.name
    assert os.sep  # keep the import used


def test_registry_builds_each_real_adapter_from_plain_values() -> None:
    from platforms.discord import DiscordAdapter
    from platforms.slack import SlackAdapter
    from platforms.telegram import TelegramAdapter

    tg = create_adapter("telegram", token="1:x", allowed_users=["42"], base_url="http://h:1/bot/")
    sl = create_adapter(
        "slack", bot_token="xoxb", app_token="xapp", allowed_users=[], base_url="http://h:2/api"
    )
    dc = create_adapter(
        "discord",
        token="t",
        allowed_users=["*"],
        base_url="http://h:3/api/v10/",
        gateway_url="ws://h:3/gw",
    )
    assert isinstance(tg, TelegramAdapter) and tg.limits().text_length == 4096
    assert isinstance(sl, SlackAdapter) and sl.limits().group_size == 10
    assert isinstance(dc, DiscordAdapter) and dc.limits().text_length == 2000
    assert tg.bot.base_url == "http://h:1/bot1:x"
    assert tg.bot.base_file_url == "http://h:1/file/bot1:x"
    assert sl.client.base_url == "http://h:2/api/"
    assert dc.base_url == "http://h:3/api/v10"  # used as Route.BASE, as given


class _ReadingFake(FakeAdapter):
    """Keeps the bytes of every uploaded file, read at the moment of the upload."""

    def __init__(self) -> None:
        super().__init__(allowed_users=[])
        self.received: list[bytes] = []

    async def send_document(self, dest: Destination, path: Path,
                            caption: str | None = None) -> Receipt:
        try:
            self.received.append(path.read_bytes())
        except OSError:
            pass
        return await super().send_document(dest, path, caption)


async def test_a_file_swapped_for_a_link_between_check_and_upload_never_leaks(
    root: Path, home: Path, tmp_path: Path
) -> None:
    secret = touch(home / ".ssh" / "id_rsa")
    secret.write_bytes(b"PRIVATE KEY")
    target = touch(root / "data.csv")
    target.write_bytes(b"public")
    stop = threading.Event()
    flips = 0

    def swap() -> None:
        nonlocal flips
        tmp_file, tmp_link = root / ".f", root / ".l"
        while not stop.is_set():
            tmp_file.write_bytes(b"public")
            os.replace(tmp_file, target)
            tmp_link.unlink(missing_ok=True)
            tmp_link.symlink_to(secret)
            os.replace(tmp_link, target)
            flips += 1

    fake = _ReadingFake()
    pol = policy(root, home)
    private = tmp_path / "private"
    private.mkdir()
    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    outcomes: list[str] = []
    try:
        for _ in range(2000):
            receipts = await deliver_files(fake, DEST, [target], policy=pol,
                                           scratch_parent=private)
            outcomes.extend(r.status.value for r in receipts)
    finally:
        stop.set()
        swapper.join(10)
    assert not any(b"PRIVATE" in data for data in fake.received)
    assert set(fake.received) == {b"public"}
    assert flips > 100 and {"delivered", "rejected"} <= set(outcomes)  # the race really ran
    assert not any(private.iterdir())  # every private copy was removed


async def test_uploads_go_from_a_private_copy(root: Path, home: Path) -> None:
    doc = touch(root / "r.pdf")
    doc.write_bytes(b"%PDF")
    seen: list[tuple[Path, int, int, bytes]] = []

    class Spy(FakeAdapter):
        async def send_document(self, dest: Destination, path: Path,
                                caption: str | None = None) -> Receipt:
            seen.append((path, path.stat().st_mode & 0o777,
                         path.parent.parent.stat().st_mode & 0o777, path.read_bytes()))
            return await super().send_document(dest, path, caption)

    [receipt] = await deliver_files(Spy(allowed_users=[]), DEST, [doc], policy=policy(root, home))
    assert receipt.ok
    [(path, mode, dir_mode, data)] = seen
    assert path.name == "r.pdf" and path != doc and not path.is_relative_to(root)
    assert (mode, dir_mode, data) == (0o600, 0o700, b"%PDF")
    assert not path.exists()  # removed once sent
