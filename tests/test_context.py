"""DisconnectWatch in-process: what it cancels, and when (over sockets: tests/test_resilience.py)."""

from __future__ import annotations

import asyncio

from app.context import DisconnectWatch


async def hang() -> None:
    await asyncio.Event().wait()


def watch_and_reads() -> tuple[DisconnectWatch, list[str]]:
    reads: list[str] = []
    return DisconnectWatch(lambda: reads.append("resumed")), reads


async def test_a_lost_connection_cancels_the_armed_task_once():
    watch, reads = watch_and_reads()
    task = asyncio.create_task(hang())
    watch.arm(task)
    assert reads == ["resumed"]  # armed: the client's socket is read, so its close is seen
    watch.trip()
    watch.trip()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert watch.disconnected
    assert task.cancelling() == 1


async def test_a_connection_lost_before_arming_cancels_at_once():
    watch, reads = watch_and_reads()
    watch.trip()  # the client left while its body was being checked
    task = asyncio.create_task(hang())
    watch.arm(task)
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert watch.disconnected
    assert reads == []


async def test_nothing_is_cancelled_once_the_last_byte_is_handed_over():
    watch, _ = watch_and_reads()
    task = asyncio.create_task(hang())
    watch.arm(task)
    watch.finish()
    assert watch.task is None  # the connection keeps the watch until its next request, not the task
    watch.trip()
    assert not task.cancelling()
    assert not watch.disconnected
    task.cancel()
