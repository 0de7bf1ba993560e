"""Routes that report no tokens are bounded and counted too, over real sockets: speech by the characters of its
input, transcription by the audio's seconds (the upstream's report), images by the image; the ledger's report by
route names each route's unit, and a budget refuses a key past it on these routes as on the others. With a price
file, units are priced per unit in every report (the admin report, `keys list`, the spend metric), a money budget
bounds them, and a unit route's model without a price is unpriced, never 0."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayFactory, GatewayProcess, scrape, value, wait_for_report, wav
from tests.helpers.cli import cli_in_process


def send_media(gateway: GatewayProcess, key: str, image_model: str) -> None:
    """11 characters of speech (tts-1), 2.2 s of audio to transcribe (whisper-1), an edit asking for 2 images."""
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        assert http.post("/v1/audio/speech", json={"input": "Hello there", "model": "tts-1"}).status_code == 200
        files = {"file": ("a.wav", wav(2.2), "audio/wav")}
        assert http.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}).status_code == 200
        image = {"image": ("a.png", b"\x89PNG", "image/png")}
        edit = http.post("/v1/images/edits", files=image, data={"prompt": "a hat", "n": "2", "model": image_model})
        assert edit.status_code == 200


def test_the_ledger_shows_every_route_in_its_unit(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    admin, user = keys.create(path, "admin", admin=True), keys.create(path, "user")
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    send_media(gateway, user, "gpt-image-1")
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


# per unit, and nothing per token: each figure below is units x price
PRICES = """currency = "USD"
[[prices]]
model = "tts-1"
per_unit = 0.001
unit = "character"
[[prices]]
model = "whisper-1"
per_unit = 0.01
unit = "second"
[[prices]]
model = "dall-e-2"
per_unit = 0.02
unit = "image"
"""


def priced_gateway(make_gateway: GatewayFactory, tmp_path: Path) -> GatewayProcess:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    return make_gateway(PROXY_KEYS_FILE=str(tmp_path / "keys.toml"), PROXY_PRICES_FILE=str(prices))


def test_unit_routes_are_priced_in_every_report(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    admin, user = keys.create(path, "admin", admin=True), keys.create(path, "user")
    gateway = priced_gateway(make_gateway, tmp_path)
    send_media(gateway, user, "dall-e-2")
    hd = {"input": "Hi", "model": "tts-1-hd"}
    assert httpx.post(gateway.url + "/v1/audio/speech", json=hd, headers={"authorization": f"Bearer {user}"}).is_success
    report = wait_for_report(gateway, admin, 4, by="route")
    rows = {row["route"]: row for row in report["rows"]}
    speech = rows["openai.audio.speech"]
    assert (speech["cost"], speech["unpriced_requests"]) == (pytest.approx(11 * 0.001), 1)  # tts-1-hd: unpriced
    assert rows["openai.audio.transcriptions"]["cost"] == pytest.approx(3 * 0.01)  # 2.2 s, a started second whole
    assert rows["openai.images.edits"]["cost"] == pytest.approx(2 * 0.02)
    assert (report["total"]["cost"], report["total"]["unpriced_requests"]) == (pytest.approx(0.081), 1)
    samples = scrape(gateway, admin)
    for model, cost in (("tts-1", 0.011), ("whisper-1", 0.03), ("dall-e-2", 0.04)):
        assert value(samples, "acedata_proxy_spend_total", key="user", model=model) == pytest.approx(cost), model
    assert value(samples, "acedata_proxy_spend_total", key="user", model="tts-1-hd") == 0  # unpriced adds nothing
    env = {"PROXY_DATA_DIR": str(tmp_path / "data"), "PROXY_PRICES_FILE": str(tmp_path / "prices.toml")}
    listing = cli_in_process("keys", "list", "--file", str(path), cwd=tmp_path, env=env).stdout
    [line] = [line for line in listing.splitlines() if line.startswith("user")]
    assert "0.0810" in line.split()
    page = httpx.get(gateway.url + "/admin", headers={"authorization": f"Bearer {admin}"}, timeout=30).text
    row = re.search(r'<tr data-key="user">(.*?)</tr>', page)
    assert row is not None
    assert float(re.findall(r'data-value="([^"]*)"', row.group(1))[1]) == pytest.approx(0.081)  # the dashboard


def test_a_money_budget_bounds_speech_and_refuses_an_unpriced_voice(
    make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream
):
    path = tmp_path / "keys.toml"
    spender = keys.create(path, "spender", budget_amount=0.025, budget_period="day")
    gateway = priced_gateway(make_gateway, tmp_path)
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {spender}"}, timeout=30) as http:
        unpriced = http.post("/v1/audio/speech", json={"input": "x" * 10, "model": "tts-1-hd"})
        statuses = [http.post("/v1/audio/speech", json={"input": "x" * 10, "model": "tts-1"}).status_code
                    for _ in range(4)]  # fmt: skip
    assert unpriced.status_code == 403
    assert "has no price in PROXY_PRICES_FILE" in unpriced.json()["error"]["message"]
    assert statuses == [200, 200, 200, 429]  # 0.01 each: the fourth finds 0.03 spent of 0.025
    assert len(fake.exchanges) == 3
