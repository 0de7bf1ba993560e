"""GET /admin over real sockets: the page without a key holds no figure, admin keys only, its figures agree with
the ledger (/admin/usage) and with /metrics, with one worker and with two; its own assets, no CDN. And the parts
in-process: percentiles as Prometheus computes them, the live window, escaping."""

from __future__ import annotations

import math
import re
from pathlib import Path

import httpx
import pytest

from app.access import keys
from app.context import RequestInfo
from app.dashboard.charts import stacked_bars
from app.dashboard.live import LiveView, quantile
from app.dashboard.spend import Series
from app.fakes.upstream import FakeUpstream
from app.ledger.report import Spend
from app.metrics import Metrics
from tests.helpers import ROOT, GatewayFactory, GatewayProcess, Samples, scrape, wait_for

PRICES = ROOT / "deploy" / "prices.example.toml"
TRAFFIC = [("dev", "gpt-4.1"), ("dev", "gpt-4o"), ("ops", "gpt-4.1"), ("ops", "gpt-5.5")]  # gpt-5.5: unpriced


def team(path: Path) -> dict[str, str]:
    return {
        "lead": keys.create(path, "lead", admin=True),
        "dev": keys.create(path, "dev", budget_amount=2.5, budget_period="day"),
        "ops": keys.create(path, "ops", rpm=600, budget_tokens=100_000),
    }


def send_traffic(gateway: GatewayProcess, secrets: dict[str, str]) -> None:
    for name, model in TRAFFIC:
        response = httpx.post(gateway.url + "/openai/responses", json={"model": model, "input": "count to three"},
                              headers={"authorization": f"Bearer {secrets[name]}"}, timeout=30)  # fmt: skip
        assert response.status_code == 200, response.text


def admin_get(gateway: GatewayProcess, path: str, key: str | None, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.get(gateway.url + path, params=params, headers=headers, timeout=30)


def wait_for_ledger(gateway: GatewayProcess, lead: str, requests: int) -> None:
    def recorded() -> bool:
        return bool(admin_get(gateway, "/admin/usage", lead).json()["total"]["requests"] >= requests)

    wait_for(recorded, timeout=10, what=f"{requests} requests in the ledger")


def values(html: str, row: str) -> list[str]:
    """The data-value of every cell in the row marked `row` (data-route="..." or data-key="...")."""
    match = re.search(rf"<tr {row}>(.*?)</tr>", html)
    assert match is not None, f"no row {row}"
    return re.findall(r'data-value="([^"]*)"', match.group(1))


def route_total(samples: Samples, route: str) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "acedata_proxy_requests_total" and ("route", route) in labels)  # fmt: skip


def duration_buckets(samples: Samples, route: str) -> dict[float, float]:
    buckets: dict[float, float] = {}
    for (name, labels), count in samples.items():
        if name == "acedata_proxy_request_duration_seconds_bucket" and ("route", route) in labels:
            bound = float(dict(labels)["le"])
            buckets[bound] = buckets.get(bound, 0.0) + count
    return buckets


