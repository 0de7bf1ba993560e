"""The `acedata-proxy` command as users run it: refusing an open relay, and the no-token demo."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from app.server import LISTENERS, listening_sockets
from tests.servers import ROOT, free_port, wait_healthy


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PROXY_", "ACEDATACLOUD_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_public_bind_without_keys_is_refused(tmp_path: Path):
    proc = run_cli(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert b"Refusing to listen on 0.0.0.0 without PROXY_KEYS_FILE" in output


def test_public_bind_allowed_when_explicitly_unauthenticated(tmp_path: Path):
    port = free_port()
    proc = run_cli(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(port), PROXY_ALLOW_UNAUTHENTICATED="true")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_placeholder_token_stops_the_start_with_a_clear_message(tmp_path: Path):
    (tmp_path / ".env").write_text("ACEDATACLOUD_API_TOKEN=changeme\n")
    proc = run_cli(tmp_path, "serve", "--port", str(free_port()))
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert b"invalid settings" in output
    assert b"placeholder" in output


def test_demo_streams_with_no_token_and_no_network(tmp_path: Path):
    port = free_port()
    proc = run_cli(tmp_path, "demo", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        with (
            OpenAI(base_url=url + "/openai", api_key="anything", max_retries=0) as sdk,
            sdk.responses.create(model="gpt-4.1", input="hi", stream=True) as stream,
        ):
            deltas = [e for e in stream if e.type == "response.output_text.delta"]
        assert len(deltas) == 16
        body = {"model": "gpt-4o", "question": "hi"}
        ndjson = httpx.post(url + "/aichat/conversations", json=body, headers={"accept": "application/x-ndjson"})
        assert len(ndjson.text.splitlines()) == 16
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=20)
    assert b"acedata-proxy demo" in output
    assert proc.returncode == 0


def test_several_workers_with_limited_keys_need_redis(tmp_path: Path):
    from app import keys

    keys.create(tmp_path / "keys.toml", "limited", rpm=5)
    proc = run_cli(tmp_path, "serve", "--workers", "2", "--port", str(free_port()), PROXY_KEYS_FILE="keys.toml")
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert b"Refusing to start 2 workers with rate-limited keys and no PROXY_REDIS_URL" in output


def test_serve_listens_on_several_sockets_of_one_address():
    """A saturated uvloop worker takes one connection per listening socket per loop iteration (app/server.py)."""
    sockets = listening_sockets("127.0.0.1", 0)
    try:
        assert len(sockets) == LISTENERS
        assert len({sock.getsockname() for sock in sockets}) == 1
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        with socket.create_connection(sockets[0].getsockname(), timeout=5):
            pass  # the address accepts connections
    finally:
        for sock in sockets:
            sock.close()


def test_listening_sockets_refuse_an_address_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            listening_sockets("127.0.0.1", taken.getsockname()[1])
