"""POST /v1/audio/speech and /v1/audio/transcriptions (and their /openai twins) through the real gateway."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from app.fakes.media import AUDIO_CHUNK
from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayProcess, SdkFactory, sse_events, wav


def form(fields: dict[str, str], files: dict[str, bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    """A multipart/form-data body, built by hand so the test knows every byte the gateway must forward."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    for name, data in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="a.wav"\r\n'
        parts.append(head.encode() + b"Content-Type: audio/wav\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("prefix", ["/openai", "/v1"])
def test_sdk_streams_speech(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, prefix: str):
    sdk = make_sdk(gateway.url + prefix)
    with sdk.audio.speech.with_streaming_response.create(model="tts-1", voice="nova", input="Hello") as response:
        assert response.headers["content-type"] == "audio/mpeg"
        audio = b"".join(response.iter_bytes())
    [exchange] = fake.exchanges
    assert exchange.path == "/openai/audio/speech"
    assert audio == bytes(exchange.sent) == AUDIO_CHUNK * fake.behaviour.deltas
    assert orjson.loads(exchange.body) == {"model": "tts-1", "voice": "nova", "input": "Hello"}


def test_speech_content_type_passes_through(client: httpx.Client, fake: FakeUpstream):
    response = client.post("/v1/audio/speech", json={"input": "Hi", "response_format": "wav"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.content == bytes(fake.exchanges[0].sent)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tts-1"}, "input"),
        ({"input": ""}, "input"),
        ({"input": "hi", "model": "gpt-4o"}, "model"),
        ({"input": "hi", "voice": "robot"}, "voice"),
        ({"input": "hi", "speed": 9}, "speed"),
    ],
)
def test_bad_speech_requests_are_refused(client: httpx.Client, fake: FakeUpstream, body: dict[str, object], param: str):
    response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert fake.exchanges == []


def test_sdk_transcribes_a_wav(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, tmp_path: Path):
    path = tmp_path / "hello.wav"
    path.write_bytes(wav(2.5))
    with path.open("rb") as file:
        result = make_sdk(gateway.url + "/v1").audio.transcriptions.create(model="whisper-1", file=file)
    assert result.text.startswith("Hello")
    [exchange] = fake.exchanges
    assert exchange.path == "/openai/audio/transcriptions"
    assert wav(2.5) in exchange.body


@pytest.mark.parametrize("path", ["/openai/audio/transcriptions", "/v1/audio/transcriptions"])
def test_a_form_is_forwarded_byte_for_byte(client: httpx.Client, fake: FakeUpstream, path: str):
    body, content_type = form({"model": "whisper-1", "language": "en"}, {"file": wav(1)})
    response = client.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code == 200
    assert response.json()["usage"] == {"type": "duration", "seconds": 1}
    [exchange] = fake.exchanges
    assert (exchange.body, exchange.header("content-type")) == (body, content_type)


def test_gpt_transcribe_streams_sse(client: httpx.Client, fake: FakeUpstream):
    body, content_type = form({"model": "gpt-transcribe", "stream": "true"}, {"file": wav(1)})
    response = client.post("/v1/audio/transcriptions", content=body, headers={"content-type": content_type})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [orjson.loads(data) for _, data in sse_events(response.content)]
    assert [event["type"] for event in events][-2:] == ["transcript.text.delta", "transcript.text.done"]
    assert events[-1]["usage"]["type"] == "tokens"
    assert response.content == bytes(fake.exchanges[0].sent)


@pytest.mark.parametrize(
    ("fields", "files", "param"),
    [
        ({"model": "whisper-1"}, {}, "file"),
        ({"model": "whisper-9"}, {"file": b"RIFF"}, "model"),
        ({"temperature": "2"}, {"file": b"RIFF"}, "temperature"),
        ({"stream": "maybe"}, {"file": b"RIFF"}, "stream"),
    ],
)
def test_bad_forms_are_refused(
    client: httpx.Client, fake: FakeUpstream, fields: dict[str, str], files: dict[str, bytes], param: str
):
    body, content_type = form(fields, files)
    response = client.post("/v1/audio/transcriptions", content=body, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert fake.exchanges == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"model": "whisper-1"}', "application/json"),
        (b"--b\r\nContent-Disposition: form-data; name=model\r\n\r\nwhisper-1\r\n", "multipart/form-data; boundary=b"),
        (b"", "multipart/form-data"),
    ],
    ids=["json", "no-closing-boundary", "no-boundary"],
)
def test_what_is_not_a_whole_form_is_refused(client: httpx.Client, fake: FakeUpstream, body: bytes, content_type: str):
    response = client.post("/v1/audio/transcriptions", content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert fake.exchanges == []
