"""Where the upstream is and how to reach it: the base URL taken apart once (host, port, path prefix, `Host`
header), and the egress proxy the standard environment variables choose for it (HTTPS_PROXY, HTTP_PROXY,
NO_PROXY, as curl and httpx read them). Both clients use these, so they reach the same place the same way."""

from __future__ import annotations

import base64
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


class OriginError(ValueError):
    """A base URL or proxy URL the gateway cannot use; the message is one line, for the operator."""


@dataclass(frozen=True, slots=True)
class Origin:
    tls: bool
    host: str  # as resolved: no brackets around an IPv6 address
    port: int
    prefix: bytes  # the base URL's path, without the trailing slash: joined with every route's upstream path
    host_header: bytes  # what `Host` says: host[:port] as written, never any userinfo

    @property
    def authority(self) -> bytes:
        """host:port for a CONNECT request."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}".encode("idna")


def parse_origin(url: str) -> Origin:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OriginError(f"{url!r} is not an http(s) URL")
    if "@" in parts.netloc:
        raise OriginError("credentials in a URL are not accepted; the gateway sends its token itself")
    if parts.query or parts.fragment:
        raise OriginError(f"{url!r} has a query or fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise OriginError(f"{url!r} has an invalid port ({exc})") from None
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        shown += f":{parts.port}"
    return Origin(parts.scheme == "https", host, port, parts.path.rstrip("/").encode(), shown.encode("idna"))


@dataclass(frozen=True, slots=True)
class Proxy:
    url: str  # as configured, for httpx
    host: str
    port: int
    authorization: bytes | None  # `Proxy-Authorization` value when the proxy URL carries credentials


def proxy_for(origin: Origin, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy the environment chooses for `origin`, or None (no variable set, or NO_PROXY matches it).
    Only http:// proxies: a CONNECT tunnel for an https upstream, absolute-form requests for an http one."""
    env = os.environ if environ is None else environ
    proxies = {
        name[:-6].lower(): value for name, value in env.items() if name.lower().endswith("_proxy") and value.strip()
    }
    if not proxies:
        return None
    if urllib.request.proxy_bypass_environment(origin.host, proxies):  # type: ignore[attr-defined]
        return None
    url = proxies.get("https" if origin.tls else "http") or proxies.get("all")
    if not url:
        return None
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise OriginError(f"proxy {parts.scheme}://{parts.hostname} is not supported; use an http:// proxy URL")
    authorization = None
    if parts.username is not None:
        user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = b"Basic " + base64.b64encode(user_pass)
    return Proxy(url, parts.hostname, parts.port or 80, authorization)


def tls_context() -> ssl.SSLContext:
    """The system's trust store, plus SSL_CERT_FILE / SSL_CERT_DIR when set (OpenSSL's own variables): a
    private CA is trusted by pointing those at it, the same for both clients."""
    return ssl.create_default_context()
