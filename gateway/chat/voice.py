"""Voice notes from chat → text, through an OpenAI-compatible transcription endpoint.

``agent.transcription`` names the endpoint: ``POST <base_url>/audio/transcriptions`` with the
recording as multipart ``file`` and the ``model`` (OpenAI, Groq, a local whisper server all speak
it). The router hands each voice note or audio message an allowed user sent to
:meth:`Transcriber.transcribe` and handles the text as if it had been typed, echoing it in one
short line (:func:`heard_line`). Without an endpoint, or when it fails, the user is told in one
line what happened (:data:`NOT_SET_UP`, :class:`TranscriptionFailed`) and nothing runs; the
recording stays in the conversation's folder.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from pathlib import Path

import httpx

from gateway.config_schema import TranscriptionConfig
from gateway.errors import TranscriptionFailed
from platforms.redact import redact
from platforms.untrusted import clean_line

log = logging.getLogger(__name__)

__all__ = ["NOT_SET_UP", "Transcriber", "TranscriptionFailed", "build_transcriber",
           "heard_line"]

NOT_SET_UP = ("🎙 Voice notes are not set up here — type your message instead. (The operator "
              "can turn them on with agent.transcription: base_url and model of an "
              "OpenAI-compatible transcription endpoint, in config.yaml.)")
HEARD_CHARS = 120
_ERROR_CHARS = 160


def heard_line(text: str) -> str:
    """``🎙 heard: …``, one line, cut at :data:`HEARD_CHARS` characters."""
    flat = clean_line(" ".join(text.split()))
    if len(flat) > HEARD_CHARS:
        flat = flat[:HEARD_CHARS - 1].rstrip() + "…"
    return f"🎙 heard: {flat}"


class Transcriber:
    def __init__(self, config: TranscriptionConfig,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not config.configured:
            raise ValueError("agent.transcription needs base_url and model")
        self.config = config
        self.url = f"{str(config.base_url).rstrip('/')}/audio/transcriptions"
        self.max_bytes = config.max_bytes
        self._transport = transport

    async def transcribe(self, path: Path) -> str:
        """The recording's text (stripped). Raises :class:`TranscriptionFailed`."""
        data = await asyncio.to_thread(path.read_bytes)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = ({"Authorization": f"Bearer {self.config.api_key}"}
                   if self.config.api_key else {})
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout,
                                         transport=self._transport) as client:
                response = await client.post(
                    self.url, headers=headers,
                    data={"model": str(self.config.model), "response_format": "json"},
                    files={"file": (path.name, data, mime)})
        except httpx.TimeoutException:
            raise TranscriptionFailed(
                f"the transcription service did not answer within {self.config.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            log.warning("transcription: %s: %s", type(exc).__name__, exc)
            raise TranscriptionFailed("the transcription service cannot be reached") from None
        if response.status_code >= 400:
            why = redact(_error_text(response), tuple(filter(None, [self.config.api_key])))
            log.warning("transcription: HTTP %d: %s", response.status_code, why)
            raise TranscriptionFailed(
                f"the transcription service answered HTTP {response.status_code}"
                + (f": {why}" if why else ""))
        try:
            payload = response.json()
        except ValueError:
            payload = None
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            raise TranscriptionFailed("the transcription service's answer has no text")
        return text.strip()


def _error_text(response: httpx.Response) -> str:
    """The error message an OpenAI-compatible server put in its body, short and on one line."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str):
        return ""
    flat = clean_line(" ".join(message.split()))
    return flat if len(flat) <= _ERROR_CHARS else flat[:_ERROR_CHARS - 1] + "…"


def build_transcriber(config: TranscriptionConfig) -> Transcriber | None:
    return Transcriber(config) if config.configured else None
