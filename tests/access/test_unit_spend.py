"""Routes that report no tokens are bounded and counted too, over real sockets: speech by the characters of its
input, transcription by the audio's seconds (the upstream's report), images by the image; the ledger's report by
route names each route's unit, and a budget refuses a key past it on these routes as on the others."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayFactory, wait_for_report, wav


def test_the_ledger_shows_every_route_in_its_unit(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    admin, user = keys.create(path, "admin", admin=True), keys.create(path, "user")
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {user}"}, timeout=30) as http:
        assert http.post("/v1/audio/speech", json={"input": "Hello there", "model": "tts-1"}).status_code == 200
        files = {"file": ("a.wav", wav(2.2), "audio/wav")}
        assert http.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}).status_code == 200
        image = {"image": ("a.png", b"\x89PNG", "image/png")}
        edit = http.post("/v1/images/edits", files=image, data={"prompt": "a hat", "n": "2", "model": "gpt-image-1"})
        assert edit.status_code == 200
    rows = {row["route"]: row for row in wait_for_report(gateway, admin, 3, by="route")["rows"]}
    assert (rows["openai.audio.speech"]["unit"], rows["openai.audio.speech"]["units"]) == ("character", 11)
    assert rows["openai.audio.speech"]["input_tokens"] > 0  # the body's estimate: what TPM and budgets count
    transcription = rows["openai.audio.transcriptions"]
    assert (transcription["unit"], transcription["units"]) == ("second", 3)  # the upstream's 2.2 s, rounded up
    assert (rows["openai.images.edits"]["unit"], rows["openai.images.edits"]["units"]) == ("image", 2)
    assert rows["openai.images.edits"]["output_tokens"] == 2 * 1056  # gpt-image-1 reports its tokens


def test_a_budget_bounds_speech(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    user = keys.create(path, "user", budget_tokens=300, budget_period="day")
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    body = {"input": "x" * 1000, "model": "tts-1"}  # ~260 tokens of body
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {user}"}, timeout=30) as http:
        statuses = [http.post("/v1/audio/speech", json=body).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    assert statuses[2] == 429
