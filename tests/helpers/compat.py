"""What the compatibility suite's tests share: the keyed gateway they run against and the audit of every host
the clients reach (tests/compat/conftest.py makes the fixtures)."""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Any

from tests.helpers.servers import ROOT, GatewayProcess

MAX_REQUEST_BYTES = 64 * 1024  # small, so a 413 costs no gateway of its own
JS_DIR = ROOT / "tests" / "compat" / "js"


@dataclass
class KeyedGateway:
    process: GatewayProcess
    keys: dict[str, str]  # name -> plaintext

    @property
    def url(self) -> str:
        return self.process.url

    def key(self, name: str) -> str:
        return self.keys[name]


# name -> limits: "app" may do everything (and carries an RPM, so its answers have x-ratelimit-* headers),
# "narrow" has an allowlist (no Claude model), each "rpm1-*" admits one request a minute (one per test that spends it).
KEYS: dict[str, dict[str, Any]] = {
    "app": {"rpm": 100_000},
    "narrow": {"models": ["gpt-4o-mini"]},
    "rpm1-sync": {"rpm": 1},
    "rpm1-async": {"rpm": 1},
    "rpm1-anthropic-sync": {"rpm": 1},
    "rpm1-anthropic-async": {"rpm": 1},
}


class ConnectionAudit:
    """Every host this process connects to or resolves, seen through Python's audit events (sockets, asyncio's
    included). One hook for the session (audit hooks cannot be removed); tests read what arrived during them."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect" and isinstance(args[1], tuple):
            self.hosts.append(str(args[1][0]))
        elif event == "socket.getaddrinfo":
            self.hosts.append(str(args[0]))

    def outside_loopback(self, since: int) -> list[str]:
        return [host for host in self.hosts[since:] if host not in ("127.0.0.1", "::1", "localhost")]


async def resolve(value: Any) -> Any:
    """The value of a call on either client of an SDK: the sync client returns it, the async one a coroutine."""
    return await value if inspect.isawaitable(value) else value


async def collect(stream: Any) -> list[Any]:
    """The items of a stream from either client (an iterator, or an async iterator)."""
    if hasattr(stream, "__aiter__"):
        return [item async for item in stream]
    return list(stream)
