from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from platforms.files import (
    EXTENSION_GROUPS,
    FILE_KINDS,
    FileKind,
    classify,
    extract_local_files,
    image_size,
    partition_files,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_every_documented_extension_is_classified() -> None:
    expected = {
        "png": "image",
        "jpg": "image",
        "jpeg": "image",
        "gif": "image",
        "webp": "image",
        "bmp": "image",
        "tiff": "image",
        "svg": "image",
        "mp4": "video",
        "mov": "video",
        "avi": "video",
        "mkv": "video",
        "webm": "video",
        "3gp": "video",
        "mp3": "audio",
        "wav": "audio",
        "ogg": "audio",
        "opus": "audio",
        "m4a": "audio",
        "flac": "audio",
    }
    docs = (
        "pdf docx doc odt rtf txt md epub xlsx xls ods csv tsv json xml yaml yml pptx ppt odp key "
        "zip tar gz tgz bz2 xz 7z html htm"
    ).split()
    expected.update({d: "document" for d in docs})
    assert {k: v.value for k, v in FILE_KINDS.items()} == expected
    assert len(EXTENSION_GROUPS) == 8
    assert classify("/x/Chart.PNG") is FileKind.IMAGE
    assert classify("/x/a.exe") is None


@pytest.mark.parametrize(
    "name",
    [
        "report.pdf",
        "data.xlsx",
        "table.csv",
        "deck.pptx",
        "bundle.tar",
        "page.html",
        "song.mp3",
        "clip.mp4",
        "chart.png",
        "notes.md",
        "a.7z",
        "cfg.yml",
        "b.tgz",
    ],
)
def test_extracts_each_kind(tmp_path: Path, name: str) -> None:
    f = touch(tmp_path / name)
    files, cleaned = extract_local_files(f"Done: {f} is ready.")
    assert files == [f]
    assert cleaned == "Done: is ready."


def test_home_relative_and_quoted_paths_with_spaces(tmp_path: Path) -> None:
    home = tmp_path / "home"
    a = touch(home / "out" / "chart.png")
    b = touch(tmp_path / "my reports" / "Q3 summary.pdf")
    text = f'See ~/out/chart.png and "{b}" for details'
    files, cleaned = extract_local_files(text, home=home)
    assert files == [a, b]
    assert cleaned == "See and for details"


def test_skips_code_urls_missing_and_directories(tmp_path: Path) -> None:
    f = touch(tmp_path / "real.csv")
    (tmp_path / "dir.pdf").mkdir()
    text = (
        f"```\ncat {f}\n```\n"
        f"run `open {f}` or see https://example.com{f} and file://{f}\n"
        f"missing {tmp_path}/nope.pdf, dir {tmp_path}/dir.pdf"
    )
    files, cleaned = extract_local_files(text)
    assert files == []
    assert cleaned == text


def test_deduplicates_and_removes_every_mention(tmp_path: Path) -> None:
    f = touch(tmp_path / "r.pdf")
    g = touch(tmp_path / "pic.JPG")
    files, cleaned = extract_local_files(f"{f}\n({g}) then again {f}.\n```\n{f}\n```")
    assert files == [f, g]
    assert str(tmp_path) in cleaned  # only inside the fenced block
    assert cleaned.startswith("() then again .")


def test_relative_paths_and_unknown_extensions_ignored(tmp_path: Path) -> None:
    touch(tmp_path / "x.exe")
    files, _ = extract_local_files(f"relative/a.pdf {tmp_path}/x.exe")
    assert files == []


def test_partition_keeps_order_and_sends_unknown_as_documents() -> None:
    part = partition_files(["/a.png", "/b.mp4", "/c.mp3", "/d.pdf", "/e.bin", "/f.jpg"])
    assert part.images == [Path("/a.png"), Path("/f.jpg")]
    assert part.videos == [Path("/b.mp4")]
    assert part.audio == [Path("/c.mp3")]
    assert part.documents == [Path("/d.pdf"), Path("/e.bin")]


def png_bytes(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def jpeg_bytes(width: int, height: int) -> bytes:
    app0 = (
        b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    )
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def test_image_size_reads_png_jpeg_gif(tmp_path: Path) -> None:
    assert image_size(touch(tmp_path / "a.png", png_bytes(640, 480))) == (640, 480)
    assert image_size(touch(tmp_path / "b.jpg", jpeg_bytes(1920, 1080))) == (1920, 1080)
    gif = b"GIF89a" + struct.pack("<HH", 33, 44) + b"\x00" * 10
    assert image_size(touch(tmp_path / "c.gif", gif)) == (33, 44)
    assert image_size(touch(tmp_path / "d.png", b"not an image")) is None
    assert image_size(tmp_path / "missing.png") is None


@pytest.mark.parametrize("name", ["b.tar.gz", "b.tar.bz2", "b.tar.xz", "report.v2.final.pdf"])
@pytest.mark.parametrize("after", ["", ".", ",", ")", ":", "!", ". Next", ", then", ": done"])
def test_multi_dot_names_bare_and_before_punctuation(tmp_path: Path, name: str,
                                                      after: str) -> None:
    f = touch(tmp_path / name)
    touch(tmp_path / name.rsplit(".", 1)[0])  # "b.tar" exists too: it must not be chosen
    files, cleaned = extract_local_files(f"(see {f}{after}")
    assert files == [f]
    assert cleaned == f"(see {after}".strip()


def test_multi_dot_name_quoted(tmp_path: Path) -> None:
    f = touch(tmp_path / "dump.tar.gz")
    files, _ = extract_local_files(f'archive "{f}" is ready')
    assert files == [f]
