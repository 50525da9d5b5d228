"""The worker's transcript: one JSON object per line on its stdout, which the dispatcher points at
``logs/<task>.log`` — so a live tail of the log (the dashboard's) shows each step as it happens.

Every line has ``t`` (seconds since the worker started) and ``kind``: ``start``, ``request``
(iteration, message count), ``assistant`` (text, tool calls, token counts), ``tool_result``,
``nudge``, ``end`` (outcome, reason, totals). Long texts are cut to keep the log readable; the
full values stay in the model's conversation.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

FIELD_LIMIT = 4_000


def clip(text: str, limit: int = FIELD_LIMIT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more chars]"


class Transcript:
    def __init__(self, stream: TextIO, *, clock: Any = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.started = clock()

    def write(self, kind: str, **fields: Any) -> None:
        record: dict[str, Any] = {"t": round(self.clock() - self.started, 3), "kind": kind}
        for key, value in fields.items():
            record[key] = clip(value) if isinstance(value, str) else value
        try:
            self.stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self.stream.flush()  # line by line: the log is tailed live
        except (OSError, ValueError):
            pass  # a closed or full log must not stop the work
