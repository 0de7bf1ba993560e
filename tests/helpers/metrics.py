"""Reading a gateway's /metrics as samples, and the values and differences tests assert on."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(gateway: object, key: str | None = None) -> Samples:
    """Every sample of `gateway`'s /metrics (anything with a `url`: a GatewayProcess); `key`: an admin key, which
    a gateway with a keys file asks for."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(gateway.url + "/metrics", headers=headers)  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def inflight(gateway: object, route: str) -> float:
    return value(scrape(gateway), "acedata_proxy_inflight_requests", route=route)
