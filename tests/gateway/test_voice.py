"""Voice notes in: a Telegram voice note through the real SDK and a running gateway, transcribed by
a loopback OpenAI-compatible endpoint, then handled as typed text with one line echoing it; an
endpoint that fails, or none at all, gets a clear answer and runs nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.chat.voice import HEARD_CHARS, NOT_SET_UP, Transcriber, TranscriptionFailed
from gateway.config_schema import TranscriptionConfig
from platforms.registry import create_adapter
from tests.fakes.common import free_port
from tests.fakes.telegram_server import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_server import TelegramServer
from tests.fakes.transcription_server import TranscriptionServer
from tests.gateway.test_daemon import running
from tests.kanban.workers.harness import wait_until

OGG = b"OggS\x00\x02" + bytes(range(64)) * 4  # what a voice note's bytes start like


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def stt() -> AsyncIterator[TranscriptionServer]:
    async with TranscriptionServer() as server:
        yield server


@pytest.fixture
async def tg() -> AsyncIterator[TelegramServer]:
    async with TelegramServer() as server:
        yield server


def config_for(stt: TranscriptionServer | None, max_bytes: int | None = None) -> str:
    text = "kanban: {auto_decompose: false}\n"
    if stt is not None:
        text += (f"agent:\n  transcription: {{base_url: '{stt.base_url}', model: whisper-1"
                 + (f", max_bytes: {max_bytes}" if max_bytes else "") + "}\n")
    return text


def telegram(tg: TelegramServer) -> object:
    return lambda: create_adapter("telegram", token=TELEGRAM_TOKEN, allowed_users=["42"],
                                  base_url=tg.api_base)


async def replies(tg: TelegramServer, count: int) -> list[str]:
    calls = await tg.wait_until(lambda: len(tg.calls("sendMessage")) >= count and
                                tg.calls("sendMessage"), limit=30)
    return [str(c.params["text"]) for c in calls]


def recordings(home: Path) -> list[Path]:
    return sorted((home / "chat" / "threads").rglob("voice-*.ogg"))


async def test_a_voice_note_is_transcribed_echoed_and_handled_as_the_command(
    tmp_path: Path, tg: TelegramServer, stt: TranscriptionServer,
) -> None:
    home = tmp_path / "home"
    stt.hear("/kanban create Chart the sales")
    async with running(home, config_for(stt), {"telegram": telegram(tg)}) as daemon:
        tg.push_message(chat_id=77, text="", voice=OGG)
        (answer,) = await replies(tg, 1)
        lines = answer.splitlines()
        assert lines[0] == "🎙 heard: /kanban create Chart the sales"
        assert lines[1].startswith("Created #1 Chart the sales")
        (call,) = stt.received()
        assert call.params["model"] == "whisper-1"
        name, data = call.files["file"]
        assert data == OGG and name.endswith(".ogg")
        board = await daemon.boards.open("default")
        (task,) = await board.list_tasks()
        assert task.title == "Chart the sales"
        assert not task.metadata.get("inputs")  # the recording is not an attachment

        async def removed() -> bool:
            return not recordings(home)
        await wait_until(removed, what="the recording removed once heard")

        # Free text spoken with a caption: both reach the agent as one message, echoed cut short.
        stt.hear("and please " + "really " * 40 + "hurry")
        tg.push_message(chat_id=77, text="note:", voice=OGG)
        second = (await replies(tg, 2))[1]
        heard = second.splitlines()[0]
        assert heard.startswith("🎙 heard: and please really") and heard.endswith("…")
        assert len(heard) <= len("🎙 heard: ") + HEARD_CHARS

        async def kept_as_typed() -> bool:  # the history holds the caption and the words
            files = (home / "chat" / "history").rglob("*")
            return "note:\\nand please" in "".join(p.read_text() for p in files if p.is_file())
        await wait_until(kept_as_typed, what="the spoken text in the history")


async def test_a_failing_endpoint_is_said_plainly_and_nothing_runs_or_is_lost(
    tmp_path: Path, tg: TelegramServer, stt: TranscriptionServer,
) -> None:
    home = tmp_path / "home"
    stt.fail(503, "model is overloaded, try later")
    async with running(home, config_for(stt), {"telegram": telegram(tg)}) as daemon:
        tg.push_message(chat_id=77, text="", voice=OGG)
        (answer,) = await replies(tg, 1)
        assert answer == ("🎙 I could not transcribe your voice note: the transcription service "
                          "answered HTTP 503: model is overloaded, try later. Nothing was done "
                          "— send it again in a moment, or type it.")
        assert "127.0.0.1" not in answer and str(home) not in answer
        board = await daemon.boards.open("default")
        assert await board.list_tasks() == []
        (kept,) = recordings(home)  # the recording stays with the conversation
        assert kept.read_bytes() == OGG
        assert daemon.router.handled == 0


async def test_without_an_endpoint_voice_is_not_set_up_and_is_not_even_fetched(
    tmp_path: Path, tg: TelegramServer,
) -> None:
    async with running(tmp_path / "home", config_for(None), {"telegram": telegram(tg)}):
        tg.push_message(chat_id=77, text="", voice=OGG)
        (answer,) = await replies(tg, 1)
    assert answer == NOT_SET_UP
    assert "agent.transcription" in answer
    assert not tg.calls("getFile")


async def test_a_strangers_voice_is_refused_unheard_and_a_long_one_is_refused_by_size(
    tmp_path: Path, tg: TelegramServer, stt: TranscriptionServer,
) -> None:
    async with running(tmp_path / "home", config_for(stt, max_bytes=100),
                       {"telegram": telegram(tg)}):
        tg.push_message(chat_id=78, text="", voice=OGG, user_id=7, username="eve")
        tg.push_message(chat_id=77, text="", voice=OGG)
        answers = await replies(tg, 2)
    assert any("allow-list" in a for a in answers)
    (too_long,) = [a for a in answers if "allow-list" not in a]
    assert too_long.startswith("voice-") and "was not received: too large" in too_long
    assert stt.received() == []


# ---- the client on its own ---------------------------------------------------------------------

def transcriber(base_url: str, **extra: object) -> Transcriber:
    return Transcriber(TranscriptionConfig.model_validate(
        {"base_url": base_url, "model": "whisper-1", **extra}))


async def test_the_client_sends_the_key_and_says_each_failure_in_one_line(
    tmp_path: Path,
) -> None:
    note = tmp_path / "voice.ogg"
    note.write_bytes(OGG)
    async with TranscriptionServer(key="sk-secret-key") as server:
        assert await transcriber(server.base_url, api_key="sk-secret-key").transcribe(
            note) == "make a chart of the sales"
        with pytest.raises(TranscriptionFailed, match="HTTP 401: Incorrect API key provided"):
            await transcriber(server.base_url, api_key="wrong").transcribe(note)
        server.script.append((200, {"no": "text"}))
        with pytest.raises(TranscriptionFailed, match="answer has no text"):
            await transcriber(server.base_url, api_key="sk-secret-key").transcribe(note)
        server.hang()
        with pytest.raises(TranscriptionFailed, match=r"did not answer within 0\.2 s"):
            await transcriber(server.base_url, api_key="sk-secret-key",
                              timeout=0.2).transcribe(note)
    with pytest.raises(TranscriptionFailed, match="cannot be reached"):
        await transcriber(f"http://127.0.0.1:{free_port()}/v1").transcribe(note)
