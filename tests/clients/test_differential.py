"""Differential fuzzing: hypothesis writes responses, valid and broken, cut by random TCP segmentation and by the
upstream closing at a random point; the gateway's relay (with each client) must read every one of them as h11
reads the same bytes: a complete answer arrives whole with its status, an answer cut after its head never looks
complete, and bytes that are no answer at all are a 502."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import GatewayProcess
from tests.helpers.conformance import CLIENTS, Outcome, exchange
from tests.helpers.raw_upstream import RawUpstream, Request

STATUSES = (200, 201, 400, 404, 429, 500, 503)
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
VALUE = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ;=/.", max_size=20).map(lambda v: v.strip().encode())
BREAKAGES = (
    b"",  # none
    b"status",  # a status that is not three digits
    b"colon",  # a header line without a colon
    b"nul",  # a NUL in a header value
    b"length",  # a negative content-length
    b"chunk",  # a chunk size that is not hex
)
_numbers = itertools.count()
RESPONSES: dict[str, list[bytes]] = {}


@dataclass
class Generated:
    pieces: list[bytes]  # the writes, in order; the upstream closes after the last

    @property
    def raw(self) -> bytes:
        return b"".join(self.pieces)


@st.composite
def responses(draw: st.DrawFn) -> Generated:
    status = draw(st.sampled_from(STATUSES))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    body = draw(st.binary(max_size=300))
    broken = draw(st.sampled_from(BREAKAGES))
    extra = draw(st.lists(st.tuples(TOKEN, VALUE), max_size=4))
    head = [b"HTTP/1.1 %d Reason" % status if broken != b"status" else b"HTTP/1.1 2x0 Reason"]
    head.append(b"content-type: application/json")
    head += [b"x-" + name + b": " + value for name, value in extra]
    if broken == b"colon":
        head.append(b"x-no-colon")
    if broken == b"nul":
        head.append(b"x-nul: a\x00b")
    if framing == "length":
        head.append(b"content-length: -1" if broken == b"length" else b"content-length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        head.append(b"transfer-encoding: chunked")
        payload = draw(chunked(body, broken == b"chunk"))
    else:
        head.append(b"connection: close")
        payload = body
    raw = b"\r\n".join(head) + b"\r\n\r\n" + payload
    if draw(st.booleans()):  # the upstream closes early, anywhere
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=6))))
    pieces = [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)]) if raw[a:b]]
    return Generated(pieces)


@st.composite
def chunked(draw: st.DrawFn, body: bytes, broken: bool) -> bytes:
    out, rest = [], body
    while rest:
        size = draw(st.integers(1, len(rest)))
        piece, rest = rest[:size], rest[size:]
        digits = b"%x" % size
        digits = digits.upper() if draw(st.booleans()) else digits
        extension = b";ext=" + draw(TOKEN) if draw(st.booleans()) else b""
        out.append(digits + extension + b"\r\n" + piece + b"\r\n")
    if broken:
        out.insert(draw(st.integers(0, len(out))), b"zz\r\nxx\r\n")
    trailer = b"x-trailer: t\r\n" if draw(st.booleans()) else b""
    return b"".join(out) + b"0\r\n" + trailer + b"\r\n"


def h11_reading(raw: bytes) -> tuple[str, int, bytes]:
    """("complete", status, body), ("cut", status, b"") or ("invalid", 0, b"") as h11 reads `raw` then a close."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="POST", target="/", headers=[("host", "u"), ("content-length", "0")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(raw)
    connection.receive_data(b"")
    status, body = 0, b""
    try:
        while True:
            event = connection.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return "complete", status, body
            elif isinstance(event, h11.ConnectionClosed) or event is h11.NEED_DATA:
                break
    except h11.RemoteProtocolError:
        pass
    return ("cut", status, b"") if status else ("invalid", 0, b"")


def gateway_reading(outcome: Outcome) -> tuple[str, int, bytes]:
    if outcome.cut:
        return "cut", 0, b""
    if outcome.status == 502 and outcome.error_code == "upstream_unavailable":
        return "invalid", 0, b""
    return "complete", outcome.status, outcome.body


@pytest.fixture(scope="module", autouse=True)
def registered(upstream: RawUpstream) -> None:
    async def replay(request: Request, writer: asyncio.StreamWriter) -> bool:
        await request.read_body()
        # a resent request (httpx resends one the upstream closed on unanswered) finds nothing: it is closed again
        for piece in RESPONSES.pop(request.headers[b"x-request-id"].decode().split(":")[1], []):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        return False

    upstream.cases["fuzz"] = replay


@pytest.mark.parametrize("kind", CLIENTS)
@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(generated=responses())
def test_the_relay_reads_responses_as_h11_does(gateways: dict[str, GatewayProcess], kind: str, generated: Generated):
    number = str(next(_numbers))
    RESPONSES[number] = generated.pieces
    expected = h11_reading(generated.raw)
    if expected[0] == "cut":  # what h11 calls cut the gateway may refuse outright, if nothing was relayed yet
        expected = ("cut", 0, b"")
    seen = gateway_reading(exchange(gateways[kind], f"fuzz:{number}"))
    assert seen == expected, f"h11 reads {expected}, the gateway relayed {seen}, for {generated.raw!r}"
