from __future__ import annotations

import random
import re

import pytest

from platforms.chunking import split_message, utf16_len
from platforms.markup import MARKDOWN_PROTECT, SLACK_PROTECT, to_mrkdwn, to_telegram_html

NUMBER = re.compile(r"\A\((\d+)/(\d+)\)[ \n]")


def fence_state(chunk: str) -> str | None:
    """The info string of a block left open at the end of ``chunk`` (None: balanced)."""
    open_info: str | None = None
    for line in chunk.split("\n"):
        s = line.strip()
        if not s.startswith("```"):
            continue
        rest = s.lstrip("`")
        if open_info is None and "```" not in rest:
            open_info = rest.strip()
        elif open_info is not None and not rest:
            open_info = None
    return open_info


def content(text: str) -> str:
    """``text`` without fence lines, numbering and whitespace: what must survive a split."""
    lines = [ln for ln in text.split("\n") if not ln.strip().startswith("```")]
    return re.sub(r"\s+", "", "".join(lines))


def code_block(lines: int, info: str = "python") -> str:
    body = "\n".join(f"value_{i} = compute({i}, 'x' * {i})" for i in range(lines))
    return f"```{info}\n{body}\n```"


def test_a_long_code_block_is_closed_and_reopened_with_its_info_string() -> None:
    text = "Here is the script:\n" + code_block(60) + "\nThat was it."
    parts = split_message(text, 500)
    assert len(parts) >= 4
    assert all(len(p) <= 500 for p in parts)
    assert all(fence_state(p) is None for p in parts)
    assert parts[0].startswith("Here is the script:\n```python\n")
    for p in parts[1:]:
        assert p.startswith("```python\n")
    for p in parts[:-1]:
        assert p.endswith("\n```")
    assert parts[-1].endswith("```\nThat was it.")
    assert content("\n".join(parts)) == content(text)


def test_parts_are_numbered_when_asked_and_a_fence_keeps_its_own_line() -> None:
    text = "intro " + "word " * 30 + "\n" + code_block(30)
    parts = split_message(text, 300, number=True)
    total = len(parts)
    assert total >= 3
    for i, p in enumerate(parts, 1):
        m = NUMBER.match(p)
        assert m is not None and (int(m[1]), int(m[2])) == (i, total)
        assert len(p) <= 300
        body = p[m.end() :]
        if body.startswith("```"):
            assert p[m.end() - 1] == "\n"  # "(2/3)\n```python": the fence still starts a line
        assert fence_state(body) is None
    assert split_message("short", 300, number=True) == ["short"]


def test_numbering_makes_room_for_two_digit_counts() -> None:
    text = " ".join(f"w{i:03}" for i in range(400))  # 2000 chars
    parts = split_message(text, 60, number=True)
    assert len(parts) >= 10
    assert parts[9].startswith(f"(10/{len(parts)}) ")
    assert all(len(p) <= 60 for p in parts)


def test_a_cut_never_splits_a_protected_span_that_fits() -> None:
    link = "[the quarterly report](https://example.com/reports/q3?format=pdf&x=1)"
    text = "see " + "a " * 20 + link + " " + "b " * 20
    parts = split_message(text, 70, protect=MARKDOWN_PROTECT)
    assert any(link in p for p in parts)
    entities = "&amp;" * 30
    parts = split_message(entities, 23, protect=SLACK_PROTECT)
    assert all(re.fullmatch(r"(&amp;)+", p) for p in parts)


def test_an_opening_fence_line_never_ends_a_chunk() -> None:
    text = "x" * 50 + "\n```sh\n" + "echo hi\n" * 20 + "```"
    parts = split_message(text, 60)
    assert parts[0] == "x" * 50
    assert parts[1].startswith("```sh\necho hi")


def test_the_closing_fence_is_not_repeated_after_a_cut_right_before_it() -> None:
    body = "y" * 40
    text = f"```\n{body}\n```\nafter the block"
    parts = split_message(text, 50)
    assert parts == [f"```\n{body}\n```", "after the block"]


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_split_into_balanced_chunks_without_losing_text(seed: int) -> None:
    rng = random.Random(seed)
    pieces = []
    for _ in range(rng.randint(3, 12)):
        kind = rng.random()
        if kind < 0.35:
            pieces.append(code_block(rng.randint(1, 40), rng.choice(["", "python", "json"])))
        elif kind < 0.5:
            pieces.append("x" * rng.randint(50, 400))  # no separator at all: hard cuts
        else:
            words = [rng.choice(["alpha", "beta", "**gamma**", "`delta`", "😀", "&"])]
            words += [rng.choice(["eps", "zeta", "[eta](https://e.ta/x)"]) for _ in range(40)]
            pieces.append(" ".join(words))
    text = "\n".join(pieces)
    limit = rng.randint(80, 700)
    number = rng.random() < 0.5
    length = utf16_len if rng.random() < 0.5 else len
    parts = split_message(text, limit, length=length, number=number, protect=MARKDOWN_PROTECT)
    assert parts
    for p in parts:
        assert length(p) <= limit
        m = NUMBER.match(p) if number and len(parts) > 1 else None
        assert fence_state(p[m.end() :] if m else p) is None
        assert to_telegram_html(p)  # renders without error
    stripped = [NUMBER.sub("", p) if number else p for p in parts]
    assert content("\n".join(stripped)) == content(text)


def test_slack_escapes_and_keeps_mentions_but_not_broadcasts() -> None:
    src = "a < b && c > d <!channel> <@U123ABC> see [q&a](https://x.io/?a=1&b=2)"
    assert to_mrkdwn(src) == (
        "a &lt; b &amp;&amp; c &gt; d &lt;!channel&gt; <@U123ABC> see <https://x.io/?a=1&amp;b=2|q&amp;a>"
    )
    code = "```python\nif a<b and c>d: pass\n``` and `x&y`"
    assert to_mrkdwn(code) == "```\nif a&lt;b and c&gt;d: pass\n``` and `x&amp;y`"


def test_telegram_html_renders_our_markdown_and_escapes_the_rest() -> None:
    src = (
        '# Done\n**bold & co** <b>raw</b> `x<y` [docs](https://x.io/?a=1&b="2") ~~old~~\n'
        "```python\nif a < b:\n    pass\n```\nunclosed **bold"
    )
    assert to_telegram_html(src) == (
        "<b>Done</b>\n<b>bold &amp; co</b> &lt;b&gt;raw&lt;/b&gt; <code>x&lt;y</code> "
        '<a href="https://x.io/?a=1&amp;b=&quot;2&quot;">docs</a> <s>old</s>\n'
        '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>\n'
        "unclosed **bold"
    )
    assert to_telegram_html("```\nno end <x>") == "<pre>no end &lt;x&gt;</pre>"
    assert to_telegram_html("javascript [x](javascript:alert(1))") == (
        "javascript [x](javascript:alert(1))"
    )
