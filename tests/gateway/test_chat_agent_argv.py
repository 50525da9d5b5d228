"""The command agent's argv, filled through the running daemon's chat router by the command
template rule: a chat message never runs as code, wherever the operator put ``{message}``.

Every attack is sent as a real chat message to a daemon whose agent is a real shell or
interpreter; the marker file the attack would create must never appear.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from gateway.chat.agents import OPTION_REFUSAL, SCRIPT_REFUSAL, VALUE_REFUSAL, argv_warnings
from platforms.fake import FakeAdapter
from tests.gateway.chat_harness import truthy
from tests.gateway.test_chat import ALICE, fake_platform, replies
from tests.gateway.test_daemon import running
from tests.kanban.workers.harness import wait_until


def _agent_config(argv: list[str]) -> str:
    # JSON is YAML: every word arrives exactly as written here.
    return f"agent:\n  kind: command\n  command:\n    argv: {json.dumps(argv)}\n    timeout: 30\n"


def _attacks(marker: Path) -> list[str]:
    m = shlex.quote(str(marker))
    return [f"x'; touch {m}; echo '", f"$(touch {m})", f"`touch {m}`", f"; touch {m}",
            f"x'); __import__('os').system('touch {m}'); print('"]


async def _converse(fake: FakeAdapter, texts: list[str]) -> list[str]:
    """Send each text in its own thread (one conversation at a time per thread would order
    them anyway) and return the answers, in the order of the texts."""
    for n, text in enumerate(texts):
        await fake.inject(chat="c1", thread=f"t{n}", user_id=ALICE, user_name="alice",
                          text=text)
    await replies(fake, len(texts))
    return [(await replies(fake, 1, thread=f"t{n}"))[0] for n in range(len(texts))]


@pytest.mark.parametrize("argv", [
    ["sh", "-c", "echo '{message}'"],
    ["bash", "-lc", "printf %s {message}"],
    ["python3", "-c", "print('{message}')"],
], ids=lambda argv: argv[0])
async def test_a_message_inside_a_script_never_runs_as_code(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, argv: list[str],
) -> None:
    marker = tmp_path / "MARKER"
    caplog.set_level("INFO")
    fake = fake_platform()
    attacks = _attacks(marker)
    async with running(tmp_path / "home", _agent_config(argv), {"fake": lambda: fake}):
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        answers = await _converse(fake, [*attacks, "hello"])
    assert not marker.exists()
    assert answers[:-1] == [SCRIPT_REFUSAL] * len(attacks)
    assert answers[-1] == "hello"  # plain words still go through the operator's script
    # The operator is told at start, and for each refused message, without the message.
    assert "agent.command.argv[2] puts {message} inside " in caplog.text
    refused = [r.getMessage() for r in caplog.records if "chat agent: not run" in r.getMessage()]
    assert len(refused) == len(attacks)
    assert all("{message}" in line and "$RELAYBOARD_CHAT_MESSAGE" in line for line in refused)
    assert "touch" not in caplog.text


ECHO_ARGV = """
import json, os, sys
from pathlib import Path
with Path("seen.jsonl").open("a", encoding="utf-8") as f:
    f.write(json.dumps([sys.argv[1:], os.environ["RELAYBOARD_CHAT_MESSAGE"],
                        os.environ["RELAYBOARD_CHAT_USER_NAME"]]) + "\\n")
