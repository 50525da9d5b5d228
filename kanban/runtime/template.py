"""A profile's ``command`` template filled in so that no substituted value can change the command.

A template is a list of argv words with ``{task_id} {board} {workspace} {prompt_file} {model}``
placeholders. Two kinds of word exist:

* a plain argv word: the value becomes (part of) one argument; nothing re-parses it, so it
  cannot add words or commands. It can only be mistaken for an option, which is why values are
  validated to start with a letter, a digit or ``/`` (model names, absolute paths, slugs, ids).
* the script of a shell template (``sh -c SCRIPT``, ``bash -lc SCRIPT``, ``env X=1 sh -c …``):
  the shell parses it again, so each value is quoted for the place it lands in — unquoted,
  inside '…', inside "…", inside $'…' — as a shell would read that spot.

Values made only of characters no shell treats specially (``[A-Za-z0-9_@%+=:,./-]``) are the
same however quoted, so they are substituted as they are; this keeps every ordinary template
working unchanged. A script the scanner cannot follow (a here-document) only accepts such plain
values (so does a backtick substitution, and the inline program of another interpreter —
``python -c CODE``, ``node -e CODE`` — whose quoting rules are not the shell's): anything else is
refused rather than guessed. Every value is also exported to the worker
as an environment variable (``RELAYBOARD_MODEL``, ``RELAYBOARD_PROMPT_FILE``, …), so a template
need not interpolate at all.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from kanban.errors import SpawnError
from kanban.validation import MODEL_RE

KANBAN_WORKER_SKILL = "kanban-worker"
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"})
# Characters with no meaning to any POSIX shell, in any quoting context.
_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]*$")
# Shell options that take an argument (`-o pipefail`, `+O extglob`).
_OPTION_WITH_ARGUMENT = frozenset({"-o", "+o", "-O", "+O"})
# The flag before another interpreter's inline program (python -c, node -e, perl -e, ruby -e).
_INLINE_CODE_FLAGS = frozenset({"-c", "-e", "-E", "--eval", "--command"})


@dataclass(frozen=True)
class TemplateValues:
    task_id: int
    board: str
    workspace: str
    prompt_file: str
    model: str

    def mapping(self) -> dict[str, str]:
        return {"{task_id}": str(self.task_id), "{board}": self.board,
                "{workspace}": self.workspace, "{prompt_file}": self.prompt_file,
                "{model}": self.model}


def check_values(values: TemplateValues) -> None:
    """Refuse values that could be read as something else. Raises :class:`SpawnError`."""
    for key, value in values.mapping().items():
        if "\x00" in value or "\n" in value or "\r" in value:
            raise SpawnError(f"{key} value contains a NUL or newline character; refused")
    if values.model and not MODEL_RE.match(values.model):
        raise SpawnError(f"invalid model name {values.model!r}; refused")
    for key, path in (("{workspace}", values.workspace), ("{prompt_file}", values.prompt_file)):
        if path and not os.path.isabs(path):
            raise SpawnError(f"{key} must be an absolute path (got {path!r})")


def shell_script_index(template: Sequence[str]) -> int | None:
    """The index of the word a shell will parse as a script (``sh -c SCRIPT``), else None."""
    i = 0
    if template and os.path.basename(template[0]) == "env":
        i = 1  # `env [-i] [NAME=VALUE]… sh -c …`
        while i < len(template) and (template[i].startswith("-") or "=" in template[i]):
            i += 1
    if i >= len(template) or os.path.basename(template[i]) not in SHELLS:
        return None
    i += 1
    if os.path.basename(template[i - 1]) == "busybox":
        if i >= len(template) or template[i] not in SHELLS:
            return None
        i += 1
    command_mode = False
    while i < len(template):
        word = template[i]
        if word == "--":
            i += 1
            break
        if word in _OPTION_WITH_ARGUMENT:
            i += 2
            continue
        if len(word) > 1 and word[0] in "-+" and not word.startswith("--"):
            command_mode = command_mode or "c" in word[1:]
            i += 1
            continue
        if word.startswith("--"):
            i += 1
            continue
        break
    return i if command_mode and i < len(template) else None


def _quote(value: str, context: str) -> str:
    if _PLAIN.match(value):
        return value
    if context == "single":
        return value.replace("'", "'\\''")  # close, a literal quote, reopen
    if context == "double":
        return re.sub(r'([\\"$`])', r"\\\1", value)
    if context == "ansi":
        return re.sub(r"([\\'])", r"\\\1", value)
    return shlex.quote(value)


def _fill_script(script: str, mapping: dict[str, str]) -> str:
    """Substitute each placeholder quoted for the context a shell reads it in.

    The scanner follows quotes, backslashes, ``$( … )`` / backticks (their inside is unquoted
    again, even within double quotes) and ``$'…'``. That is all a one-line template needs; a
    here-document is not followed, so there only plain values are accepted.
    """
    if not any(key in script for key in mapping):
        return script
    if "<<" in script:
        _require_plain(script, mapping, "a shell script with a here-document")
        return _replace_plain(script, mapping)
    out: list[str] = []
    stack = ["none"]  # none | sub (inside $( or ( ) | tick | single | double | ansi
    i = 0
    n = len(script)
    while i < n:
        top = stack[-1]
        if script[i] == "{":
            found = next((k for k in mapping if script.startswith(k, i)), None)
            if found is not None:
                value = mapping[found]
                if "tick" in stack and not _PLAIN.match(value):
                    # Inside `…` the shell finds the closing backtick before it reads quotes,
                    # so no quoting can hold a value that contains one.
                    raise SpawnError(
                        f"cannot safely substitute {found} ({value!r}) inside `…`; use $( … ) "
                        f"or read ${_env_name(found)} in the script instead")
                out.append(_quote(value, top if top in ("single", "double", "ansi") else "none"))
                i += len(found)
                continue
        c = script[i]
        if top == "single":
            if c == "'":
                stack.pop()
        elif top in ("ansi", "double") and c == "\\":
            out.append(script[i:i + 2])
            i += 2
            continue
        elif top == "ansi":
            if c == "'":
                stack.pop()
        elif top == "double":
            if c == '"':
                stack.pop()
            elif script.startswith("$(", i):
                stack.append("sub")
                out.append("$(")
                i += 2
                continue
            elif c == "`":
                stack.append("tick")
        else:  # none, sub, tick: the unquoted contexts
            if c == "\\":
                out.append(script[i:i + 2])
                i += 2
                continue
            if c == "'":
                stack.append("single")
            elif script.startswith("$'", i):
                stack.append("ansi")
                out.append("$'")
                i += 2
                continue
            elif c == '"':
                stack.append("double")
            elif c == "`":
                if top == "tick":
                    stack.pop()
                else:
                    stack.append("tick")
            elif c == "(":
                stack.append("sub")
            elif c == ")" and top == "sub":
                stack.pop()
        out.append(c)
        i += 1
    return "".join(out)


def _env_name(key: str) -> str:
    return "RELAYBOARD_" + key.strip("{}").upper()


def _replace_plain(word: str, mapping: dict[str, str]) -> str:
    # One pass, left to right: a value that itself contains "{model}" is never expanded again.
    pattern = re.compile("|".join(re.escape(k) for k in mapping))
    return pattern.sub(lambda m: mapping[m.group(0)], word)


def expand_template(template: Sequence[str], values: TemplateValues) -> list[str]:
    """Fill the placeholders in each word; a shell template's script gets quoted values. Other
    braces are left alone (a template is not a format string: ``{"a": 1}`` stays as written).
    Raises :class:`SpawnError` for a value that cannot be substituted safely."""
    check_values(values)
    mapping = values.mapping()
    script = shell_script_index(template)
    out = []
    for index, word in enumerate(template):
        if index == script:
            out.append(_fill_script(word, mapping))
            continue
        if index > 0 and template[index - 1] in _INLINE_CODE_FLAGS:
            # `python -c CODE`, `node -e CODE`: another language's parser reads the value, and
            # we cannot quote for every language — only values that need no quoting go in.
            _require_plain(word, mapping, "inline code")
        out.append(_replace_plain(word, mapping))
    return out


def _require_plain(word: str, mapping: dict[str, str], where: str) -> None:
    for key, value in mapping.items():
        if key in word and not _PLAIN.match(value):
            raise SpawnError(f"cannot safely substitute {key} ({value!r}) into {where}; read "
                             f"${_env_name(key)} there instead")


def build_argv(
    template: Sequence[str],
    values: TemplateValues,
    *,
    model_override: str | None,
    has_worker_skill: bool,
) -> list[str]:
    """The worker's argv: the expanded template, then ``-m MODEL`` when the task overrides the
    model (unless the template already places ``{model}`` itself), then ``--skills kanban-worker``
    only when the profile really has that skill — agent CLIs refuse to start on an unknown one."""
    argv = expand_template(template, values)
    if model_override and not any("{model}" in word for word in template):
        if not MODEL_RE.match(model_override):
            raise SpawnError(f"invalid model name {model_override!r}; refused")
        argv += ["-m", model_override]
    if has_worker_skill:
        argv += ["--skills", KANBAN_WORKER_SKILL]
    return argv
