"""The worker's garbage collector, set once the app has started: what start-up built stays out of every later
collection, and young collections come seldom.

Under load a full collection walked every object the imports and the app's construction had made, with the event
loop stopped, so every request in flight waited it out: most of the tail the p99 had over the p50 (the figures:
docs/performance-steps.md, "Under LLM-shaped load"). `gc.freeze()` moves those objects to a generation no
collection visits. Young collections (frequent at CPython's default threshold of 700) all but stop at 10,000: a
request's objects are freed by reference counting, so the net count of allocations grows slowly, and cycles (an
exception's traceback) are still collected.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # net allocations between young collections (CPython's default: 700)


def tune_for_serving() -> None:
    """Called in each worker once its app has started, never at import time."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