print("received")
"""


def _seen(home: Path) -> list[list[object]]:
    return [json.loads(line) for path in sorted(home.glob("chat/threads/fake/*/seen.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


async def test_a_whole_word_message_arrives_verbatim_as_one_argument(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    script = tmp_path / "script.py"
    script.write_text(ECHO_ARGV, encoding="utf-8")
    home = tmp_path / "home"
    fake = fake_platform()
    # A word of its own must not start like an option (see the next test): each attack starts
    # with a letter here, and is otherwise exactly what a shell would run.
    texts = [t if t[0].isalnum() else f"x {t}" for t in _attacks(marker)]
    texts += ["Über $(touch x)\nsecond line", "日本語 'quoted' \"text\"", "4 > 3; `id`"]
    config = _agent_config(["python3", str(script), "{message}", "--text={message}"])
    async with running(home, config, {"fake": lambda: fake}):
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        answers = await _converse(fake, texts)
    assert answers == ["received"] * len(texts)
    seen = _seen(home)
    assert sorted(map(json.dumps, seen)) == sorted(
        json.dumps([[text, f"--text={text}"], text, "alice"]) for text in texts)
    assert not marker.exists()


async def test_a_message_that_could_read_as_an_option_is_not_passed_as_a_word(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    script = tmp_path / "script.py"
    script.write_text(ECHO_ARGV, encoding="utf-8")
    home = tmp_path / "home"
    marker = tmp_path / "MARKER"
    fake = fake_platform()
    texts = ["-rf everything", "--help", "+x", "@notes.txt", f"$(touch {marker})", "ok then"]
    caplog.set_level("INFO")
    async with running(home, _agent_config(["python3", str(script), "{message}"]),
                       {"fake": lambda: fake}):
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        answers = await _converse(fake, texts)
    assert answers == [OPTION_REFUSAL.format(first=t[0]) for t in texts[:-1]] + ["received"]
    assert "\n" not in answers[0] and "“-”" in answers[0]
    assert _seen(home) == [[["ok then"], "ok then", "alice"]]  # the others never ran
    assert "(the agent could read it as an option)" in caplog.text
    assert "everything" not in caplog.text
    assert not marker.exists()


async def test_a_flag_value_may_start_with_a_dash(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(ECHO_ARGV, encoding="utf-8")
    home = tmp_path / "home"
    fake = fake_platform()
    async with running(home, _agent_config(["python3", str(script), "--text={message}"]),
                       {"fake": lambda: fake}):
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        assert await _converse(fake, ["-rf everything"]) == ["received"]
    assert _seen(home) == [[["--text=-rf everything"], "-rf everything", "alice"]]


async def test_other_values_and_nul_characters_are_refused_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fake_platform()
    caplog.set_level("INFO")
    async with running(tmp_path / "home", _agent_config(["sh", "-c", "echo hi {user}"]),
                       {"fake": lambda: fake}):
        await wait_until(lambda: truthy(fake.started), what="adapter started")
        for n, (name, text) in enumerate([("alice", "hello"), ("Alice Smith", "hello"),
                                          ("alice", "a\x00b")]):
            await fake.inject(chat="c1", thread=f"t{n}", user_id=ALICE, user_name=name,
                              text=text)
            await replies(fake, n + 1)
        answers = [(await replies(fake, 1, thread=f"t{n}"))[0] for n in range(3)]
    assert answers[0] == "hi alice"
    assert answers[1] == VALUE_REFUSAL.format(what="user name")
    assert answers[2].startswith("The message holds a NUL character") and "\n" not in answers[2]
    assert "{user} is inside a larger word" in caplog.text
    assert "$RELAYBOARD_CHAT_USER_NAME" in caplog.text and "Smith" not in caplog.text


def test_argv_warnings_name_the_word_and_the_fix() -> None:
    assert argv_warnings(["my-agent", "{message}", "--user={user}", "sh", "-c", "s"]) == []
    (line,) = argv_warnings(["timeout", "60", "bash", "-lc", "agent '{message}'"])
    assert line.startswith("agent.command.argv[4] puts {message} inside a larger word")
    assert "nearly every message will be refused" in line
    assert "$RELAYBOARD_CHAT_MESSAGE" in line
    (line,) = argv_warnings(["python3", "-c", "{message}"])
    assert "inside a word a program runs as code" in line


def test_python_is_the_interpreter_the_tests_run() -> None:
    # The agents above are `python3` from PATH; it must be a real interpreter, like this one.
    assert sys.version_info[0] == 3
