"""The conformance suite's fixtures: a raw upstream, and one real gateway per upstream client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import GatewayProcess
from tests.helpers.conformance import start_gateways, stop_gateways
from tests.helpers.raw_upstream import RawUpstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[RawUpstream]:
    server = RawUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateways(tmp_path_factory: pytest.TempPathFactory, upstream: RawUpstream) -> Iterator[dict[str, GatewayProcess]]:
    # a fixed mmap threshold: glibc's adapts upwards after large frees and then keeps freed 8 MB bodies in the
    # heap, which would hide from RSS whether the gateway let go of them
    running = start_gateways(
        tmp_path_factory.mktemp("conformance"),
        upstream.url,
        PROXY_FIRST_BYTE_TIMEOUT="2",
        PROXY_READ_TIMEOUT="2",
        MALLOC_MMAP_THRESHOLD_="1048576",
    )
    yield running
    stop_gateways(running)
