"""GET /admin/usage over real sockets: admin keys only (401 without a key, 403 for other keys and without a keys
file), the same filters as `acedata-proxy usage`, bad filters refused in the error envelope."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayFactory, GatewayProcess, wait_for


def usage(gateway: GatewayProcess, caller: str | None, **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {caller}"} if caller else {}
    return httpx.get(gateway.url + "/admin/usage", params=params, headers=headers)


def test_refused_without_a_keys_file(gateway: GatewayProcess):
    refused = usage(gateway, "sk-anything")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"
    assert "PROXY_KEYS_FILE" in refused.json()["error"]["message"]


def test_admin_keys_only_with_filters(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    member, other, admin = (
        keys.create(path, "member"),
        keys.create(path, "other"),
        keys.create(path, "lead", admin=True),
    )
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    for key, model in [(member, "gpt-4.1"), (member, "gpt-4o"), (other, "gpt-4.1")]:
        response = httpx.post(gateway.url + "/openai/responses", json={"model": model, "input": "one two"},
                              headers={"authorization": f"Bearer {key}"})  # fmt: skip
        assert response.status_code == 200

    assert usage(gateway, None).json()["error"]["code"] == "invalid_api_key"
    assert usage(gateway, "sk-unknown").status_code == 401
    denied = usage(gateway, member)
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "message": "Key 'member' is not an admin key (`admin = true` in the keys file).",
        "type": "permission_error", "code": "admin_required", "param": None,
    }  # fmt: skip

    wait_for(lambda: usage(gateway, admin).json()["total"]["requests"] >= 3, timeout=10, what="the ledger's 3 requests")
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    by_day = usage(gateway, admin).json()
    assert by_day["rows"] == [{"day": today, "requests": 3, "input_tokens": 6, "output_tokens": 15,
                               "total_tokens": 21, "cost": None, "unpriced_requests": 3}]  # fmt: skip
    assert by_day["prices"] is None
    by_model = usage(gateway, admin, key="member", by="model").json()
    assert [(line["model"], line["requests"]) for line in by_model["rows"]] == [("gpt-4.1", 1), ("gpt-4o", 1)]
    assert by_model["key"] == "member"
    assert usage(gateway, admin, since="2999-01-01").json()["total"]["requests"] == 0
    assert usage(gateway, admin, since=today, by="key").json()["total"]["requests"] == 3

    for params, param in [({"since": "yesterday"}, "since"), ({"by": "week"}, "by")]:
        bad = usage(gateway, admin, **params)
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == param


def test_refusals_log_one_access_line_and_name_the_caller(make_gateway: GatewayFactory, tmp_path: Path):
    """A refused caller was logged as a 65-line traceback; every answer is one access line naming the key."""
    path = tmp_path / "keys.toml"
    member, admin = keys.create(path, "member"), keys.create(path, "lead", admin=True)
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    log = gateway.log_from_now()
    assert usage(gateway, None).status_code == 401
    assert usage(gateway, member).status_code == 403
    assert usage(gateway, admin).status_code == 200
    log.wait_for("key=lead")
    lines = [line for line in log.text().splitlines() if "/admin/usage" in line]
    assert [line.split(" status=")[1].split()[0] for line in lines] == ["401", "403", "200"]
    assert "key=member" in lines[1]
    assert "Traceback" not in log.text()
