"""Reading a gateway's usage ledger through its admin report, once what the test did has been written."""

from __future__ import annotations

from typing import Any

import httpx

from app.ledger import FLUSH_INTERVAL
from tests.helpers.servers import GatewayProcess
from tests.helpers.waiting import wait_for


def admin_report(gateway: GatewayProcess, admin: str, **params: str) -> dict[str, Any]:
    response = httpx.get(gateway.url + "/admin/usage", params=params, headers={"authorization": f"Bearer {admin}"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_for_report(gateway: GatewayProcess, admin: str, requests: int, **params: str) -> dict[str, Any]:
    """The report once the ledger holds `requests` requests: writes land within a flush interval."""
    wait_for(
        lambda: admin_report(gateway, admin, **params)["total"]["requests"] >= requests,
        timeout=10 * FLUSH_INTERVAL + 10,
        what=f"{requests} requests in the ledger",
    )
    return admin_report(gateway, admin, **params)
