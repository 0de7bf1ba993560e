"""Claude Code itself (`claude -p`, npm @anthropic-ai/claude-code pinned in claude/package-lock.json) against a team
gateway (keys file, limits, the ledger) and the fake upstream: once with ANTHROPIC_AUTH_TOKEN (sent as Bearer) and
once with ANTHROPIC_API_KEY (sent as x-api-key), offline, in a throwaway HOME. Slow tier: the package is ~360 MB,
installed by claude/install (`scripts/test --all`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import ROOT, UPSTREAM_TOKEN, GatewayFactory, GatewayProcess, wait_for

CLAUDE_DIR = ROOT / "tests" / "compat" / "claude"
ANSWER = "Hello! This answer streams from"


@pytest.fixture(scope="module")
def claude() -> Path:
    subprocess.run([CLAUDE_DIR / "install"], check=True, timeout=900)
    return CLAUDE_DIR / "node_modules" / ".bin" / "claude"


def run_claude(claude: Path, gateway: GatewayProcess, home: Path, credential: dict[str, str]) -> str:
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": gateway.url,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **credential,
    }  # fmt: skip
    done = subprocess.run(
        [claude, "-p", "hello"], env=env, cwd=home, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def report(gateway: GatewayProcess, admin: str) -> dict[str, Any]:
    response = httpx.get(gateway.url + "/admin/usage?by=key", headers={"x-api-key": admin})
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(400)  # two runs of up to 180 s each (Node's start-up is slow on a busy machine)
def test_claude_code_prints_the_answer_through_a_team_gateway(
    claude: Path, make_gateway: GatewayFactory, fake: FakeUpstream, tmp_path: Path
):
    path = tmp_path / "keys.toml"
    token_key = keys.create(path, "claude-token", models=["claude-*"], rpm=600, tpm=1_000_000)
    api_key = keys.create(path, "claude-api-key", rpm=600, budget_tokens=10_000_000, budget_period="day")
    admin = keys.create(path, "lead", admin=True)
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))

    assert ANSWER in run_claude(claude, gateway, tmp_path / "home-token", {"ANTHROPIC_AUTH_TOKEN": token_key})
    assert ANSWER in run_claude(claude, gateway, tmp_path / "home-key", {"ANTHROPIC_API_KEY": api_key})

    messages = [exchange for exchange in fake.exchanges if exchange.path == "/v1/messages"]
    assert len(messages) >= 2
    assert all(exchange.header("authorization") == f"Bearer {UPSTREAM_TOKEN}" for exchange in fake.exchanges)
    assert all(exchange.header("x-api-key") is None for exchange in fake.exchanges)
    assert all(exchange.header("anthropic-version") for exchange in messages)
    wait_for(lambda: len(report(gateway, admin)["rows"]) == 2, timeout=10, what="both keys in the ledger")
    rows = {row["key"]: row for row in report(gateway, admin)["rows"]}
    assert set(rows) == {"claude-token", "claude-api-key"}
    assert all(row["input_tokens"] > 0 and row["output_tokens"] > 0 for row in rows.values())
