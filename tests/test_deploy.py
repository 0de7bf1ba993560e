"""deploy/: the Grafana dashboard parses and queries only metrics the gateway exports; configs parse."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import httpx

from app.fake_upstream import FakeUpstream
from tests.servers import ROOT, GatewayProcess

DASHBOARD = ROOT / "deploy" / "grafana" / "acedata-proxy.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported_names(gateway: GatewayProcess) -> set[str]:
    text = httpx.get(gateway.url + "/metrics").text
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)) | set(re.findall(r"^([a-z_]+)[{ ]", text, re.M))


def declared(name: str, exported: set[str]) -> bool:
    return name in exported or any(name.endswith(s) and name.removesuffix(s) in exported for s in SUFFIXES)


def test_dashboard_queries_name_exported_metrics(gateway: GatewayProcess, fake: FakeUpstream):
    httpx.post(gateway.url + "/openai/responses", json={"model": "gpt-4.1", "input": "hi"})
    exported = exported_names(gateway)
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    titles = " ".join(panel["title"].lower() for panel in panels)
    topics = ["request rate", "error rate", "duration", "first byte", "by model", "by key", "in-flight"]
    topics += ["spend per key", "budget remaining"]
    for topic in topics:
        assert topic in titles, topic
    used = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bacedata_proxy_[a-z_]+", target["expr"]))
            assert names, target["expr"]
            used |= names
    missing = {name for name in used if not declared(name, exported)}
    assert not missing
    assert len(used) >= 8
    assert "acedata_proxy_budget_remaining_tokens" in used


def test_configs_parse():
    prometheus = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert "metrics_path: /metrics" in prometheus
    tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert Path(ROOT / "deploy" / "compose.yaml").read_text().count("network_mode") == 2
