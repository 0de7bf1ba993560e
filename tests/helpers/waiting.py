"""Waiting for a condition instead of sleeping for a guess: the one way tests wait for something to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

INTERVAL = 0.01  # how often the condition is checked: short, so a met condition ends the wait at once


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> float:
    """Seconds until `condition()` is true; fails the test after `timeout` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(INTERVAL)
    return time.monotonic() - started


async def wait_for_async(
    condition: Callable[[], object],
    timeout: float = 5.0,  # noqa: ASYNC109 - the same signature as wait_for
    what: str = "condition",
) -> float:
    """wait_for on an event loop: the loop goes on running (servers of the test included) while it waits."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(INTERVAL)
    return time.monotonic() - started


def settled(read: Callable[[], int], quiet: float = 0.5, timeout: float = 15.0) -> int:
    """The value of `read()` once it has stopped changing for `quiet` seconds (memory, bytes sent): for proving
    that something stopped, where no event says so."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "never settled"
        time.sleep(INTERVAL * 5)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last
