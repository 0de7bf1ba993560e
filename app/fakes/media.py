"""The fake upstream's audio and image-edit routes, in the shapes AceData documents (AceDataCloud/OpenAIAPI docs):
speech answers audio bytes in chunks, transcriptions and image edits read a multipart form, gpt-transcribe streams
`transcript.text.delta` events and a `transcript.text.done` that carries the usage."""

from __future__ import annotations

import io
import math
import wave
from typing import TYPE_CHECKING, Any

import orjson
from python_multipart import parse_form

from app.fakes import answers

if TYPE_CHECKING:
    from app.fakes.exchange import Exchange, Sender

AUDIO_TYPES = {
    "mp3": b"audio/mpeg",
    "opus": b"audio/ogg",
    "aac": b"audio/aac",
    "flac": b"audio/flac",
    "wav": b"audio/wav",
    "pcm": b"audio/pcm",
}
AUDIO_CHUNK = b"\xff\xfb\x90\x64" + bytes(412)  # one MPEG audio frame's worth of silence


def form(exchange: Exchange) -> tuple[dict[str, str], dict[str, list[bytes]]]:
    """A multipart body's text fields and files (`name[]` under `name`), parsed as any server would."""
    fields: dict[str, str] = {}
    files: dict[str, list[bytes]] = {}

    def on_field(field: Any) -> None:
        fields[field.field_name.decode()] = (field.value or b"").decode()

    def on_file(file: Any) -> None:
        file.file_object.seek(0)
        files.setdefault(file.field_name.decode().removesuffix("[]"), []).append(file.file_object.read())
        file.close()  # a large one went to a temporary file

    headers = {"Content-Type": exchange.header("content-type") or "", "Content-Length": str(len(exchange.body))}
    parse_form(headers, io.BytesIO(exchange.body), on_field, on_file)  # type: ignore[arg-type]
    return fields, files


async def speech(body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
    kind = AUDIO_TYPES.get(str(body.get("response_format", "mp3")), b"audio/mpeg")
    await out.start(200, kind)
    for _ in range(out.behaviour.deltas):
        await out.chunk(AUDIO_CHUNK)
    await out.end()


def seconds(audio: bytes) -> float:
    """The audio's duration: a WAV's own header, else the bytes at 128 kbit/s."""
    try:
        with wave.open(io.BytesIO(audio)) as reader:
            return float(reader.getnframes()) / float(reader.getframerate())
    except (wave.Error, EOFError):
        return len(audio) / 16_000


async def transcriptions(body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
    fields, files = form(exchange)
    if not files.get("file"):
        await out.error(400, "The file is required.")
        return
    text = "".join(answers.text_pieces(out.behaviour.deltas))
    if fields.get("model", "whisper-1") == "whisper-1":
        usage: dict[str, Any] = {"type": "duration", "seconds": math.ceil(seconds(files["file"][0]))}
    else:
        words = len(text.split())
        usage = {"type": "tokens", "input_tokens": 14, "output_tokens": words, "total_tokens": 14 + words}
    if fields.get("stream") != "true" or fields.get("model") != "gpt-transcribe":
        await out.json(200, {"text": text, "usage": usage})
        return
    await out.start(200, b"text/event-stream; charset=utf-8")
    for piece in answers.text_pieces(out.behaviour.deltas):
        await out.chunk(b"data: " + orjson.dumps({"type": "transcript.text.delta", "delta": piece}) + b"\n\n")
    done = {"type": "transcript.text.done", "text": text, "usage": usage}
    await out.chunk(b"data: " + orjson.dumps(done) + b"\n\n")
    await out.end()


async def image_edits(body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
    fields, files = form(exchange)
    if not files.get("image") or not fields.get("prompt"):
        await out.error(400, "The image and the prompt are required.")
        return
    n = fields.get("n", "1")
    request = {"model": fields.get("model", "dall-e-2"), "prompt": fields["prompt"], "n": int(n) if n.isdigit() else 1}
    await out.json(200, answers.images({**request, "response_format": fields.get("response_format")}))
