"""Where the usage ledger lives: SQLite under PROXY_DATA_DIR (default), or Redis with PROXY_REDIS_URL.

Both hold one row per UTC hour, key, route and model: requests, input tokens, output tokens, and units (what the
route bills besides tokens: characters, audio seconds or images; its RouteSpec's `unit`). Writes add to a
row atomically (an SQLite upsert inside one transaction; Redis HINCRBY inside MULTI/EXEC), so any number of
workers and replicas can write at once. Both classes are synchronous: the gateway calls them from its ledger
thread, the CLI directly.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson

from app.proxy.table import ROUTES
from app.proxy.usage import Owner
from app.settings import Settings

if TYPE_CHECKING:
    import redis


class RowKey(NamedTuple):
    """Which row a count goes to."""

    hour: int  # unix seconds // 3600 (UTC)
    key: str
    route: str
    model: str


class Counts(NamedTuple):
    """What a row counts; `units` are in the route's unit (characters, audio seconds or images)."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    units: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def plus(self, other: Counts) -> Counts:
        # field by field, not zip over both: this runs once per request on the event loop
        return Counts(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.units + other.units,
        )


class Row(NamedTuple):
    """One hour's row, as both stores read it back."""

    hour: int
    key: str
    route: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    units: int

    @property
    def counts(self) -> Counts:
        return Counts(self.requests, self.input_tokens, self.output_tokens, self.units)


class DayRow(NamedTuple):
    """Rows summed per UTC day, key, route and model (the route names what its units count)."""

    day: int  # hour // 24
    key: str
    route: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    units: int
    last_hour: int  # the last hour with a row

    @property
    def counts(self) -> Counts:
        return Counts(self.requests, self.input_tokens, self.output_tokens, self.units)


FIELDS = "riou"  # the Redis field suffix of each of Counts' fields


class StoreUnavailable(Exception):
    """The Redis store could not be used (redis-py's errors, translated at this boundary)."""


STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError, StoreUnavailable)
REDIS_RETENTION_HOURS = 400 * 24  # Redis keeps about 13 months of hourly rows; SQLite keeps them until deleted
REDIS_PREFIX = "acedata-proxy:usage:"
REDIS_BACKGROUND = "acedata-proxy:background:"


class Store(Protocol):
    def add(self, batch: Mapping[RowKey, Counts]) -> None: ...
    def rows(self, key: str | None, since_hour: int) -> list[Row]: ...
    def spent(self, key: str, since_hour: int) -> int: ...
    def days(self, since_hour: int) -> list[DayRow]: ...
    def describe(self) -> dict[str, str]: ...
    def close(self) -> None: ...
    def remember(self, response_id: str, owner: Owner) -> None: ...
    def owner(self, response_id: str) -> Owner | None: ...
    def claim(self, response_id: str) -> bool: ...


def sqlite_path(settings: Settings) -> Path:
    """Where the SQLite ledger is kept (PROXY_DATA_DIR), for the store and for the CLI that names it."""
    return settings.data_dir / "ledger.sqlite3"


def open_store(settings: Settings) -> Store:
    if settings.redis_url:
        return RedisStore(settings.redis_url)
    return SqliteStore(sqlite_path(settings))


SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    hour INTEGER NOT NULL,  -- unix seconds // 3600, UTC
    key TEXT NOT NULL,
    route TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    units INTEGER NOT NULL DEFAULT 0,  -- characters, audio seconds or images, by the route's unit
    PRIMARY KEY (hour, key, route, model)
) WITHOUT ROWID
"""
BACKGROUND_SCHEMA = """
CREATE TABLE IF NOT EXISTS background (
    id TEXT PRIMARY KEY,  -- the upstream's response id
    key TEXT NOT NULL,
    route TEXT NOT NULL,
    model TEXT NOT NULL,
    label TEXT NOT NULL,
    reserved INTEGER NOT NULL,
    reserved_cost INTEGER NOT NULL,
    created INTEGER NOT NULL,  -- unix seconds
    charged INTEGER NOT NULL DEFAULT 0  -- 1 once a retrieval saw it completed and its usage was charged
) WITHOUT ROWID
"""
BACKGROUND_RETENTION = 30 * 86400  # seconds: how long the upstream keeps a response (OpenAI's 30 days)
UPSERT = """
INSERT INTO usage (hour, key, route, model, requests, input_tokens, output_tokens, units)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, key, route, model) DO UPDATE SET
    requests = requests + excluded.requests,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    units = units + excluded.units
