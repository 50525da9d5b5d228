"""Our simple Markdown, rendered for each platform.

Agents and the gateway write one small Markdown dialect: ``**bold**``, ``~~strike~~``,
```` `code` ````, fenced blocks (```` ```lang ````), ``[text](https://…)`` links and ``# headings``.
Each platform needs it differently:

- Slack (``to_mrkdwn``): mrkdwn, with ``&``, ``<`` and ``>`` escaped everywhere — Slack reads
  ``<…>`` as a link or a mention, so raw text must never contain them. Links become
  ``<url|text>``; user and channel mentions already in Slack syntax (``<@U123>``, ``<#C123>``) are
  kept; broadcasts (``<!here>``, ``<!channel>``) are always escaped, so a task title can never
  ping a whole channel. Fence info strings are dropped (Slack would show them as code).
- Telegram (``to_telegram_html``): Bot API HTML (``parse_mode="HTML"``), everything outside the
  recognised syntax escaped. An unclosed fence runs to the end, as Telegram needs balanced tags.
- Discord renders Markdown itself; nothing to convert.

``*_PROTECT`` patterns name the spans a chunk cut must not split, per rendered form.
"""

from __future__ import annotations

import html
import re

# Spans a cut should not split, by the form the splitter sees.
MARKDOWN_PROTECT = re.compile(r"`[^`\n]+`|\[[^\]\n]*\]\([^)\s]*\)")
SLACK_PROTECT = re.compile(r"<[^<>\n]*>|&(?:amp|lt|gt);|`[^`\n]+`")

_URL = r"(?:https?://|mailto:)[^)\s]+"
_CODE_SPLIT = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)


# --- Slack ---------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Escape the three characters Slack gives meaning to (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_KEEP = re.compile(
    rf"\[(?P<text>[^\]\n]+)\]\((?P<url>{_URL})\)"  # a Markdown link
    r"|(?P<mention><@[UW][A-Z0-9]+>|<#C[A-Z0-9]+(?:\|[\w.-]*)?>)"  # Slack's own mention syntax
)
_SLACK_FENCE_INFO = re.compile(r"\A```[\w+#.-]+\n")


def to_mrkdwn(text: str) -> str:
    """Common Markdown to Slack mrkdwn (bold, strike, links, headings), escaped for Slack."""
    parts = _CODE_SPLIT.split(text)
    for i, part in enumerate(parts):
        if i % 2:  # code: escaped, otherwise verbatim
            parts[i] = slack_escape(_SLACK_FENCE_INFO.sub("```\n", part))
        else:
            parts[i] = _slack_prose(part)
    return "".join(parts)


def _slack_prose(text: str) -> str:
    # Links and mentions are set aside behind placeholders while the rest is escaped and
    # converted, so neither step can touch them.
    kept: list[str] = []

    def keep(m: re.Match[str]) -> str:
        if m["mention"]:
            kept.append(m["mention"])
        else:
            kept.append(f"<{slack_escape(m['url'])}|{slack_escape(m['text'])}>")
        return f"\x00{len(kept) - 1}\x00"

    s = slack_escape(_SLACK_KEEP.sub(keep, text.replace("\x00", "")))
    s = re.sub(r"\*\*(.+?)\*\*", r"*\1*", s)
    s = re.sub(r"__(.+?)__", r"*\1*", s)
    s = re.sub(r"~~(.+?)~~", r"~\1~", s)
    s = re.sub(r"(?m)^#{1,6}\s+(.+)$", r"*\1*", s)
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m[1])], s)


# --- Telegram ------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


_TG_INLINE = re.compile(
    r"```(?P<pre>[^`\n]+)```"
    r"|(?P<code>`[^`\n]+`)"
    rf"|\[(?P<ltext>[^\]\n]+)\]\((?P<url>{_URL})\)"
    r"|\*\*(?P<bold>\S(?:[^\n]*?\S)?)\*\*"
    r"|~~(?P<strike>\S(?:[^\n]*?\S)?)~~"
)
_TG_HEADING = re.compile(r"^#{1,6}\s+(.+)$")
_LANGUAGE = re.compile(r"^[\w+#.-]+$")


def _inline_html(text: str) -> str:
    out: list[str] = []
    last = 0
    for m in _TG_INLINE.finditer(text):
        out.append(_esc(text[last : m.start()]))
        if m["pre"] is not None:
            out.append(f"<code>{_esc(m['pre'])}</code>")
        elif m["code"] is not None:
            out.append(f"<code>{_esc(m['code'][1:-1])}</code>")
        elif m["url"] is not None:
            out.append(f'<a href="{html.escape(m["url"])}">{_esc(m["ltext"])}</a>')
        elif m["bold"] is not None:
            out.append(f"<b>{_inline_html(m['bold'])}</b>")
        else:
            out.append(f"<s>{_inline_html(m['strike'])}</s>")
        last = m.end()
    out.append(_esc(text[last:]))
    return "".join(out)


def _prose_html(lines: list[str]) -> str:
    rendered = []
    for line in lines:
        heading = _TG_HEADING.match(line)
        rendered.append(f"<b>{_inline_html(heading[1])}</b>" if heading else _inline_html(line))
    return "\n".join(rendered)


def _pre(info: str, code: list[str]) -> str:
    language = info.split()[0] if info.split() else ""
    body = _esc("\n".join(code))
    if language and _LANGUAGE.match(language):
        return f'<pre><code class="language-{_esc(language)}">{body}</code></pre>'
    return f"<pre>{body}</pre>"


def to_telegram_html(text: str) -> str:
    """Our Markdown as Telegram Bot API HTML; all other text escaped (``&``, ``<``, ``>``)."""
    blocks: list[str] = []
    prose: list[str] = []
    code: list[str] | None = None
    info = ""
    for line in text.split("\n"):
        stripped = line.strip()
        if code is None:
            rest = stripped[3:]
            if stripped.startswith("```") and "```" not in rest:
                blocks.append(_prose_html(prose))
                prose, code, info = [], [], rest.strip()
            else:
                prose.append(line)
        elif stripped.startswith("```") and not stripped.strip("`"):
            blocks.append(_pre(info, code))
            code = None
        else:
            code.append(line)
    if code is not None:
        blocks.append(_pre(info, code))
    else:
        blocks.append(_prose_html(prose))
    # Blocks were separated by the fence lines' newlines; a <pre> needs none around it.
    return "\n".join(b for b in blocks if b)
