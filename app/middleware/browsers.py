"""Browsers and DNS rebinding, when no keys file guards the gateway on loopback: any web page the user opens can
send a simple POST to 127.0.0.1:8000 (or make its own domain resolve there), and the gateway would spend the
team's balance for it. Such requests are refused with 403 before anything else runs:

- an `Origin` that is neither this gateway's own nor listed in PROXY_CORS_ORIGINS;
- `Sec-Fetch-Site: cross-site` without such an origin;
- a `Host` that is not the bound address or a loopback name (a rebound domain names itself there).

Clients that are not browsers (SDKs, curl) send neither header and name the address they connect to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Iterable

from app.context import request_info
from app.errors import CrossSiteRefused, send_error
from app.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
HOSTS_KEPT = 256


def host_name(host: str) -> str:
    """The name part of a Host header value, without its port or IPv6 brackets, in lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):  # RFC 6761: *.localhost is loopback
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class BrowserGuard:
    def __init__(self, app: ASGIApp, bound_host: str, cors_origins: Iterable[str]):
        self.app = app
        self.bound = host_name(bound_host)
        origins = frozenset(origin.lower() for origin in cors_origins)
        self.any_origin = "*" in origins
        self.origins = origins
        self.hosts: dict[bytes, bool] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # not a coroutine: what it lets through is awaited as the app's own, with no frame of this layer in the
        # await chain every suspension of the request walks
        if scope["type"] == "http" and (reason := self.refusal(scope["headers"])) is not None:
            info = request_info(scope)  # the access line still records the refusal
            return send_error(send, CrossSiteRefused(reason), info.envelope)
        return self.app(scope, receive, send)

    def refusal(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        fields = dict(headers)  # in C; a repeated Host is refused by the framing checks before this runs
        host, origin = fields.get(b"host"), fields.get(b"origin")
        if host is not None and not self._allowed_host(host):
            return "This gateway has no keys file and answers only requests addressed to its loopback address."
        if origin is None and fields.get(b"sec-fetch-site", b"").strip().lower() != b"cross-site":
            return None
        seen = origin.decode("latin-1").strip().lower() if origin is not None else None
        if (
            self.any_origin
            or seen in self.origins
            or (host is not None and seen == f"http://{host.decode('latin-1').lower()}")
        ):
            return None
        return (
            "Cross-site browser requests are refused: this gateway has no keys file. List the web app's origin in "
            "PROXY_CORS_ORIGINS, or set PROXY_KEYS_FILE."
        )

    def _allowed_host(self, host: bytes) -> bool:
        """Remembered for the few Host values clients send (a client cannot grow the memory past HOSTS_KEPT)."""
        allowed = self.hosts.get(host)
        if allowed is None:
            name = host_name(host.decode("latin-1"))
            allowed = name == self.bound or is_loopback(name)
            if len(self.hosts) < HOSTS_KEPT:
                self.hosts[host] = allowed
        return allowed
