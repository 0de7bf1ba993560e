"""Starting and stopping gateway processes for tests: each is scanned for secrets (its /metrics and its whole
log) when it stops."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

from tests.helpers.secrets import assert_no_secrets
from tests.helpers.servers import GatewayProcess


def start_gateway(workdir: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> GatewayProcess:
    gateway = GatewayProcess(env, workdir, args)
    try:
        return gateway.wait_ready()
    except BaseException:
        gateway.stop()  # a start that failed or timed out must not leave the process behind
        raise


def stop_gateway(gateway: GatewayProcess) -> None:
    metrics = ""
    if gateway.proc.poll() is None:
        with contextlib.suppress(httpx.TransportError):  # a gateway a test is stopping: nothing to scrape
            metrics = httpx.get(gateway.url + "/metrics", timeout=5).text
    gateway.stop()
    assert_no_secrets(metrics, f"the metrics of {gateway.url}")
    assert_no_secrets(gateway.log(), f"the gateway log {gateway.log_path}")