def test_the_page_without_a_key_has_the_form_and_no_figure(make_gateway: GatewayFactory, tmp_path: Path):
    path = tmp_path / "keys.toml"
    secrets = team(path)
    gateway = make_gateway(PROXY_KEYS_FILE=str(path), PROXY_PRICES_FILE=str(PRICES))
    send_traffic(gateway, secrets)
    for address in ("/admin", "/admin/"):
        shell = admin_get(gateway, address, None)
        assert shell.status_code == 200
        assert shell.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in shell.headers["content-security-policy"]
        assert shell.headers["cache-control"] == "no-store"
        assert 'id="login"' in shell.text
        assert "<noscript>" in shell.text
        assert "data-key=" not in shell.text
        assert "data-route=" not in shell.text
        assert "http://" not in shell.text.replace("http://HOST/admin", "")  # nothing from elsewhere
    for name, kind in [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")]:
        asset = admin_get(gateway, f"/admin/assets/{name}", None)
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert "http" not in asset.text  # no CDN, no fonts, nothing fetched from elsewhere
    assert admin_get(gateway, "/admin/assets/../../keys.toml", None).status_code == 404

    assert admin_get(gateway, "/admin", "sk-unknown").json()["error"]["code"] == "invalid_api_key"
    denied = admin_get(gateway, "/admin", secrets["dev"])
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "admin_required"
    assert "data-key=" not in denied.text


def test_figures_agree_with_the_ledger_and_metrics(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    secrets = team(path)
    gateway = make_gateway(PROXY_KEYS_FILE=str(path), PROXY_PRICES_FILE=str(PRICES))
    send_traffic(gateway, secrets)
    wait_for_ledger(gateway, secrets["lead"], len(TRAFFIC))
    page = admin_get(gateway, "/admin", secrets["lead"])
    assert page.status_code == 200
    by_key = {row["key"]: row for row in admin_get(gateway, "/admin/usage", secrets["lead"], by="key").json()["rows"]}

    tokens, cost = values(page.text, 'data-key="dev"')
    assert int(tokens) == by_key["dev"]["total_tokens"]
    assert float(cost) == pytest.approx(by_key["dev"]["cost"])
    assert "/ 2.50 USD" in page.text  # the money budget's bar
    assert values(page.text, 'data-key="ops"')[0] == str(by_key["ops"]["total_tokens"])
    assert by_key["ops"]["unpriced_requests"] == 1
    assert "(+1 unpriced)" in page.text  # gpt-5.5 has no price: shown as such, not as 0

    samples = scrape(gateway, secrets["lead"])  # an admin key: /metrics names keys
    rate, errors, p50, p99, *_, inflight, requests = values(page.text, 'data-route="openai.responses"')
    assert int(requests) == route_total(samples, "openai.responses") == len(TRAFFIC)
    assert float(errors) == 0
    assert inflight == "0"
    assert float(rate) > 0
    buckets = duration_buckets(samples, "openai.responses")
    upper = min(bound for bound, count in buckets.items() if count >= 0.5 * len(TRAFFIC))
    lower = max((bound for bound in buckets if bound < upper), default=0.0)
    assert lower <= float(p50) <= upper  # within the bucket that holds the median, as histogram_quantile puts it
    assert float(p50) <= float(p99)
    assert "/v1/" not in page.text
    assert "acedata.cloud" not in page.text


def test_two_workers_show_the_merged_figures(make_gateway: GatewayFactory, tmp_path: Path):
    path = tmp_path / "keys.toml"
    secrets = team(path)
    env = {"PROXY_KEYS_FILE": str(path), "PROXY_PRICES_FILE": str(PRICES), "PROXY_REDIS_URL": ""}
    keys.save(path, [entry for entry in keys.load(path) if entry.name == "lead"])  # no limits: no Redis needed
    gateway = make_gateway("--workers", "2", **env)
    for _ in range(3):
        send_traffic(gateway, {"dev": secrets["lead"], "ops": secrets["lead"]})
    wait_for_ledger(gateway, secrets["lead"], 3 * len(TRAFFIC))
    for _ in range(4):  # whichever worker answers, the same totals
        page = admin_get(gateway, "/admin", secrets["lead"]).text
        assert int(values(page, 'data-route="openai.responses"')[-1]) == 3 * len(TRAFFIC)


def test_quantiles_follow_prometheus():
    buckets = {0.1: 2.0, 0.5: 6.0, 1.0: 10.0, math.inf: 10.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * 3 / 4)
    assert quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 3.9 / 4)
    assert quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert quantile(0.99, {0.1: 1.0, math.inf: 5.0}) == 0.1  # in +Inf: the highest finite bound


def test_the_live_window_anchors_on_the_newest_sample_at_least_its_length_old():
    metrics = Metrics()
    view = LiveView(started=1000.0)
    info = RequestInfo("r", route="openai.responses")
    for at in (1010.0, 1200.0, 1400.0):
        metrics.record(info, 200, 0.01)
        window, rows = view.look(metrics.source(), now=at)
    assert window == pytest.approx(390.0)  # anchored on the 1010 s sample (1 request then)
    assert rows[0].requests == 3
    assert rows[0].rate == pytest.approx(2 / 390)
    window, rows = view.look(metrics.source(), now=1600.0)
    assert window == pytest.approx(400.0)  # anchored on the 1200 s sample now
    assert rows[0].rate == pytest.approx(1 / 400)
    assert rows[0].error_rate == 0.0
    assert rows[0].ttfb == (None, None)


def test_chart_text_is_escaped():
    series = Series(["2026-12-01", "2026-12-02"])
    spend = Spend()
    spend.add(1.5, 1)
    series.values['<script>alert("x")</script>'] = [Spend(), spend]
    svg = stacked_bars(series, "USD", "by key")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert svg.count("<rect") == 1
