"""The worker's collector settings (app/serving/heap.py): applied by the worker's app factory, not by create_app."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.serving import heap
from app.serving.server import worker_app
from tests.helpers import UPSTREAM_TOKEN


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_the_worker_factory_freezes_start_up_and_raises_the_young_threshold(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ACEDATACLOUD_API_TOKEN", UPSTREAM_TOKEN)
    gc.unfreeze()
    app = worker_app()
    assert callable(app)
    assert gc.get_freeze_count() > 10_000, "start-up's objects should be out of the collector's reach"
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD


@pytest.mark.usefixtures("restored_gc")
def test_collections_still_find_cycles_after_settling():
    heap.tune_for_serving()

    class Node:
        other: object

    first, second = Node(), Node()
    first.other, second.other = second, first
    del first, second
    assert gc.collect() >= 2
