"""The `acedata-proxy` command as users run it: refusing an open relay, and the no-token demo."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

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
        f"acedata-proxy: Cannot listen on 127.0.0.1:{port} (Address already in use): another gateway or demo may "
        f"be running there. Stop it, or start the demo on another port: acedata-proxy demo --port {port + 1}"
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
def test_keys_file_problems_stop_the_start_in_one_line(tmp_path: Path, content: str | None, needle: str):
    path = tmp_path / "keys.toml"
    prefix = []
    if content == "owner-only":
        from app import keys

        keys.create(path, "alice")  # mode 0600, as `keys create` makes it
        prefix = make_unreadable(path)
    elif content is not None:
        path.write_text(content)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PROXY_", "ACEDATACLOUD_"))}
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "app", "serve", "--port", str(free_port())], cwd=tmp_path, timeout=30,
        env={**clean, "PYTHONPATH": str(ROOT), "PROXY_KEYS_FILE": str(path)}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"acedata-proxy: PROXY_KEYS_FILE={path}: ")
    assert needle in result.stderr
    if content == "owner-only":
        assert f"this process runs as uid {os.getuid()}: make the file readable to it" in result.stderr
