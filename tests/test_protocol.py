"""HeldWriteTransport: a response's head leaves with the first body write, in one system call; a stream's later
writes leave at once, with no callback scheduled for each."""

from __future__ import annotations

import asyncio
from typing import Any

from app.protocol import HeldWriteTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False


def held(loop: asyncio.AbstractEventLoop) -> tuple[HeldWriteTransport, RecordingTransport]:
    real = RecordingTransport()
    return HeldWriteTransport(real, loop), real  # type: ignore[arg-type]


async def test_head_and_first_body_write_leave_together_later_writes_at_once():
    transport, real = held(asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == []
    transport.write(b"event one")
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nevent one"]
    transport.write(b"event two")
    assert real.writes[-1] == b"event two", "a stream's later write must not wait for the end of the iteration"


async def test_a_lone_head_leaves_at_the_end_of_the_iteration():
    transport, real = held(asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    transport.write(b"first event")
    assert real.writes[-1] == b"first event"


async def test_the_next_response_is_held_again_once_rearmed():
    transport, real = held(asyncio.get_running_loop())
    for response in (b"one", b"two"):
        transport.armed = True  # what the protocol does when a request begins
        transport.write(b"head " + response)
        transport.write(b" body")
        assert real.writes[-1] == b"head " + response + b" body"
    assert len(real.writes) == 2


def test_writes_larger_than_a_head_are_never_held():
    loop: Any = asyncio.new_event_loop()
    try:
        transport, real = held(loop)
        transport.write(b"x" * (64 * 1024))
        assert len(real.writes) == 1
    finally:
        loop.close()
