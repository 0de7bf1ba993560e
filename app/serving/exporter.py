"""PROXY_METRICS_PORT: `GET /metrics` on a listener of its own (the exporters' convention), so that the gateway's
port, which clients reach, shows them no key names. Every worker listens on it (SO_REUSEPORT) and answers with
the merged metrics of all, as /metrics does. Nothing else is served there: one request per connection, a head
of at most 8 KiB within a few seconds."""

from __future__ import annotations

import asyncio
import contextlib

from app.metrics import CONTENT_TYPE_LATEST, Metrics

HEAD_LIMIT = 8 * 1024
HEAD_TIMEOUT = 5.0
NOT_FOUND = b"This listener serves GET /metrics only.\n"


def _answer(head: bytes, metrics: Metrics) -> bytes:
    method, _, rest = head.partition(b" ")
    target = rest.partition(b" ")[0].partition(b"?")[0]
    if method == b"GET" and target == b"/metrics":
        status, content_type, body = b"200 OK", CONTENT_TYPE_LATEST.encode(), metrics.exposition()
    else:
        status, content_type, body = b"404 Not Found", b"text/plain; charset=utf-8", NOT_FOUND
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type + b"\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )  # fmt: skip


async def start(host: str, port: int, metrics: Metrics) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            writer.write(_answer(head, metrics))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass  # a scraper that went away, or something that is not one
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(serve, host, port, reuse_port=True, limit=HEAD_LIMIT)