"""
COLUMNS = "hour, key, route, model, requests, input_tokens, output_tokens, units"


class SqliteStore:
    """WAL mode: readers never block the writers, and each worker's writer waits its turn (busy timeout)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed batch survives the process being killed; only an OS crash or power
        # loss can take the last commits back
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA cache_size=-256")  # KiB: batches are small, and every worker holds a connection
        self.db.execute(SCHEMA)
        self._migrate()
        self.db.execute(BACKGROUND_SCHEMA)

    def _migrate(self) -> None:
        """A ledger written before units were counted gains the column. Its image rows count one image a request,
        as prices read them until then (`n` was not recorded); other rows count none. One transaction: a racing
        worker waits, then finds the column added."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if any(column[1] == "units" for column in self.db.execute("PRAGMA table_info(usage)")):
                return
            self.db.execute("ALTER TABLE usage ADD COLUMN units INTEGER NOT NULL DEFAULT 0")
            images = [spec.name for spec in ROUTES if spec.unit == "image"]
            marks = ", ".join("?" * len(images))
            self.db.execute(f"UPDATE usage SET units = requests WHERE route IN ({marks})", images)  # placeholders only

    def add(self, batch: Mapping[RowKey, Counts]) -> None:
        with self.db:  # one transaction: the whole batch or nothing
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(UPSERT, [(*row, *counts) for row, counts in batch.items()])

    def rows(self, key: str | None, since_hour: int) -> list[Row]:
        query = f"SELECT {COLUMNS} FROM usage WHERE hour >= ?" + (" AND key = ?" if key is not None else "")
        params = (since_hour, key) if key is not None else (since_hour,)
        return list(map(Row._make, self.db.execute(query + " ORDER BY hour", params)))

    def spent(self, key: str, since_hour: int) -> int:
        query = "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM usage WHERE key = ? AND hour >= ?"
        return int(self.db.execute(query, (key, since_hour)).fetchone()[0])

    def days(self, since_hour: int) -> list[DayRow]:
        """Summed by SQLite itself: a few thousand rows leave the database where hourly ones are tens of thousands."""
        query = """SELECT hour / 24, key, route, model, SUM(requests), SUM(input_tokens), SUM(output_tokens),
                          SUM(units), MAX(hour)
                   FROM usage WHERE hour >= ? GROUP BY hour / 24, key, route, model"""
        return list(map(DayRow._make, self.db.execute(query, (since_hour,))))

    def describe(self) -> dict[str, str]:
        return {"storage": "sqlite"}  # never the path: /readyz answers anyone who can reach it

    def remember(self, response_id: str, owner: Owner) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM background WHERE created < ?", (int(time.time()) - BACKGROUND_RETENTION,))
            self.db.execute(
                "INSERT OR IGNORE INTO background VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (response_id, *owner, int(time.time())),
            )

    def owner(self, response_id: str) -> Owner | None:
        found = self.db.execute(
            "SELECT key, route, model, label, reserved, reserved_cost FROM background WHERE id = ?", (response_id,)
        ).fetchone()
        return Owner(*found) if found is not None else None

    def claim(self, response_id: str) -> bool:
        """True for the one call that marks the response charged (any number of workers may race for it)."""
        with self.db:
            cursor = self.db.execute("UPDATE background SET charged = 1 WHERE id = ? AND charged = 0", (response_id,))
        return cursor.rowcount == 1

    def close(self) -> None:
        self.db.close()


class RedisStore:
    """A hash per hour (`acedata-proxy:usage:<hour>`, fields `[key, route, model, r|i|o]`) and a sorted set of
    the hours written, so a report finds them without scanning keys. redis-py loads only here: memory a gateway
    without Redis does not pay (docs/performance-facts.md)."""

    def __init__(self, url: str):
        import redis

        self.errors = redis.RedisError
        self.redis: redis.Redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    def add(self, batch: Mapping[RowKey, Counts]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        hours = set()
        for (hour, key, route, model), counts in batch.items():
            for field, amount in zip(FIELDS, counts, strict=True):
                if amount:
                    pipe.hincrby(f"{REDIS_PREFIX}{hour}", orjson.dumps([key, route, model, field]).decode(), amount)
            hours.add(hour)
        for hour in hours:
            pipe.expire(f"{REDIS_PREFIX}{hour}", REDIS_RETENTION_HOURS * 3600)
            pipe.zadd(REDIS_PREFIX + "hours", {str(hour): hour})
        pipe.zremrangebyscore(REDIS_PREFIX + "hours", 0, max(hours) - REDIS_RETENTION_HOURS)
        self._run(pipe)

    def rows(self, key: str | None, since_hour: int) -> list[Row]:
        index = self.redis.pipeline(transaction=False)
        index.zrangebyscore(REDIS_PREFIX + "hours", since_hour, "+inf")
        hours = [int(hour) for hour in self._run(index)[0]]
        pipe = self.redis.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(f"{REDIS_PREFIX}{hour}")
        rows: list[Row] = []
        for hour, fields in zip(hours, self._run(pipe), strict=True):
            rows += _rows(hour, fields, key)
        return rows

    def _run(self, pipe: redis.client.Pipeline) -> list[Any]:
        try:
            return pipe.execute()
        except self.errors as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def spent(self, key: str, since_hour: int) -> int:
        return sum(row.counts.tokens for row in self.rows(key, since_hour))

    def days(self, since_hour: int) -> list[DayRow]:
        return by_day(self.rows(None, since_hour))

    def describe(self) -> dict[str, str]:
        return {"storage": "redis"}  # never the URL: it may carry a password

    def remember(self, response_id: str, owner: Owner) -> None:
        pipe = self.redis.pipeline(transaction=True)
        name = REDIS_BACKGROUND + response_id
        pipe.hsetnx(name, "owner", orjson.dumps(owner))
        pipe.expire(name, BACKGROUND_RETENTION)
        self._run(pipe)

    def owner(self, response_id: str) -> Owner | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(REDIS_BACKGROUND + response_id, "owner")
        found = self._run(pipe)[0]
        return Owner(*orjson.loads(found)) if found is not None else None

    def claim(self, response_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(REDIS_BACKGROUND + response_id, "charged", 1)
        return bool(self._run(pipe)[0])

    def close(self) -> None:
        self.redis.close()


def _rows(hour: int, fields: Mapping[bytes, bytes], only: str | None) -> Iterable[Row]:
    counts: dict[tuple[str, str, str], list[int]] = {}
    for raw, value in fields.items():
        key, route, model, field = orjson.loads(raw)
        if only is None or key == only:
            counts.setdefault((key, route, model), [0, 0, 0, 0])[FIELDS.index(field)] += int(value)
    return [Row(hour, *names, *found) for names, found in sorted(counts.items())]


def by_day(rows: Iterable[Row]) -> list[DayRow]:
    sums: dict[tuple[int, str, str, str], tuple[Counts, int]] = {}
    for row in rows:
        day = (row.hour // 24, row.key, row.route, row.model)
        counts, last = sums.get(day, (Counts(), row.hour))
        sums[day] = (counts.plus(row.counts), max(last, row.hour))
    return [DayRow(*day, *counts, last) for day, (counts, last) in sums.items()]
