"""Waiting for a condition instead of sleeping for a guess: the one way tests wait for something to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

INTERVAL = 0.01  # how often a condition is checked: short, so a met condition ends the wait at once


class Wait:
    """One wait for `condition()`, checked by the sync and async waits alike; fails the test after `timeout`."""

    def __init__(self, condition: Callable[[], object], timeout: float, what: str):
        self.condition, self.timeout, self.what = condition, timeout, what
        self.started = time.monotonic()

    def met(self) -> bool:
        if self.condition():
            return True
        if time.monotonic() - self.started > self.timeout:
            raise AssertionError(f"{self.what} not met within {self.timeout} s")
        return False

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> float:
    """Seconds until `condition()` is true; fails the test after `timeout` seconds."""
    wait = Wait(condition, timeout, what)
    while not wait.met():
        time.sleep(INTERVAL)
    return wait.elapsed()


async def wait_for_async(
    condition: Callable[[], object],
    timeout: float = 5.0,  # noqa: ASYNC109 - the same signature as wait_for
    what: str = "condition",
) -> float:
    """wait_for on an event loop: the loop goes on running (servers of the test included) while it waits."""
    wait = Wait(condition, timeout, what)
    while not wait.met():  # noqa: ASYNC110 - a condition of plain values, which no event signals
        await asyncio.sleep(INTERVAL)
    return wait.elapsed()


class Steady:
    """True once `read()` has kept one value for `quiet` seconds: for proving that something stopped (memory,
    bytes sent), where no event says so."""

    def __init__(self, read: Callable[[], int], quiet: float):
        self.read, self.quiet = read, quiet
        self.last, self.since = read(), time.monotonic()

    def __call__(self) -> bool:
        now = self.read()
        if now != self.last:
            self.last, self.since = now, time.monotonic()
        return time.monotonic() - self.since >= self.quiet


def steady_value(read: Callable[[], int], quiet: float = 0.5, timeout: float = 15.0) -> int:
    """The value of `read()` once it has stopped changing for `quiet` seconds."""
    steady = Steady(read, quiet)
    wait_for(steady, timeout, "a steady value")
    return steady.last


async def steady_value_async(read: Callable[[], int], quiet: float = 0.5, timeout: float = 15.0) -> int:  # noqa: ASYNC109
    """steady_value on an event loop, which goes on running while it waits."""
    steady = Steady(read, quiet)
    await wait_for_async(steady, timeout, "a steady value")
    return steady.last
