"""The team stack, deploy/compose/team/compose.yaml, under podman-compose: two replicas behind nginx, Redis,
Prometheus scraping each replica. Shows a key's RPM exact across the two replicas, a stream passing nginx unbuffered,
and the Grafana dashboard's queries answered by the stack's Prometheus (Grafana itself is not in Debian)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from app.access import keys
from deploy.verify.common import (
    DELAY,
    DELTAS,
    IMAGE,
    PREFIX,
    ROOT,
    TOKEN,
    check,
    free_ports,
    status,
    stream_through_sdk,
    wait_for,
)
from deploy.verify.image import start_fake_upstream

COMPOSE = ROOT / "deploy" / "compose" / "team" / "compose.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "acedata-proxy.json"
SERVICES = ["redis", "gateway-1", "gateway-2", "nginx", "prometheus"]
RPM = 12


def compose(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # podman-compose from PyPI (.venv): Debian's 1.0.3 adds a bridge network to host-network services
    command = [str(Path(sys.executable).parent / "podman-compose"), "-p", f"{PREFIX}-team", "-f", str(COMPOSE), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def rate_limit_is_exact(entrance: str, exporters: list[str], key: str) -> None:
    """2 x RPM requests at once through nginx: exactly RPM admitted across both replicas, the rest 429."""
    before = [_served(exporter) for exporter in exporters]
    body = {"model": "gpt-4.1", "input": "hi"}
    headers = {"authorization": f"Bearer {key}"}

    def send(_: int) -> int:
        return httpx.post(entrance + "/openai/responses", json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(2 * RPM)))
    admitted, limited = statuses.count(200), statuses.count(429)
    check(admitted == RPM and limited == RPM, f"rpm {RPM} exact across replicas: {admitted} admitted, {limited} 429")
    served = [_served(exporter) - earlier for exporter, earlier in zip(exporters, before, strict=True)]
    check(all(served) and sum(served) == 2 * RPM, f"nginx spread the requests: {served} per replica")


def _served(exporter: str) -> int:
    """Requests a replica served, read from its metrics listener (PROXY_METRICS_PORT)."""
    text = httpx.get(exporter + "/metrics", timeout=5).text
    pattern = r'^acedata_proxy_requests_total\{[^}]*route="openai.responses"[^}]*\} (\S+)'
    return int(sum(float(value) for value in re.findall(pattern, text, re.MULTILINE)))


def prometheus_checks(prometheus: str) -> None:
    def both_up() -> bool:
        targets = httpx.get(prometheus + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return len(targets) == 2 and all(target["health"] == "up" for target in targets)

    check(wait_for(both_up, 30), "Prometheus scrapes both replicas (2 targets up)")

    def query(expr: str) -> list[dict[str, object]]:
        answer = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10).json()
        if answer["status"] != "success":
            raise ValueError(answer.get("error", answer))
        return list(answer["data"]["result"])

    def limited_total() -> bool:
        result = query("sum(acedata_proxy_rate_limited_total)")
        return bool(result) and float(result[0]["value"][1]) == RPM  # type: ignore[index]

    check(wait_for(limited_total, 30), f"Prometheus sums the 429s of both replicas: {RPM}")
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    broken = []
    for expr in exprs:
        try:
            query(expr.replace("$__rate_interval", "1m").replace("$route", ".*"))
        except ValueError as exc:
            broken.append(f"{expr}: {exc}")
    check(not broken, f"the Grafana dashboard's {len(exprs)} queries run on this Prometheus", "; ".join(broken))
    print(
        "  note  Grafana not run: it is not packaged in Debian (`apt-cache policy grafana`: no candidate) and no"
        " registry is reachable here; compose.yaml's grafana service uses the grafana/grafana-oss image",
        flush=True,
    )


def team_checks(work: Path) -> None:
    fake, entrance, gateway_1, gateway_2, redis, prometheus, metrics_1, metrics_2 = free_ports(8)
    start_fake_upstream(fake, "team-fake")
    (work / "team-keys").mkdir()
    key_file = work / "team-keys" / "keys.toml"
    key = keys.create(key_file, "team")
    limited = keys.create(key_file, "limited", rpm=RPM)
    key_file.chmod(0o644)  # readable by the replicas' uid 10001
    env = {
        **os.environ,
        "ACEDATA_PROXY_IMAGE": IMAGE,
        **{name: os.environ[name] for name in ("REDIS_IMAGE", "NGINX_IMAGE", "PROMETHEUS_IMAGE")},
        "ACEDATACLOUD_API_TOKEN": TOKEN,
        "ACEDATACLOUD_API_BASE_URL": f"http://127.0.0.1:{fake}",
        "KEYS_DIR": str(key_file.parent),
        "LISTEN": f"127.0.0.1:{entrance}",
        "GATEWAY_1_PORT": str(gateway_1),
        "GATEWAY_2_PORT": str(gateway_2),
        "GATEWAY_1_METRICS_PORT": str(metrics_1),
        "GATEWAY_2_METRICS_PORT": str(metrics_2),
        "REDIS_PORT": str(redis),
        "PROMETHEUS_PORT": str(prometheus),
        "SCRAPE_INTERVAL": "1s",
    }
    up = compose(env, "up", "-d", *SERVICES)
    if not check(up.returncode == 0, f"podman-compose up -d {' '.join(SERVICES)}", up.stderr[-2000:]):
        return
    try:
        _stack_checks(
            f"http://127.0.0.1:{entrance}",
            [f"http://127.0.0.1:{gateway_1}", f"http://127.0.0.1:{gateway_2}"],
            [f"http://127.0.0.1:{metrics_1}", f"http://127.0.0.1:{metrics_2}"],
            f"http://127.0.0.1:{prometheus}",
            key,
            limited,
        )
    finally:
        compose(env, "down", "-v", "-t", "40")  # -v: the Prometheus volume too


def _stack_checks(
    entrance: str, replicas: list[str], exporters: list[str], prometheus: str, key: str, limited: str
) -> None:
    up = wait_for(lambda: all(status(replica + "/readyz") == 200 for replica in replicas), 60)
    check(up, "both replicas ready (/readyz 200: upstream and Redis usable)")
    check(wait_for(lambda: status(entrance + "/healthz") == 200, 30), "nginx answers /healthz from a replica")
    deltas, first, total = stream_through_sdk(entrance + "/openai", key)
    unbuffered = deltas == DELTAS and first < total - DELAY * (DELTAS - 5)
    check(unbuffered, f"a stream through nginx arrives piece by piece: first delta at {first:.2f} s of {total:.2f} s")
    rate_limit_is_exact(entrance, exporters, limited)
    prometheus_checks(prometheus)
