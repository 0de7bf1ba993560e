"""The gateway's own command line with its usage ledger replaced by a no-op: for the benchmark only, to measure
what the ledger costs (bench/run.py's `gateway-1w-noledger`). The gateway has no setting to turn the ledger off,
and gets none for this.

    python bench/no_ledger.py serve --host 127.0.0.1 --port 8001 --workers 1   # = acedata-proxy serve ...

The patch is made when this file is imported, so it applies wherever the app is built: in this process (one
worker: uvicorn serves in-process) and in every worker process (several workers: uvicorn spawns them, and
multiprocessing's spawn runs this file again in each one, as `__mp_main__`, before the worker builds its app).
"""

from __future__ import annotations

import sys

import app.main
from app.context import RequestInfo
from app.ledger import Ledger
from app.ledger.store import DayRow, Row
from app.proxy.usage import Owner, Tokens


class NoLedger(Ledger):
    """The ledger's interface, doing nothing: no store is opened, no batch kept, no thread started."""

    def record(self, info: RequestInfo) -> None:
        return None

    def charge(self, key: str, route: str, model: str, tokens: Tokens) -> None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._executor.shutdown(wait=False)

    async def rows(self, key: str | None, since_hour: int) -> list[Row]:
        return []

    async def days(self, since_hour: int) -> list[DayRow]:
        return []

    async def spent(self, key: str, since_hour: int) -> int:
        return 0

    async def remember(self, response_id: str, owner: Owner) -> None:
        return None

    async def owner(self, response_id: str) -> Owner | None:
        return None

    async def claim(self, response_id: str) -> bool:
        return False

    def describe(self) -> dict[str, object]:
        return {"storage": "none (bench/no_ledger.py)"}


app.main.Ledger = NoLedger  # type: ignore[attr-defined]  # create_app looks the class up here, in each process

if __name__ == "__main__":
    from app.cli import main

    main(sys.argv[1:])
