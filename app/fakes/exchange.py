"""What the fake upstream's handlers work with: the `Behaviour` that makes it misbehave on demand, the `Exchange`
it records for each request, and the `Sender` that answers one (pacing and faults applied to its chunks). Apart
from app/fakes/upstream.py, so the handlers of each API family (app/fakes/media.py, gemini.py) can use them."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from app.types import Headers, Send

UPSTREAM_ERRORS = {
    400: "bad_request",
    401: "invalid_token",
    403: "used_up",
    404: "no_api",
    413: "request_too_large",
    429: "too_many_requests",
    500: "api_error",
    504: "timeout",
}


@dataclass
class Behaviour:
    deltas: int = 5  # stream pieces (text deltas) per answer
    delay: float = 0.0  # seconds between stream chunks
    headers_delay: float = 0.0  # seconds before the status line (a slow or hanging upstream)
    status: int | None = None  # answer every request with this upstream error status
    cut_after: int | None = None  # drop the connection after this many body chunks
    stall_after: int | None = None  # go silent (forever) after this many body chunks
    sse_style: Literal["events", "data-only"] = "events"  # Responses streams with or without `event:` lines
    done_marker: bool = False  # end Responses streams with `data: [DONE]` too
    crlf: bool = False  # end NDJSON lines with \r\n
    pad: int = 0  # characters added to each text delta (big streams at little CPU cost, for memory tests)


@dataclass
class Exchange:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    sent: bytearray = field(default_factory=bytearray)
    chunk_times: list[float] = field(default_factory=list)
    finished: bool = False
    closed_early: bool = False
    query: bytes = b""
    parameter: str = ""  # the path parameter (a response id)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.decode().lower() == name.lower():
                return value.decode()
        return None


class Sender:
    """Sends one answer, applying the behaviour's pacing and faults to its body chunks."""

    def __init__(self, send: Send, exchange: Exchange, behaviour: Behaviour):
        self.send = send
        self.exchange = exchange
        self.behaviour = behaviour
        self.chunks = 0

    async def start(self, status: int, content_type: bytes, extra: Headers | None = None) -> None:
        headers = [
            (b"content-type", content_type),
            (b"x-request-id", b"upstream-" + uuid.uuid4().hex[:8].encode()),
        ]
        await self.send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})

    async def chunk(self, data: bytes) -> None:
        behaviour = self.behaviour
        if self.chunks and behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.cut_after is not None and self.chunks >= behaviour.cut_after:
            raise ConnectionResetError("fake upstream cut the stream on purpose")
        if behaviour.stall_after is not None and self.chunks >= behaviour.stall_after:
            await asyncio.sleep(3600)
        self.chunks += 1
        self.exchange.sent += data
        self.exchange.chunk_times.append(time.monotonic())
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def json(self, status: int, payload: dict[str, Any]) -> None:
        data = orjson.dumps(payload)
        length = str(len(data)).encode()
        await self.start(status, b"application/json", [(b"content-length", length)])
        await self.chunk(data)
        await self.end()

    async def error(self, status: int, message: str) -> None:
        code = UPSTREAM_ERRORS.get(status, "api_error")
        await self.json(status, {"error": {"code": code, "message": message}, "trace_id": uuid.uuid4().hex})
