"""The `acedata-proxy` command as users run it: refusing an open relay, and the no-token demo."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from app.serving.server import LISTENERS, listening_sockets
from tests.helpers import (
    ROOT,
    START_TIMEOUT,
    CliProcess,
    listening_ports,
    listening_socket,
    run_cli,
    wait_for,
    wait_healthy,
)
from tests.helpers.cli import cli_in_process
from tests.helpers.servers import SETTINGS_PREFIXES


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
    assert output.decode().splitlines() == [
        "acedata-proxy: ACEDATACLOUD_API_TOKEN: a placeholder, not a token: set the real token or leave it unset"
    ]


def test_credentials_in_the_base_url_stop_the_start_in_one_line(tmp_path: Path, taken_port: int):
    proc = run_cli(tmp_path, "serve", "--port", str(taken_port), ACEDATACLOUD_API_BASE_URL="https://u:p4ss@h.example")
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert output.decode().splitlines() == [
        "acedata-proxy: ACEDATACLOUD_API_BASE_URL: credentials in a URL are not accepted; "
        "the gateway sends its token itself",
    ]


def test_demo_streams_with_no_token_and_no_network(tmp_path: Path):
    cli = CliProcess(tmp_path, "demo", listen=True)
    url = cli.url
    try:
        wait_healthy(url, cli.proc)
        body = {"model": "gpt-4o", "question": "hi"}
        with ThreadPoolExecutor(1) as side:  # both at once: the demo paces its answers for people to watch
            ndjson = side.submit(
                httpx.post, url + "/aichat/conversations", json=body, headers={"accept": "application/x-ndjson"}
            )
            with (
                OpenAI(base_url=url + "/openai", api_key="anything", max_retries=0) as sdk,
                sdk.responses.create(model="gpt-4.1", input="hi", stream=True) as stream,
            ):
                deltas = [e for e in stream if e.type == "response.output_text.delta"]
            assert len(deltas) == 16
            assert len(ndjson.result(timeout=30).text.splitlines()) == 16
    finally:
        output = cli.stop()
    assert b"acedata-proxy demo" in output
    assert cli.proc.returncode == 0


def test_several_workers_with_limited_keys_need_redis(tmp_path: Path):
    from app.access import keys

    keys.create(tmp_path / "keys.toml", "limited", rpm=5)
    cli = CliProcess(tmp_path, "serve", "--workers", "2", listen=True, PROXY_KEYS_FILE="keys.toml")
    output = cli.output()
    assert cli.proc.returncode != 0
    assert b"Refusing to start 2 workers with rate-limited keys and no PROXY_REDIS_URL" in output


def test_version_and_help_for_every_argument():
    from app import __version__
    from app.cli import _parser

    result = subprocess.run([sys.executable, "-m", "app", "--version"], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.stdout.strip() == f"acedata-proxy {__version__}"
    parsers = [_parser()]
    undocumented = []
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += action.choices.values()
            elif not action.help:
                undocumented.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert not undocumented


def test_demo_says_its_port_is_taken_before_any_instructions(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(tmp_path, "demo", "--port", str(port))
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert output.decode().strip() == (
        f"acedata-proxy: Cannot listen on 127.0.0.1:{port}: the address is already in use. Stop what uses it, or "
        f"use another port: --port {port + 1}"
    )


def make_unreadable(path: Path) -> list[str]:
    """A keys file this process cannot read, and the command prefix that makes it so even for root (which reads
    any file unless it gives up its capabilities to bypass file modes)."""
    if os.getuid() != 0:
        path.chmod(0)
        return []
    os.chown(path, 65534, 65534)
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("owner-only", "Permission denied"),
        ("[[keys]\nname = 'x'\n", "Expected ']]'"),
        ("[[keys]]\nname = 'x'\n", "sha256 must be 64 lowercase hex digits"),
    ],
)
def test_keys_file_problems_stop_the_start_in_one_line(
    tmp_path: Path, taken_port: int, content: str | None, needle: str
):
    path = tmp_path / "keys.toml"
    prefix = []
    if content == "owner-only":
        from app.access import keys

        keys.create(path, "alice")  # mode 0600, as `keys create` makes it
        prefix = make_unreadable(path)
    elif content is not None:
        path.write_text(content)
    args, env = ("serve", "--port", str(taken_port)), {"PROXY_KEYS_FILE": str(path)}
    if content == "owner-only":  # as a process, run the way a user runs it (and, as root, without its privileges)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "app", *args], cwd=tmp_path, timeout=30,
            env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
        )  # fmt: skip
    else:  # the same refusal in this process: a gateway process costs ~1 s of CPU to start
        result = cli_in_process(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"acedata-proxy: PROXY_KEYS_FILE={path}: ")
    assert needle in result.stderr
    if content == "owner-only":
        assert f"this process runs as uid {os.getuid()}: make the file readable to it" in result.stderr


def test_serve_listens_on_several_sockets_of_one_address():
    """A saturated uvloop worker takes one connection per listening socket per loop iteration
    (app/serving/server.py)."""
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
