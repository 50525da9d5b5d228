"""The command-template rule against a grammar of template shapes, and against real interpreters.

The grammar builds templates the way operators write them — wrappers (``timeout 60``,
``nice -n 5``, ``env A=1``, ``tmux new-session -d``), shells with option clusters, scripts with
comments holding quotes, ``python3 -c`` / ``perl -e`` nested in ``sh -c``, ``eval`` — and knows,
for every placeholder it places, whether the word is data (a whole argument of a program that
takes it as data) or not (embedded in a larger word, or a word a program runs as code). The
property: a fill is refused, or each value is in the argv only as an exact whole word or
``--flag=value`` in a data position, and anywhere else only made of the safe characters.

Then a bounded set of templates runs for real, with a marker file as the payload's target.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kanban.errors import SpawnError, TemplateRefused
from kanban.runtime.template import TemplateValues, expand_template, fill_words

# Written out here rather than imported: the test states the rule on its own.
SAFE = re.compile(r"[A-Za-z0-9_./:+-]*\Z")
TAG = "ZQX"  # every generated path value carries it; no template text does
HOSTILE = [";touch X;:", "$(touch X)", "`touch X`", "'", '"', "\\", "\n", "#", "&&", "|", " ",
           "$'\\x41'", "é", "日本", "${IFS}", "*", "~", "@", "%s", "=", ",", "{a,b}", "!", "\t"]
DATA, CODE, EMBEDDED = "data", "code", "embedded"


@dataclass
class Shape:
    words: list[str] = field(default_factory=list)
    roles: dict[int, str] = field(default_factory=dict)  # index of a placeholder word → role

    def add(self, word: str, role: str | None = None) -> None:
        if role is not None:
            self.roles[len(self.words)] = role
        self.words.append(word)


KEYS = st.sampled_from(["{workspace}", "{prompt_file}", "{workspace}", "{model}", "{board}",
                        "{task_id}"])


@st.composite
def script_text(draw: st.DrawFn) -> str:
    """A shell script with placeholders embedded the ways people write them."""
    def fragment(key: str) -> st.SearchStrategy[str]:
        return st.sampled_from([
            f"echo {key}", f"echo '{key}'", f'echo "{key}"', f'echo "pre-{key}-post"',
            f"# it's a \"comment\" {key}\n:", f"x={key}; echo \"$x\"", f"echo $(echo {key})",
            f"echo `echo {key}`", f"python3 -c \"print('{key}')\"",
            f"python3 -Ic 'print(\"{key}\")'", f"perl -e 'print \"{key}\"'", f"eval echo {key}",
            f"tmux new-session -d 'echo {key}'", f": {key}", f"printf %s {key} >/dev/null",
            f"cd {key} || true",
        ])
    parts = [draw(fragment(draw(KEYS))) for _ in range(draw(st.integers(1, 3)))]
    return draw(st.sampled_from(["; ", "\n", " && "])).join(parts)


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    shape = Shape()
    wrapper = draw(st.sampled_from([[], ["timeout", "60"], ["nice", "-n", "5"], ["env", "A=1"],
                                    ["tmux", "new-session", "-d"], ["env", "-i", "B=2"]]))
    for word in wrapper:
        shape.add(word)
    # Everything after tmux is a shell command line: nothing there is data.
    under_tmux = bool(wrapper) and wrapper[0] == "tmux"

    def data() -> str:
        return CODE if under_tmux else DATA

    kind = draw(st.sampled_from(["shell", "python", "perl", "program", "eval"]))
    key = draw(KEYS)
    if kind == "shell":
        shape.add(draw(st.sampled_from(["sh", "bash", "/bin/sh", "dash", "zsh"])))
        for word in draw(st.sampled_from([["-c"], ["-lc"], ["-ec"], ["-euc"], ["-e", "-c"],
                                          ["-o", "pipefail", "-c"], ["-c", "--"],
                                          ["-c", "-x"]])):
            shape.add(word)
        if draw(st.booleans()):
            shape.add(key, CODE)
        else:
            shape.add(draw(script_text()), EMBEDDED)
        if draw(st.booleans()):  # positional arguments after the script
            shape.add("sh")
            shape.add(draw(KEYS), data())
            shape.add(f"--at={draw(KEYS)}", data())
    elif kind in ("python", "perl"):
        if kind == "python":
            shape.add("python3")
            shape.add(draw(st.sampled_from(["-c", "-Ic"])))
        else:
            shape.add("perl")
            shape.add(draw(st.sampled_from(["-e", "-E", "-le"])))
        if draw(st.booleans()):
            shape.add(key, CODE)
        else:
            quote = draw(st.sampled_from(["'", '"']))
            shape.add(f"print({quote}{key}{quote}) # it's \"{key}\"", EMBEDDED)
        if draw(st.booleans()):
            shape.add(draw(KEYS), data())
    elif kind == "program":
        shape.add(draw(st.sampled_from(["agent", "/usr/local/bin/my-agent", "printf"])))
        for _ in range(draw(st.integers(1, 4))):
            form = draw(st.sampled_from(["whole", "long", "flag", "embedded", "eval-flag"]))
            key = draw(KEYS)
            if form == "whole":
                shape.add(key, data())
            elif form == "long":
                shape.add(draw(st.sampled_from(["--cwd", "--prompt-file", "--out"])))
                shape.add(key, data())
            elif form == "flag":
                shape.add(f"--{draw(st.sampled_from(['cwd', 'prompt-file', 'x1']))}={key}",
                          data())
            elif form == "eval-flag":
                shape.add(f"--{draw(st.sampled_from(['eval', 'command']))}={key}", CODE)
            else:
                shape.add(draw(st.sampled_from([f"x{key}", f"A={key}", f"{key}/sub",
                                                f"--x={key}-y", f"'{key}'"])), EMBEDDED)
    else:
        shape.add("eval")
        shape.add(key, CODE)
        shape.add(f"--x={draw(KEYS)}", CODE)
    return shape


def path_values() -> st.SearchStrategy[str]:
    hostile = st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3).map("".join)
    return st.one_of(
        st.builds(lambda h: f"/{TAG}{h}", hostile),
        st.builds(lambda h: f"/{TAG}/a{h}b", hostile),
        st.sampled_from([f"/srv/{TAG}_1.2:3+4-x", f"/{TAG}", f"-{TAG}", f"--{TAG}=1",
                         f"/home/me/{TAG} dir"]),
        st.builds(lambda t: f"/{TAG}{t}", st.text(max_size=8)),
    )


VALUES = st.builds(
    TemplateValues,
    task_id=st.sampled_from([7, 123456]),
    board=st.sampled_from(["ops", "my_board-1"]),
    workspace=path_values(),
    prompt_file=path_values(),
    model=st.sampled_from(["", "m1", "llama3.1:8b", "org/model@rev", "x;y", "-m"]),
)


def _placeholders(word: str) -> list[str]:
    return re.findall(r"\{(?:task_id|board|workspace|prompt_file|model)\}", word)


_PAYLOAD = TemplateValues(7, "ops", f"/{TAG};touch X;:", f"/{TAG}/$(touch X)", "m1")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes(), values=VALUES)
# Always tried, whatever the random draw: one of each kind of code word.
@example(Shape(["eval", "{workspace}"], {1: CODE}), _PAYLOAD)
@example(Shape(["tmux", "new-session", "-d", "agent", "--cwd", "{workspace}"], {5: CODE}),
         _PAYLOAD)
@example(Shape(["sh", "-c", "--", "{workspace}"], {3: CODE}), _PAYLOAD)
@example(Shape(["bash", "-o", "pipefail", "-c", "{prompt_file}"], {4: CODE}), _PAYLOAD)
@example(Shape(["python3", "-Ic", "{workspace}", "{workspace}"], {2: CODE, 3: DATA}),
         _PAYLOAD)
@example(Shape(["agent", "--eval={workspace}", "--cwd={workspace}"], {1: CODE, 2: DATA}),
         _PAYLOAD)
@example(Shape(["sh", "-c", "echo '{workspace}'", "sh", "{workspace}"],
                   {2: EMBEDDED, 4: DATA}), _PAYLOAD)
def test_every_value_is_a_whole_data_word_or_made_of_safe_characters(
        shape: Shape, values: TemplateValues) -> None:
    mapping = values.mapping()
    try:
        argv = expand_template(shape.words, values)
    except SpawnError as refused:
        assert "\n" not in str(refused)
        return
    assert len(argv) == len(shape.words)
    for index, word in enumerate(shape.words):
        keys = _placeholders(word)
        if not keys:
            assert argv[index] == word  # the template's own text, untouched
            continue
        role = shape.roles[index]
        flag = re.fullmatch(r"(--[A-Za-z0-9][A-Za-z0-9_-]*=)(\{[a-z_]+\})", word)
        if role == DATA and word in mapping and not SAFE.match(mapping[word]):
            assert argv[index] == mapping[word]
        elif role == DATA and flag and not SAFE.match(mapping[flag.group(2)]):
            assert argv[index] == flag.group(1) + mapping[flag.group(2)]
        else:
            for key in keys:
                assert SAFE.match(mapping[key]), (shape.words, index, key, mapping[key])
    # Independently of the structure: a value outside the safe set appears only as a whole
    # word or as a whole --flag=value word; any other word with the tag in it has it only
    # from safe values.
    paths = {values.workspace, values.prompt_file}
    hostile = {v for v in paths if not SAFE.match(v)}
    safe = sorted(paths - hostile, key=len, reverse=True)
    for word in argv:
        if TAG not in word or word in hostile or any(
                re.fullmatch(r"--[A-Za-z0-9][A-Za-z0-9_-]*=" + re.escape(v), word)
                for v in hostile):
            continue
        rest = word
        for value in safe:
            rest = rest.replace(value, "")
        assert TAG not in rest, (argv, word, hostile)


@settings(max_examples=100, deadline=None)
@given(value=st.text(min_size=1).map(lambda t: "/" + t).filter(
    lambda v: not any(c in v for c in "\x00\n\r")))
def test_data_positions_accept_any_absolute_path(value: str) -> None:
    """The rule refuses only where it must: whole argument words take any path as it is."""
    template = ["agent", "--cwd", "{workspace}", "--prompt-file={workspace}", "sh", "-c",
                'cd "$1"', "sh", "{workspace}"]
    argv = expand_template(template, TemplateValues(1, "b", value, "/p", "m"))
    assert argv == ["agent", "--cwd", value, f"--prompt-file={value}", "sh", "-c", 'cd "$1"',
                    "sh", value]


# ---- real executions --------------------------------------------------------------------------

def _payloads(marker: Path) -> list[str]:
    m = shlex.quote(str(marker))
    return [f"/w/y;touch {m};:", f"/w/$(touch {m})", f"/w/`touch {m}`",
            f"/w/'; touch {m}; '", f'/w/"; touch {m}; "', f'/w/\\"; touch {m} #',
            f"/w/&& touch {m}", f"/w/|touch {m}|", f"/w/\"');import os;os.system('touch {m}')#",
            f"/w/\";system('touch {m}');\"", f"/w/@{{[system('touch {m}')]}}"]


# The shapes that ran the payload under the quoting scanner, and their neighbours. Each line is
# a profile's `command` as an operator types it; {M} is an output file in the test's folder.
EMBEDDED_SHAPES = [
    "timeout 60 bash -lc 'echo {workspace} > {M}; exit 0'",
    "nice sh -ec 'echo {workspace} > {M}'",
    "sh -c '# it'\"'\"'s a comment\necho {workspace} > {M}'",
    "sh -c '# a \"quoted\" comment\necho {workspace} > {M}'",
    "sh -c 'python3 -c \"import sys; open(sys.argv[1], \\\"w\\\")"
    ".write(\\\"{workspace}\\\")\" {M}'",
    "sh -c \"python3 -Ic 'open(\\\"{M}\\\", \\\"w\\\").write(\\\"{workspace}\\\")'\"",
    "python3 -Ic 'open(\"{M}\", \"w\").write(\"{workspace}\")'",
    "perl -e 'open(F, \">\", \"{M}\"); print F \"{workspace}\"'",
    "sh -c 'eval echo {workspace} > {M}'",
    "env A=1 sh -c 'echo \"{workspace}\" > {M}'",
    "bash -c \"echo $'{workspace}' > {M}\"",
    "python3 -c {workspace}",
    "sh -c {workspace}",
    "perl -e {workspace}",
]
# Whole-word data positions: any value goes in as it is, and must come out as it is.
WHOLE_SHAPES = [
    ["sh", "-c", 'printf %s "$1"', "sh", "{workspace}"],
    ["bash", "-lc", 'printf %s "$1"', "bash", "{workspace}"],
    ["python3", "-c", "import sys; sys.stdout.write(sys.argv[1])", "{workspace}"],
    ["python3", "-Ic", "import sys; sys.stdout.write(sys.argv[1].split('=', 1)[1])",
     "--at={workspace}"],
    ["perl", "-e", "print $ARGV[0]", "{workspace}"],
    ["env", "A=1", "printf", "%s", "{workspace}"],
    ["timeout", "60", "printf", "%s", "{workspace}"],
    ["nice", "-n", "5", "printf", "%s", "{workspace}"],
]
INTERPRETERS = ["sh", "bash", "python3", "perl", "env", "timeout", "nice"]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


@pytest.fixture(scope="module", autouse=True)
def _interpreters() -> None:
    missing = [name for name in INTERPRETERS if shutil.which(name) is None]
    if missing:
        pytest.fail(f"the real-execution tests need {', '.join(missing)} on PATH")


def _values(workspace: str) -> TemplateValues:
    return TemplateValues(7, "ops", workspace, "/p.md", "m1")


@pytest.mark.parametrize("line", EMBEDDED_SHAPES)
def test_embedded_shapes_refuse_every_payload_and_run_plain_values(
        tmp_path: Path, line: str) -> None:
    marker = tmp_path / "PWNED"
    out = tmp_path / "out.txt"
    template = shlex.split(line.replace("{M}", str(out)))
    for payload in _payloads(marker):
        try:
            argv = expand_template(template, _values(payload))
        except SpawnError as refused:
            assert "$RELAYBOARD_WORKSPACE" in str(refused)
            continue
        _run(argv, tmp_path)  # never reached for these shapes; run it if it were
        raise AssertionError(f"{payload!r} was substituted into {argv}")
    assert not marker.exists()
    if "{M}" not in line:
        return  # the value is the whole program there: nothing to run for a plain path
    plain = "/srv/task-7_a.b"
    done = _run(expand_template(template, _values(plain)), tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").strip() == plain


@pytest.mark.parametrize("template", WHOLE_SHAPES, ids=lambda t: " ".join(t[:2]))
def test_whole_word_payloads_run_as_data(tmp_path: Path, template: list[str]) -> None:
    marker = tmp_path / "PWNED"
    for payload in _payloads(marker):
        done = _run(expand_template(template, _values(payload)), tmp_path)
        assert done.returncode == 0, (template, payload, done.stderr)
        assert done.stdout == payload
    assert not marker.exists()


def test_tmux_runs_plain_values_and_refuses_payloads(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:  # decided before anything starts
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed on this CI machine")
        pytest.skip("tmux is not installed")
    marker = tmp_path / "PWNED"
    socket = tmp_path / "tmux.sock"
    out = tmp_path / "out.txt"
    tmux = ["tmux", "-S", str(socket)]
    template = [*tmux, "new-session", "-d",
                f"echo {{workspace}} > {out}; {shlex.join(tmux)} wait-for -S ran; "
                f"{shlex.join(tmux)} wait-for end"]  # keeps the server up until kill-server
    for payload in _payloads(marker):
        with pytest.raises(SpawnError, match="RELAYBOARD_WORKSPACE"):
            expand_template(template, _values(payload))
        with pytest.raises(SpawnError, match="RELAYBOARD_WORKSPACE"):
            expand_template([*tmux, "new-session", "-d", "{workspace}"], _values(payload))
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    plain = "/srv/task-7_a.b"
    try:
        started = subprocess.run(expand_template(template, _values(plain)), capture_output=True,
                                 text=True, timeout=60, check=False, cwd=tmp_path, env=env)
        assert started.returncode == 0, started.stderr
        # The session signals the channel when its command has run (a later wait returns
        # at once if the signal came first).
        waited = subprocess.run([*tmux, "wait-for", "ran"], capture_output=True, text=True,
                                timeout=60, check=False, env=env)
        assert waited.returncode == 0, waited.stderr
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=60, check=False,
                       env=env)
    assert out.read_text(encoding="utf-8").strip() == plain
    assert not marker.exists()


def test_the_python_running_the_tests_is_a_real_python3() -> None:
    # The shapes above call `python3` from PATH; it must be a real interpreter, like this one.
    done = subprocess.run(["python3", "-c", "import sys; print(sys.version_info[0])"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "3", (sys.executable, done.stderr)


# ---- the same rule with the chat agent's placeholders ----------------------------------------

# The chat agent fills its argv with fill_words and its own placeholders; the grammar above is
# reused by renaming each worker placeholder to a chat one.
CHAT_KEYS = {"{workspace}": "{message}", "{prompt_file}": "{user}", "{model}": "{chat}",
             "{board}": "{platform}", "{task_id}": "{thread}"}
CHAT_ENV = {"{message}": "RELAYBOARD_CHAT_MESSAGE", "{user}": "RELAYBOARD_CHAT_USER_NAME",
            "{chat}": "RELAYBOARD_CHAT_ID", "{platform}": "RELAYBOARD_CHAT_PLATFORM",
            "{thread}": "RELAYBOARD_CHAT_THREAD"}
# A word that begins with one of these is never an option (written out, as SAFE is).
PLAIN_START = re.compile(r"\Z|[^\W_]|/")


def chat_texts() -> st.SearchStrategy[str]:
    hostile = st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3).map("".join)
    return st.one_of(
        st.builds(lambda h: f"{TAG}{h}", hostile),
        st.builds(lambda h: f"{h}{TAG}", hostile),
        st.sampled_from([f"-{TAG}", f"--{TAG}=1", f"+{TAG}", f"@{TAG}", f"{TAG}", f"Ü{TAG}",
                         f"-{TAG} x", f"_{TAG}", f"{TAG}-1.2:3"]),
        st.builds(lambda t: f"{TAG}{t}", st.text(max_size=8)),
        st.text(max_size=8).map(lambda t: t + TAG),
    )


def _chat_words(shape: Shape) -> list[str]:
    return [re.sub(r"\{(?:task_id|board|workspace|prompt_file|model)\}",
                   lambda m: CHAT_KEYS[m.group(0)], word) for word in shape.words]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes(), message=chat_texts(), user=chat_texts(),
       chat=st.sampled_from(["c1", "-1001234", "C0 1"]), thread=st.sampled_from(["", "17.5"]))
@example(Shape(["sh", "-c", "echo '{workspace}'"], {2: EMBEDDED}),
         f"x'; touch {TAG}; echo '", "alice", "c1", "")
@example(Shape(["agent", "{workspace}", "--at={workspace}"], {1: DATA, 2: DATA}),
         f"-{TAG}", "alice", "c1", "")
def test_chat_values_follow_the_same_rule(shape: Shape, message: str, user: str, chat: str,
                                          thread: str) -> None:
    words = _chat_words(shape)
    mapping = {"{message}": message, "{user}": user, "{chat}": chat, "{platform}": "fake",
               "{thread}": thread}
    try:
        argv = fill_words(words, mapping, CHAT_ENV)
    except TemplateRefused as refused:
        assert "\n" not in str(refused)
        assert refused.env_var == CHAT_ENV[refused.placeholder]
        return
    assert len(argv) == len(words)
    for index, word in enumerate(words):
        keys = re.findall(r"\{(?:message|user|chat|platform|thread)\}", word)
        if not keys:
            assert argv[index] == word
            continue
        role = shape.roles[index]
        flag = re.fullmatch(r"(--[A-Za-z0-9][A-Za-z0-9_-]*=)(\{[a-z_]+\})", word)
        if role == DATA and word in mapping:
            assert argv[index] == mapping[word]
        elif role == DATA and flag:
            assert argv[index] == flag.group(1) + mapping[flag.group(2)]
        else:
            for key in keys:
                assert SAFE.match(mapping[key]), (words, index, key, mapping[key])
        if word.startswith(keys[0]):
            assert PLAIN_START.match(argv[index]), (words, index, argv[index])
    # A message or user name outside the safe set is only ever a whole word or a flag's value.
    hostile = {v for v in (message, user) if not SAFE.match(v)}
    for word in argv:
        if TAG in word and word not in hostile and not any(
                re.fullmatch(r"--[A-Za-z0-9][A-Za-z0-9_-]*=" + re.escape(v), word)
                for v in hostile):
            rest = word
            for value in sorted({message, user} - hostile, key=len, reverse=True):
                rest = rest.replace(value, "")
            assert TAG not in rest, (argv, word, hostile)


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1).filter(lambda t: "\x00" not in t and t[0].isalnum()))
def test_a_whole_word_message_goes_in_verbatim(text: str) -> None:
    """Where the message is a word of its own, any text that starts with a letter or a digit
    (of any script) is passed as it is, newlines and all."""
    template = ["agent", "{message}", "--text={message}", "sh", "-c", 'cat "$1"', "sh",
                "{message}"]
    mapping = {"{message}": text}
    argv = fill_words(template, mapping, {"{message}": "RELAYBOARD_CHAT_MESSAGE"})
    assert argv == ["agent", text, f"--text={text}", "sh", "-c", 'cat "$1"', "sh", text]
