"""The upload routes' own body limit (25 MB, above PROXY_MAX_REQUEST_BYTES), what an upload costs in memory, and the
hostile-client bounds that hold for uploads as for JSON bodies: a body that trickles gets 408, an unfinished
upload holds no in-flight slot, a key over its limit is refused before its upload is read; the JSON structural
count, which would refuse a file full of commas, never runs on a form."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from app.proxy.table import UPLOAD_BYTES
from tests.helpers import CLIENT_KEY, GatewayFactory, GatewayProcess, raw_exchange, read_response, rss_bytes

MiB = 1 << 20
HEAD = (
    b"POST /v1/audio/transcriptions HTTP/1.1\r\nhost: localhost\r\n"
    b"content-type: multipart/form-data; boundary=b0undary\r\n"
)


def upload(size: int) -> bytes:
    head = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n'
    return head + os.urandom(size) + b"\r\n--b0undary--\r\n"


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def test_26_mib_announced_is_refused_before_it_is_sent(gateway: GatewayProcess, fake: FakeUpstream):
    response = raw_exchange(gateway.port, HEAD + b"content-length: %d\r\n\r\n" % (26 * MiB))
    assert response.status == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert str(UPLOAD_BYTES) in response.json()["error"]["message"]
    assert fake.exchanges == []


def test_26_mib_chunked_is_refused_once_past_the_limit(gateway: GatewayProcess, fake: FakeUpstream):
    """No length up front: the 413 comes while the client is still sending (the body never ends here)."""
    chunk = b"x" * MiB
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall(HEAD + b"transfer-encoding: chunked\r\n\r\n")
        for _ in range(UPLOAD_BYTES // MiB + 1):
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        response = read_response(sock)
    assert response.status == 413
    assert fake.exchanges == []


def test_a_json_route_keeps_the_default_limit(client: httpx.Client, fake: FakeUpstream):
    response = client.post("/v1/audio/speech", content=b"x" * (11 * MiB), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert fake.exchanges == []


@pytest.mark.slow
def test_a_25_mib_upload_passes_held_once(make_gateway: GatewayFactory, fake: FakeUpstream):
    gateway = make_gateway()
    body = upload(25 * MiB)
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "multipart/form-data; boundary=b0undary"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=60) as client:
        assert client.post("/v1/audio/transcriptions", content=upload(1000)).status_code == 200  # warm
        before = rss_bytes(gateway.proc.pid)
        response = client.post("/v1/audio/transcriptions", content=body)
        grown = peak_rss_bytes(gateway.proc.pid) - before
    assert response.status_code == 200, response.text
    assert fake.exchanges[-1].body == body
    assert grown < 2 * len(body), f"peak RSS grew {grown / MiB:.1f} MiB for a {len(body) / MiB:.1f} MiB upload"


def multipart_head(length: int, extra: bytes = b"") -> bytes:
    return HEAD + extra + b"content-length: %d\r\n\r\n" % length


def test_an_upload_that_trickles_gets_408_and_holds_no_slot(make_gateway: GatewayFactory, fake: FakeUpstream):
    """A worker admitting one request, one upload stuck at its first KiB: a complete upload still gets in, and the
    stuck one is cut once past the grace plus a second per 16 KiB received."""
    gateway = make_gateway(PROXY_MAX_INFLIGHT="1", PROXY_HEAD_TIMEOUT="0.5").wait_ready()
    body = upload(4096)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as slow:
        slow.sendall(multipart_head(len(body)) + body[:1024])
        assert raw_exchange(gateway.port, multipart_head(len(body)) + body).status == 200
        late = read_response(slow)
    assert late.status == 408
    assert late.json()["error"]["code"] == "request_timeout"
    assert len(fake.exchanges) == 1


def test_a_key_over_its_limit_is_refused_before_its_upload_is_read(
    make_gateway: GatewayFactory, fake: FakeUpstream, tmp_path: Path
):
    path = tmp_path / "keys.toml"
    keys.save(path, [keys.KeyEntry("team", keys.digest(CLIENT_KEY), rpm=1)])
    gateway = make_gateway(PROXY_KEYS_FILE=str(path)).wait_ready()
    auth = f"authorization: Bearer {CLIENT_KEY}\r\n".encode()
    body = upload(1000)
    assert raw_exchange(gateway.port, multipart_head(len(body), auth) + body).status == 200
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(multipart_head(20 * MiB, auth))  # and not one byte of the 20 MB
        response = read_response(sock)
    assert response.status == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.exchanges) == 1


def test_a_file_of_commas_is_not_counted_as_json(client: httpx.Client, fake: FakeUpstream):
    """600,000 commas, braces and brackets each: a JSON body this shape is refused before parsing; a file is data."""
    audio = b",{[," * 300_000
    files = {"file": ("a.mp3", audio, "audio/mpeg")}
    response = client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
    assert response.status_code == 200, response.text
    assert audio in fake.exchanges[-1].body
