"""Every way an upstream can frame (or misframe) a response, through the real gateway with each upstream client.

The rule a gateway client relies on: a complete body arrives whole (framing removed, nothing added); a body cut
short never looks complete (the connection ends before its length or last chunk); anything the gateway cannot
relay faithfully is a 502 upstream_unavailable envelope. Never an empty reply, never a server-side traceback.
Where the two clients read a case differently (both within the rule), the table says so per client; the same
table is in docs/upstream-client.md.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from tests.helpers import GatewayProcess, wait_for
from tests.helpers.conformance import CLIENTS, Outcome, exchange
from tests.helpers.raw_upstream import JSON_ANSWER, JSON_BODY, Handler, RawUpstream, Request

JSON = b"content-type: application/json\r\n"


def respond(*pieces: bytes, keep: bool = True, bytewise: bool = False, read_body: bool = True) -> Handler:
    """A handler writing `pieces` as separate segments (or every byte as its own), then keeping the connection
    for the next request, or closing it (`keep=False`: a close the response announces, or a cut)."""

    async def handler(request: Request, writer: asyncio.StreamWriter) -> bool:
        if read_body:
            await request.read_body()
        for piece in [bytes([b]) for b in b"".join(pieces)] if bytewise else pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        return keep

    return handler


async def endless_head(request: Request, writer: asyncio.StreamWriter) -> bool:
    await request.read_body()
    writer.write(b"HTTP/1.1 200 OK\r\nx-endless: ")
    while True:  # until the gateway gives up on it and closes
        writer.write(b"a" * 16384)
        await writer.drain()
        await asyncio.sleep(0.001)


@dataclass(frozen=True)
class Expect:
    status: int  # 0: the body was cut (the connection ended before the body did)
    body: bytes = b""
    absent: tuple[str, ...] = ()  # headers the client must not see
    present: tuple[tuple[str, str], ...] = ()


WHOLE = Expect(200, JSON_BODY)
CUT = Expect(0)
BAD = Expect(502)


def chunked(*chunks: bytes, tail: bytes = b"0\r\n\r\n") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + JSON + b"transfer-encoding: chunked\r\n\r\n" + b"".join(chunks) + tail


def length(value: bytes, body: bytes = JSON_BODY, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + JSON + b"content-length: " + value + b"\r\n" + extra + b"\r\n" + body


HALF = len(JSON_BODY) // 2
A, B = JSON_BODY[:HALF], JSON_BODY[HALF:]
SIZE_A, SIZE_B = b"%x" % len(A), b"%x" % len(B)

# case: (what the upstream does, what a client sees with http1, what it sees with httpx)
CASES: dict[str, tuple[Handler, Expect, Expect]] = {
    "plain": (respond(JSON_ANSWER), WHOLE, WHOLE),
    "chunk-extensions": (respond(chunked(SIZE_A + b";a=1;b=\"x\"\r\n" + A + b"\r\n", SIZE_B + b"\r\n" + B + b"\r\n")),
                         WHOLE, WHOLE),
    # RFC 9112 7.1.1: whitespace (BWS) may come between a chunk's size and its extension's ";"
    "chunk-extensions-after-whitespace": (
        respond(chunked(SIZE_A + b" ;a=1\r\n" + A + b"\r\n", SIZE_B + b" \t;b=2\r\n" + B + b"\r\n",
                        tail=b"0\t;end\r\n\r\n")),
        WHOLE, WHOLE,
    ),
    "trailers": (
        respond(chunked(SIZE_A + b"\r\n" + A + b"\r\n" + SIZE_B + b"\r\n" + B + b"\r\n",
                        tail=b"0\r\nx-trailer: secret\r\nx-checksum: 1\r\n\r\n")),
        Expect(200, JSON_BODY, absent=("x-trailer", "x-checksum")),
        Expect(200, JSON_BODY, absent=("x-trailer", "x-checksum")),
    ),
    "hex-case": (respond(chunked(SIZE_A.upper() + b"\r\n" + A + b"\r\n" + SIZE_B.lower() + b"\r\n" + B + b"\r\n")),
                 WHOLE, WHOLE),
    "split-writes": (respond(JSON_ANSWER[:7], JSON_ANSWER[7:40], JSON_ANSWER[40:-3], JSON_ANSWER[-3:]),
                     WHOLE, WHOLE),
    "one-byte-writes": (respond(chunked(SIZE_A + b"\r\n" + A + b"\r\n", SIZE_B + b"\r\n" + B + b"\r\n"),
                                bytewise=True), WHOLE, WHOLE),
    "short-content-length": (respond(length(b"%d" % (len(JSON_BODY) + 20)), keep=False), CUT, CUT),
    "chunked-cut": (respond(chunked(SIZE_A + b"\r\n" + A + b"\r\n", tail=b""), keep=False), CUT, CUT),
    "chunked-cut-mid-chunk": (respond(chunked(b"40\r\n" + A, tail=b""), keep=False), CUT, CUT),
    # RFC 9112 6.3: transfer-encoding wins and the length must not be forwarded; llhttp refuses the pair (as nginx)
    "content-length-and-chunked": (
        respond(b"HTTP/1.1 200 OK\r\n" + JSON + b"content-length: 999\r\ntransfer-encoding: chunked\r\n\r\n"
                + SIZE_A + b"\r\n" + A + b"\r\n" + SIZE_B + b"\r\n" + B + b"\r\n0\r\n\r\n"),
        BAD, Expect(200, JSON_BODY, absent=("content-length",)),
    ),
    "duplicate-content-length-same": (respond(length(b"%d" % len(JSON_BODY), extra=b"content-length: %d\r\n"
                                                     % len(JSON_BODY))), BAD, WHOLE),
    "duplicate-content-length-different": (respond(length(b"%d" % len(JSON_BODY), extra=b"content-length: 3\r\n")),
                                           BAD, BAD),
    "negative-content-length": (respond(length(b"-5")), BAD, BAD),
    "garbage-content-length": (respond(length(b"12abc")), BAD, BAD),
    "close-delimited": (respond(b"HTTP/1.1 200 OK\r\n" + JSON + b"connection: close\r\n\r\n" + A, B, keep=False),
                        WHOLE, WHOLE),
    "http-1.0-body": (respond(b"HTTP/1.0 200 OK\r\n" + JSON + b"\r\n" + A, B, keep=False), WHOLE, WHOLE),
    "informational-first": (respond(b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nlink: </s>\r\n\r\n",
                                    JSON_ANSWER), Expect(200, JSON_BODY, absent=("link",)),
                            Expect(200, JSON_BODY, absent=("link",))),
    "switching-protocols": (respond(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                                    b"connection: upgrade\r\n\r\nnot http"), BAD, BAD),
    "no-content-with-length": (respond(b"HTTP/1.1 204 No Content\r\ncontent-length: 35\r\n\r\n"),
                               Expect(204, absent=("content-length",)), Expect(204, absent=("content-length",))),
    "no-content": (respond(b"HTTP/1.1 204 No Content\r\n\r\n"), Expect(204), Expect(204)),
    "no-content-with-a-body": (respond(b"HTTP/1.1 204 No Content\r\n\r\n" + JSON_BODY),
                               Expect(204), Expect(204)),
    "not-modified-with-length": (respond(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 35\r\n\r\n"),
                                 Expect(304, absent=("content-length",)), Expect(304, absent=("content-length",))),
    "huge-head": (respond(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (1024 * 1024) + b"\r\ncontent-length: 0\r\n\r\n"),
                  BAD, BAD),
    "endless-head": (endless_head, BAD, BAD),
    "obs-fold": (respond(length(b"%d" % len(JSON_BODY), extra=b"x-folded: a\r\n b\r\n")),
                 BAD, Expect(200, JSON_BODY, present=(("x-folded", "a b"),))),
    "bare-lf": (respond(JSON_ANSWER.replace(b"\r\n", b"\n")), BAD, WHOLE),
    "nul-in-header": (respond(length(b"%d" % len(JSON_BODY), extra=b"x-bad: a\x00b\r\n")), BAD, BAD),
    "control-character-in-header": (respond(length(b"%d" % len(JSON_BODY), extra=b"x-bad: a\x01b\r\n")), BAD, BAD),
    "status-600": (respond(JSON_ANSWER.replace(b"200 OK", b"600 Odd")), BAD, BAD),
    "status-999": (respond(JSON_ANSWER.replace(b"200 OK", b"999 Odd")), BAD, BAD),
    "status-099": (respond(JSON_ANSWER.replace(b"200 OK", b"099 Odd")), BAD, BAD),
    "status-not-a-number": (respond(JSON_ANSWER.replace(b"200 OK", b"2x0 Odd")), BAD, BAD),
    "not-http": (respond(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), BAD, BAD),
    "nothing": (respond(keep=False), BAD, BAD),
}  # fmt: skip


# Documented in docs/upstream-client.md: what httpx (httpcore + h11) cannot do, and so the gateway with it cannot.
AFTER_RESPONSE = (
    "httpx limit: h11 keeps bytes that follow a complete response and reads them as the answer to the next "
    "request on that connection"
)
EARLY_ANSWER = (
    "httpx limit: httpcore writes the whole request body before it reads the response, so an answer sent before "
    "the body was read waits behind the write timeout (504)"
)


def httpx_limit(reason: str) -> list[object]:
    return ["http1", pytest.param("httpx", marks=pytest.mark.xfail(strict=True, reason=reason))]


HTTPX_LIMITS = {"no-content-with-a-body": AFTER_RESPONSE}
CASE_PARAMS = [
    pytest.param(case, kind, marks=[pytest.mark.xfail(strict=True, reason=HTTPX_LIMITS[case])])
    if kind == "httpx" and case in HTTPX_LIMITS
    else pytest.param(case, kind)
    for case in CASES
    for kind in CLIENTS
]


@pytest.fixture(scope="module", autouse=True)
def registered(upstream: RawUpstream) -> None:
    upstream.cases.update({name: handler for name, (handler, _, _) in CASES.items()})


@pytest.fixture(scope="module")
def log_marks(gateways: dict[str, GatewayProcess]) -> dict[str, int]:
    return {kind: len(gateway.log()) for kind, gateway in gateways.items()}


def check(outcome: Outcome, expect: Expect) -> None:
    if expect.status == 0:
        assert outcome.cut, f"a cut body looked complete: {outcome}"
        return
    assert not outcome.cut, "the gateway cut a body it should have answered whole or refused"
    assert outcome.status == expect.status, outcome
    if expect.status == 502:
        assert outcome.error_code == "upstream_unavailable", outcome.body
        return
    assert outcome.body == expect.body
    for name in expect.absent:
        assert outcome.header(name) is None, f"{name} reached the client"
    for name, value in expect.present:
        assert outcome.header(name) == value


@pytest.mark.parametrize(("case", "kind"), CASE_PARAMS)
def test_case(gateways: dict[str, GatewayProcess], log_marks: dict[str, int], kind: str, case: str):
    gateway = gateways[kind]
    _, on_http1, on_httpx = CASES[case]
    expect = on_http1 if kind == "http1" else on_httpx
    check(exchange(gateway, case), expect)
    # the connection the case used, whatever became of it, does not spoil the next request
    check(exchange(gateway, "plain"), WHOLE)
    if expect.status != 0:  # a cut JSON body ends in the exception that aborts the client's connection
        assert "Traceback" not in gateway.log()[log_marks[kind] :]
    log_marks[kind] = len(gateway.log())


@pytest.mark.parametrize("kind", httpx_limit(AFTER_RESPONSE))
def test_bytes_after_a_response_end_the_connection(gateways: dict[str, GatewayProcess], upstream: RawUpstream, kind):
    """The extra bytes look like a second response; they must never reach the next client. They come in the
    answer's own segment, or in one of their own once the answer went (written before the next request: later
    than that, nothing on the wire tells them from that request's answer, for any client)."""
    rogue = b"HTTP/1.1 500 Rogue\r\ncontent-length: 5\r\n\r\nrogue"
    written = threading.Event()
    later = respond(JSON_ANSWER, rogue)

    async def rogue_later(request: Request, writer: asyncio.StreamWriter) -> bool:
        keep = await later(request, writer)
        written.set()
        return keep

    upstream.cases["trailing-bytes"] = respond(JSON_ANSWER + rogue)
    upstream.cases["trailing-bytes-later"] = rogue_later
    for case in ("trailing-bytes", "trailing-bytes-later"):
        check(exchange(gateways[kind], case), WHOLE)
        if case == "trailing-bytes-later":
            wait_for(written.is_set, what="the rogue bytes written")  # in the gateway's socket buffer by now
        for _ in range(3):
            check(exchange(gateways[kind], "plain"), WHOLE)


@pytest.mark.parametrize("kind", httpx_limit(EARLY_ANSWER))
def test_an_early_answer_before_the_body_is_read(gateways: dict[str, GatewayProcess], upstream: RawUpstream, kind):
    """413 before reading an 8 MB body, on a connection it keeps open: the answer is relayed, and the next
    request does not meet the rest of the body."""

    async def early(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\n" + JSON + b"content-length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(30)  # never reads the body, never closes: the gateway must let go
        return False

    upstream.cases["early-answer"] = early
    big = b'{"model":"gpt-4.1","input":"' + b"x" * (8 * 1024 * 1024) + b'"}'
    check(exchange(gateways[kind], "early-answer", big), Expect(413, b"{}"))
    check(exchange(gateways[kind], "plain"), WHOLE)
