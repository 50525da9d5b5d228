"""A command template filled in so that no substituted value can change the command.

A template is a list of argv words with placeholders: a profile's ``command`` has
``{task_id} {board} {workspace} {prompt_file} {model}`` (:func:`expand_template`), the chat
agent's ``agent.command.argv`` has ``{message} {user} {platform} {chat} {thread}`` (it calls
:func:`fill_words` with its own). This module owns the one rule that decides, from the template
alone, where a value may go; it never quotes anything. Quoting a value for the spot a shell
(or Python, or Perl, or tmux) will read it in means guessing that reader's grammar, and a guess
that is wrong once runs the value as code. The rule below holds by construction instead:

1. **Raw, as one argv word.** A template word that is exactly a placeholder (``{workspace}``),
   or exactly ``--some-flag={placeholder}``, becomes that value verbatim — one argument that no
   shell splits or expands. The value may hold any character but NUL (a worker value: nor a
   newline, :func:`check_values`). A value must start with a letter or a digit (of any script)
   or ``/`` where it begins an argv word — a whole word, or a larger word like ``{x}.txt`` — so
   a program never reads it as one of its own options: every option syntax in use starts with
   punctuation (``-x``, ``+x``, ``@file``), never with a letter or a digit. Worker values are
   held to that everywhere (:func:`check_values`); :func:`fill_words` checks it where the
   value begins a word. After ``--some-flag=`` a value is only ever that flag's value.

2. **Safe characters only, everywhere else.** A placeholder inside a larger word (the script of
   ``sh -c '… {workspace} …'``, ``x{task_id}``, ``A={board}``) is filled only with a value made
   entirely of ``[A-Za-z0-9_./:+-]``; any other value refuses the spawn with a
   :class:`~kanban.errors.TemplateRefused` naming the placeholder and the environment variable
   that carries the same value (``$RELAYBOARD_WORKSPACE`` …), which a script can read quoted.

   Why these characters: letters, digits and ``_ . / -`` mean only themselves to sh, bash, zsh,
   Python and Perl, unquoted or inside ``'…'``, ``"…"`` or ``$'…'`` (no quote, escape,
   expansion, separator, glob, comment, brace or tilde among them). ``:`` and ``+`` are kept for
   model names (``llama3.1:8b``, ``a+b``): neither is special in any of those quoting contexts
   (``+(…)`` and ``${x:-…}`` need a ``(`` or ``{`` the value cannot bring). Left out on purpose:
   ``@`` (Perl interpolates ``"@name"`` inside double quotes), ``%`` (a printf or Python
   ``%``-format directive), ``=`` (turns a command word into an assignment: ``X{model}`` with
   ``=…``), ``,`` (makes a brace expansion inside a template's ``{a,b}``), and everything else.
   A value is still concatenated with whatever the template writes around it: ``$x{model}``
   names another variable for a value starting with a letter (and in zsh, ``$x`` followed by
   ``:`` takes a modifier), as it would for any text; that is the template's own wording, not
   something the value can choose.

3. **Code words count as "everywhere else".** A whole word can still be re-parsed when the
   program runs it as code. Such words get rule 2 even when they are exactly ``{x}``. We cannot
   know what every program does with its arguments, so the classification is deliberately wide
   and errs towards "code" (a wrongly wide guess only asks for safe characters; a narrow one
   would run the value). A word is code when it is:

   * right after a single-dash option word (``-c``, ``-e``, ``-E``, ``-Ic``, ``-lc``, ``-S``,
     ``-le'…'``): single-letter options are where interpreters take inline code (``python
     -c``, ``perl -e``, ``ruby -e``, ``node -e/-p``, ``php -r``, ``env -S``), and no list of
     programs can tell a data option from a code option by its letter;
   * right after, or the ``=`` value of, a long option that takes code (``--eval``,
     ``--command``, ``--exec``, ``--split-string`` …);
   * the command string of a shell (``sh``, ``bash``, …) whose options include ``c``, wherever
     that shell appears in the argv — after ``timeout 60``, ``nice -n 5``, ``env A=1`` — and
     whatever options sit between (``bash -o pipefail -c -- SCRIPT``);
   * any word after a program that runs its arguments as a command line or a program text
     (``eval``, ``tmux``, ``screen``, ``ssh``, ``su``, ``sudo``, ``watch``, ``parallel``,
     ``at``, ``awk``, ``sed`` …): everything after ``tmux new-session -d`` is a shell command.

   Words after a shell's command string (``sh -c 'cd "$1"' sh {workspace}``) or after an
   interpreter's inline code (``python3 -c CODE {workspace}``) are arguments again, and raw.
   The last two kinds are lists, and a list can miss a program: a whole-word value handed to
   an unlisted program that evaluates its operands is still exactly one argument, never more
   words or commands of the template, but what that program does with it is its own affair.

Every value is also exported to the worker as an environment variable
(``RELAYBOARD_WORKSPACE``, ``RELAYBOARD_PROMPT_FILE``, …; for the chat agent
``RELAYBOARD_CHAT_MESSAGE``, ``RELAYBOARD_CHAT_USER_NAME``, …), so a template never needs to
interpolate into a script: ``sh -c 'cd "$RELAYBOARD_WORKSPACE" && …'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from kanban.errors import SpawnError, TemplateRefused
from kanban.validation import MODEL_RE

KANBAN_WORKER_SKILL = "kanban-worker"
PLACEHOLDERS = ("{task_id}", "{board}", "{workspace}", "{prompt_file}", "{model}")
# What a value embedded in a larger (or code) word may be made of; see the module docstring.
SAFE_CHARS = "[A-Za-z0-9_./:+-]"
_SAFE_VALUE = re.compile(SAFE_CHARS + r"*\Z")
# `--some-flag={name}`, whatever the placeholder set: the flag and the placeholder.
_FLAG_VALUE = re.compile(r"(--[A-Za-z0-9][A-Za-z0-9_-]*)=(\{[A-Za-z_][A-Za-z0-9_]*\})\Z")

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "fish",
                    "csh", "tcsh"})
# Shell options that take the next word as their argument (`-o pipefail`, `--rcfile FILE`).
_SHELL_OPTION_ARGUMENT = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
# Long options whose value is a program text for the program they belong to.
_CODE_LONG_OPTIONS = frozenset({"--eval", "--command", "--cmd", "--exec", "--execute",
                                "--split-string", "--print", "--code", "--init-command"})
# Programs whose following words form a command line or a program text (for a shell, a remote
# host, a terminal multiplexer, a text-processing language). Everything after them is code.
_COMMAND_RUNNERS = frozenset({"eval", "tmux", "screen", "ssh", "su", "runuser", "sudo", "doas",
                              "watch", "parallel", "at", "batch", "awk", "gawk", "mawk", "nawk",
                              "busybox", "sed"})


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


def env_name(placeholder: str) -> str:
    """``{workspace}`` → ``RELAYBOARD_WORKSPACE``: the variable carrying the same value."""
    return "RELAYBOARD_" + placeholder.strip("{}").upper()


def starts_plain(text: str) -> bool:
    """True when an argv word beginning with ``text`` cannot be read as an option: it is empty
    or starts with a letter or a digit (of any script) or ``/``."""
    return not text or text[0].isalnum() or text[0] == "/"


def _option_refusal(key: str, value: str, env_names: Mapping[str, str]) -> TemplateRefused:
    return TemplateRefused(
        f"{key} value {value!r:.120} must start with a letter, a digit or / (it could be read "
        "as an option); refused", placeholder=key, env_var=env_names[key], reason="option")


def check_values(values: TemplateValues) -> None:
    """Refuse values that could be read as something else. Raises :class:`SpawnError`."""
    for key, value in values.mapping().items():
        if "\x00" in value or "\n" in value or "\r" in value:
            raise SpawnError(f"{key} value contains a NUL or newline character; refused")
        if not starts_plain(value):
            raise _option_refusal(key, value, {key: env_name(key)})
    if values.model and not MODEL_RE.match(values.model):
        raise SpawnError(f"invalid model name {values.model!r}; refused")
    for key, path in (("{workspace}", values.workspace), ("{prompt_file}", values.prompt_file)):
        if path and not os.path.isabs(path):
            raise SpawnError(f"{key} must be an absolute path (got {path!r})")


def _is_short_option(word: str) -> bool:
    return len(word) > 1 and word[0] == "-" and word[1] != "-"


def _shell_command_string(template: Sequence[str], shell: int) -> int | None:
    """For the shell named at ``template[shell]``: the index of its command string when its
    options include ``c`` (``sh -c SCRIPT``, ``bash -e -o pipefail -lc -- SCRIPT``), else None."""
    i = shell + 1
    command_mode = False
    while i < len(template):
        word = template[i]
        if word == "--":
            i += 1
            break
        if word in _SHELL_OPTION_ARGUMENT:
            i += 2
            continue
        if word.startswith("--"):
            i += 1
            continue
        if len(word) > 1 and word[0] in "-+":
            command_mode = command_mode or "c" in word[1:]
            i += 1
            continue
        break
    return i if command_mode and i < len(template) else None


def code_words(template: Sequence[str]) -> frozenset[int]:
    """The indexes of the template words a program will run as code (see the module docstring).
    Decided from the template alone; errs towards "code"."""
    code: set[int] = set()
    for index, word in enumerate(template):
        previous = template[index - 1] if index else ""
        if _is_short_option(previous) or previous in _CODE_LONG_OPTIONS:
            code.add(index)
        flag = _FLAG_VALUE.match(word)
        if flag is not None and flag.group(1) in _CODE_LONG_OPTIONS:
            code.add(index)
        program = os.path.basename(word)
        if program in SHELLS:
            script = _shell_command_string(template, index)
            if script is not None:
                code.add(script)
        if program in _COMMAND_RUNNERS:
            code.update(range(index + 1, len(template)))
    return frozenset(code)


def _whole_word(word: str, keys: Collection[str]) -> tuple[str, str] | None:
    """``(prefix, placeholder)`` when ``word`` is exactly a placeholder (prefix ``""``) or
    exactly ``--some-flag={placeholder}`` (prefix ``--some-flag=``); else None."""
    if word in keys:
        return "", word
    flag = _FLAG_VALUE.match(word)
    if flag is not None and flag.group(2) in keys:
        return flag.group(1) + "=", flag.group(2)
    return None


def _placeholder_pattern(keys: Collection[str]) -> re.Pattern[str]:
    # Longest first, so that no placeholder shadows a longer one it is a prefix of.
    return re.compile("|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)))


def misplaced_placeholders(template: Sequence[str],
                           keys: Collection[str]) -> Iterator[tuple[int, str, str]]:
    """``(index, placeholder, reason)`` for each placeholder (a key of ``keys``) that the
    template puts where only values made of :data:`SAFE_CHARS` may go: ``reason`` is ``"code"``
    (a word a program runs as code) or ``"embedded"`` (inside a larger word). Decided from the
    template alone, so a caller can warn about it before any value exists."""
    if not keys:
        return
    pattern = _placeholder_pattern(keys)
    code = code_words(template)
    for index, word in enumerate(template):
        whole = _whole_word(word, keys)
        if whole is not None and index not in code:
            continue
        reason = "code" if index in code and whole is not None else "embedded"
        for key in pattern.findall(word):
            yield index, key, reason


def _refuse(key: str, value: str, reason: str, env_names: Mapping[str, str]) -> TemplateRefused:
    where = ("is a word of the command template that a program runs as code" if reason == "code"
             else "is inside a larger word of the command template")
    return TemplateRefused(
        f"{key} {where} and its value ({value!r:.120}) has characters outside {SAFE_CHARS}; "
        f"use \"${env_names[key]}\" in the script instead",
        placeholder=key, env_var=env_names[key], reason=reason)


def fill_words(template: Sequence[str], mapping: Mapping[str, str],
               env_names: Mapping[str, str]) -> list[str]:
    """Fill the placeholders of each word (the keys of ``mapping``, like ``{workspace}``) by the
    rule of the module docstring. ``env_names`` names, for each placeholder, the environment
    variable that carries the same value, for the refusal to point at. Other braces are left
    alone (a template is not a format string: ``{"a": 1}`` stays as written), and each word is
    filled in one pass (a value holding ``{model}`` is not expanded again).

    Raises :class:`~kanban.errors.TemplateRefused` for a value that may not go where the
    template puts it: outside the safe characters in a code word or a larger word, beginning an
    argv word with something other than a letter, a digit or ``/``, or holding a NUL (which no
    argv word can carry)."""
    if not mapping:
        return list(template)
    pattern = _placeholder_pattern(mapping)
    refusals: dict[int, tuple[str, str]] = {}
    for index, key, reason in misplaced_placeholders(template, mapping):
        if not _SAFE_VALUE.match(mapping[key]):
            refusals.setdefault(index, (key, reason))
    out: list[str] = []
    for index, word in enumerate(template):
        if index in refusals:
            key, reason = refusals[index]
            raise _refuse(key, mapping[key], reason, env_names)
        for key in pattern.findall(word):
            if "\x00" in mapping[key]:
                raise TemplateRefused(f"{key} value contains a NUL character; refused",
                                      placeholder=key, env_var=env_names[key], reason="nul")
        filled = pattern.sub(lambda m: mapping[m.group(0)], word)
        # A word the template starts with a placeholder begins with a value: it must not read
        # as an option (named: the first placeholder whose value is not empty).
        if pattern.match(word) and not starts_plain(filled):
            key = next(k for k in pattern.findall(word) if mapping[k])
            raise _option_refusal(key, mapping[key], env_names)
        out.append(filled)
    return out


def expand_template(template: Sequence[str], values: TemplateValues) -> list[str]:
    """A profile's ``command`` filled with a task's values (:func:`fill_words`), after
    :func:`check_values` refused any value that could be read as something else anywhere.
    Raises :class:`SpawnError`."""
    check_values(values)
    mapping = values.mapping()
    return fill_words(template, mapping, {key: env_name(key) for key in mapping})


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
