"""The dashboard in a real browser (Debian's chromium, through Selenium and chromedriver) against a gateway with
traffic: the key is asked for once and sent as a header, the figures match the ledger and /metrics, the page
refreshes itself, fits a phone's width, and without JavaScript says why it shows no figures.

DASHBOARD_SCREENSHOT=docs/dashboard.png saves the screenshot the docs show."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from app.access import keys
from app.money import shown
from tests.helpers import ROOT, GatewayProcess, scrape, start_gateway, stop_gateway, wait_for
from tests.helpers.browser import chromium

PRICES = ROOT / "deploy" / "prices.example.toml"
TRAFFIC = [("dev", "gpt-4.1"), ("dev", "gpt-4o"), ("dev", "gpt-4.1-mini"), ("ops", "gpt-4.1"), ("ops", "gpt-5.5"),
           ("lead", "text-embedding-3-small")]  # fmt: skip


@pytest.fixture(scope="module")
def team_gateway(
    tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]
) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("dashboard")
    path = workdir / "keys.toml"
    secrets = {
        "lead": keys.create(path, "lead", admin=True),
        "dev": keys.create(path, "dev", budget_amount=0.01, budget_period="day", tpm=100_000),
        "ops": keys.create(path, "ops", rpm=600, budget_tokens=2_000, models=["gpt-4.1", "gpt-5.5"]),
    }
    env = {**gateway_env, "PROXY_KEYS_FILE": str(path), "PROXY_PRICES_FILE": str(PRICES)}
    gateway = start_gateway(workdir, env)
    yield gateway, secrets
    stop_gateway(gateway)


def send(gateway: GatewayProcess, secrets: dict[str, str], traffic: list[tuple[str, str]]) -> None:
    for name, model in traffic:
        body: dict[str, object] = {"model": model, "input": "count to three"}
        route = "/openai/responses"
        if model.startswith("text-embedding"):
            route, body = "/openai/embeddings", {"model": model, "input": ["count to three"]}
        headers = {"authorization": f"Bearer {secrets[name]}"}
        response = httpx.post(gateway.url + route, json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text


def usage(gateway: GatewayProcess, lead: str, by: str) -> dict[str, dict[str, Any]]:
    report = httpx.get(gateway.url + "/admin/usage", params={"by": by},
                       headers={"authorization": f"Bearer {lead}"}, timeout=30).json()  # fmt: skip
    return {row[by]: row for row in report["rows"]}


def recorded(gateway: GatewayProcess, lead: str, requests: int) -> None:
    def done() -> bool:
        return sum(int(row["requests"]) for row in usage(gateway, lead, "key").values()) >= requests

    wait_for(done, timeout=10, what=f"{requests} requests in the ledger")


def cells(driver: WebDriver, row: str) -> list[str]:
    return [
        cell.get_attribute("data-value") or ""
        for cell in driver.find_elements(By.CSS_SELECTOR, f"tr[{row}] td[data-value]")
    ]


def sign_in(driver: WebDriver, gateway: GatewayProcess, key: str) -> None:
    driver.get(gateway.url + "/admin")
    wait_for(lambda: driver.find_element(By.ID, "login").is_displayed(), timeout=10, what="the key form")
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()


def loads(driver: WebDriver) -> int:
    return int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-loads") or 0)


def test_the_dashboard_in_chromium_matches_the_ledger_and_metrics(team_gateway, tmp_path: Path):
    gateway, secrets = team_gateway
    send(gateway, secrets, TRAFFIC)
    recorded(gateway, secrets["lead"], len(TRAFFIC))
    with chromium(tmp_path / "profile", height=1700) as driver:
        sign_in(driver, gateway, "sk-wrong")
        wait_for(lambda: "Invalid client key" in driver.find_element(By.ID, "status").text, timeout=10, what="refusal")
        driver.find_element(By.ID, "key").send_keys(secrets["lead"])
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_for(lambda: loads(driver) >= 1, timeout=10, what="the figures")
        assert not driver.find_element(By.ID, "login").is_displayed()
        assert driver.get_cookies() == []  # the key travels as a header only
        screenshot = os.environ.get("DASHBOARD_SCREENSHOT")
        assert driver.save_screenshot(screenshot or str(tmp_path / "dashboard.png"))

        by_key = usage(gateway, secrets["lead"], "key")
        for name in ("dev", "ops", "lead"):
            tokens, cost = cells(driver, f'data-key="{name}"')
            assert int(tokens) == by_key[name]["total_tokens"]
            assert float(cost) == pytest.approx(by_key[name]["cost"])
        assert "(+1 unpriced)" in driver.find_element(By.CSS_SELECTOR, 'tr[data-key="ops"]').text
        meter = driver.find_element(By.CSS_SELECTOR, 'tr[data-key="dev"] meter')
        assert float(meter.get_attribute("max") or "nan") == 0.01
        assert float(meter.get_attribute("value") or "nan") == pytest.approx(by_key["dev"]["cost"])

        samples = scrape(gateway, secrets["lead"])  # an admin key: /metrics names keys
        for route in ("openai.responses", "openai.embeddings"):
            total = sum(v for (name, labels), v in samples.items()
                        if name == "acedata_proxy_requests_total" and ("route", route) in labels)  # fmt: skip
            assert float(cells(driver, f'data-route="{route}"')[-1]) == total
        driver.find_element(By.CSS_SELECTOR, "#spend-by-model summary").click()
        by_model = usage(gateway, secrets["lead"], "model")
        table = driver.find_element(By.CSS_SELECTOR, "#spend-by-model table").text
        assert f"gpt-4o {shown(by_model['gpt-4o']['cost'])}" in table
        assert len(driver.find_elements(By.CSS_SELECTOR, "#spend-by-key svg rect")) >= 3

        before = loads(driver)
        send(gateway, secrets, [("dev", "gpt-4o")])  # the page refreshes by itself and shows it
        recorded(gateway, secrets["lead"], len(TRAFFIC) + 1)
        spent = str(usage(gateway, secrets["lead"], "key")["dev"]["total_tokens"])
        wait_for(lambda: loads(driver) > before and cells(driver, 'data-key="dev"')[0] == spent, 25, "a refresh")
        assert driver.find_element(By.CSS_SELECTOR, "#spend-by-model details").get_attribute("open") is not None


def test_phone_width_and_no_javascript(team_gateway, tmp_path: Path):
    gateway, secrets = team_gateway
    with chromium(tmp_path / "phone", width=390, height=844) as driver:
        sign_in(driver, gateway, secrets["lead"])
        wait_for(lambda: loads(driver) >= 1, timeout=10, what="the figures")
        width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1]  # wide tables scroll inside their own box, the page does not
    with chromium(tmp_path / "nojs", javascript=False) as driver:
        driver.get(gateway.url + "/admin")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "cannot send the admin key as a header" in text
        assert not driver.find_element(By.ID, "login").is_displayed()
