"""Everything tests share, in one place: real servers on loopback, raw HTTP, waiting for conditions, metrics,
streams and the secret scans. Test modules import from here (never from each other or from conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import openai

from tests.helpers.gateways import start_gateway, stop_gateway
from tests.helpers.ledger import admin_report, wait_for_report
from tests.helpers.media import png, wav
from tests.helpers.metrics import Samples, delta, inflight, scrape, value
from tests.helpers.raw import RawResponse, raw_exchange, read_response
from tests.helpers.redis import RedisServer
from tests.helpers.secrets import CLIENT_KEY, SECRETS, UPSTREAM_TOKEN, LeakScanner, assert_no_secrets
from tests.helpers.servers import (
    ROOT,
    START_TIMEOUT,
    CliProcess,
    GatewayProcess,
    LogReader,
    ThreadServer,
    cpu_seconds,
    listening_ports,
    listening_socket,
    refused_port,
    rss_bytes,
    run_cli,
    wait_healthy,
)
from tests.helpers.streams import sse_events
from tests.helpers.waiting import steady_value, steady_value_async, wait_for, wait_for_async

GatewayFactory = Callable[..., GatewayProcess]
SdkFactory = Callable[..., openai.OpenAI]

__all__ = [
    "CLIENT_KEY",
    "ROOT",
    "SECRETS",
    "START_TIMEOUT",
    "UPSTREAM_TOKEN",
    "CliProcess",
    "GatewayFactory",
    "GatewayProcess",
    "LeakScanner",
    "LogReader",
    "RawResponse",
    "RedisServer",
    "Samples",
    "SdkFactory",
    "ThreadServer",
    "admin_report",
    "assert_no_secrets",
    "cpu_seconds",
    "delta",
    "inflight",
    "listening_ports",
    "listening_socket",
    "png",
    "raw_exchange",
    "read_response",
    "refused_port",
    "rss_bytes",
    "run_cli",
    "scrape",
    "sse_events",
    "start_gateway",
    "steady_value",
    "steady_value_async",
    "stop_gateway",
    "value",
    "wait_for",
    "wait_for_async",
    "wait_for_report",
    "wait_healthy",
    "wav",
]  # fmt: skip
