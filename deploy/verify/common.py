"""What the image and team checks share: podman, loopback ports, waiting, and the list of checks that failed."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai

IMAGE = os.environ["IMAGE"]
PREFIX = os.environ["CONTAINER_PREFIX"]
TOKEN = "verify-upstream-token"
DELTAS, DELAY = 20, 0.1  # fake upstream streams: 20 pieces 0.1 s apart, so a stream is in flight for ~2 s
ROOT = Path(__file__).resolve().parents[2]
failures: list[str] = []


def check(ok: bool, what: str, detail: str = "") -> bool:
    print(f"  {'ok  ' if ok else 'FAIL'}  {what}" + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)


def run(name: str, *args: str) -> str:
    """A detached container on the host's network; the script's clean-up removes every PREFIX-* container."""
    result = podman("run", "-d", "--name", f"{PREFIX}-{name}", "--stop-timeout", "35", *args)
    if result.returncode != 0:
        raise RuntimeError(f"podman run {name}: {result.stderr.strip()}")
    return f"{PREFIX}-{name}"


def free_ports(count: int) -> list[int]:
    """Ports free now, for containers that bind them themselves (a socket cannot be handed into a container)."""
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return False


def status(url: str, **headers: str) -> int:
    return httpx.get(url, headers=headers, timeout=5).status_code


def stream_through_sdk(base_url: str, key: str) -> tuple[int, float, float]:
    """(deltas received, seconds to the first, seconds to the end) of one streamed Responses request."""
    first = 0.0
    count = 0
    with openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30) as sdk:
        responses = sdk.responses  # the SDK loads its modules on first use: not part of the request's time
        started = time.monotonic()
        with responses.create(model="gpt-4.1", input="hi", stream=True) as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    count += 1
                    first = first or time.monotonic() - started
    return count, first, time.monotonic() - started
