"""The `acedata-proxy` command as users run it: refusing an open relay, and the no-token demo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.helpers import START_TIMEOUT, CliProcess, listening_ports, listening_socket, wait_for, wait_healthy


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port in use (listening): a gateway that tried to bind it would fail, so a refusal that comes
    after binding instead of before it cannot pass for one that comes first."""
    with listening_socket() as sock:
        yield sock.getsockname()[1]


def test_public_bind_without_keys_is_refused(tmp_path: Path, taken_port: int):
    cli = CliProcess(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(taken_port))
    output = cli.output()
    assert cli.proc.returncode != 0
    assert b"Refusing to listen on 0.0.0.0 without PROXY_KEYS_FILE" in output


def test_a_public_socket_handed_over_is_refused_too(tmp_path: Path):
    """--fd: the address checked is the socket's own."""
    cli = CliProcess(tmp_path, "serve", listen=True, host="0.0.0.0")
    assert cli.proc.wait(START_TIMEOUT) != 0
    assert b"Refusing to listen on 0.0.0.0 without PROXY_KEYS_FILE" in cli.output()


def test_public_bind_allowed_when_explicitly_unauthenticated(tmp_path: Path):
    cli = CliProcess(tmp_path, "serve", listen=True, host="0.0.0.0", PROXY_ALLOW_UNAUTHENTICATED="true")
    try:
        wait_healthy(cli.url, cli.proc)
    finally:
        cli.stop()
    assert cli.proc.returncode == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_binds_host_and_port_itself(tmp_path: Path, workers: str):
    """Without --fd, the gateway binds --host/--port itself: port 0 lets the kernel choose, and the test reads
    the port it got from /proc."""
    cli = CliProcess(tmp_path, "serve", "--port", "0", "--workers", workers)
    try:
        started = lambda: cli.proc.poll() is not None or listening_ports(cli.proc.pid)  # noqa: E731
        wait_for(started, START_TIMEOUT, "a listening port")
        [port] = listening_ports(cli.proc.pid)
        wait_healthy(f"http://127.0.0.1:{port}", cli.proc)
    finally:
        output = cli.stop()
    assert cli.proc.returncode == 0, output


def test_fd_and_port_together_are_refused(tmp_path: Path):
    cli = CliProcess(tmp_path, "serve", "--port", "8000", listen=True)
    assert cli.proc.wait(START_TIMEOUT) != 0
    assert b"give --fd or --host/--port, not both" in cli.output()


def test_placeholder_token_stops_the_start_with_a_clear_message(tmp_path: Path):
    (tmp_path / ".env").write_text("ACEDATACLOUD_API_TOKEN=changeme\n")
    cli = CliProcess(tmp_path, "serve", listen=True)
    output = cli.output()
    assert cli.proc.returncode != 0
    assert b"invalid settings" in output
    assert b"placeholder" in output


def test_demo_streams_with_no_token_and_no_network(tmp_path: Path):
    cli = CliProcess(tmp_path, "demo", listen=True)
    url = cli.url
    try:
        wait_healthy(url, cli.proc)
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
        output = cli.stop()
    assert b"acedata-proxy demo" in output
    assert cli.proc.returncode == 0


def test_several_workers_with_limited_keys_need_redis(tmp_path: Path):
    from app import keys

    keys.create(tmp_path / "keys.toml", "limited", rpm=5)
    cli = CliProcess(tmp_path, "serve", "--workers", "2", listen=True, PROXY_KEYS_FILE="keys.toml")
    output = cli.output()
    assert cli.proc.returncode != 0
    assert b"Refusing to start 2 workers with rate-limited keys and no PROXY_REDIS_URL" in output
