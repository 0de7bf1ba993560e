"""`acedata-proxy usage` on a real SQLite ledger: grouping, filters and the three formats, bad filters, and the
cost column (priced by PROXY_PRICES_FILE; unpriced shown as such, never 0)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from app.ledger.report import ReportError, since_hour
from app.ledger.store import Counts, RedisStore, RowKey, SqliteStore, by_day
from tests.helpers import RedisServer
from tests.helpers.cli import cli_in_process


def hour(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() // 3600)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = SqliteStore(tmp_path / "ledger.sqlite3")
    store.add({
        RowKey(hour("2026-11-24T10:00"), "alice", "openai.responses", "gpt-4.1"): Counts(2, 10, 20, 0),
        RowKey(hour("2026-11-24T23:00"), "bob", "aichat.conversations", "gpt-4o"): Counts(1, 5, 1024, 0),
    })  # fmt: skip
    store.add({RowKey(hour("2026-11-25T01:00"), "alice", "openai.responses", "gpt-4.1"): Counts(3, 30, 40, 0)})
    store.add(
        {RowKey(hour("2026-11-25T01:00"), "alice", "openai.responses", "gpt-4.1"): Counts(1, 1, 1, 0)}
    )  # adds to the row
    store.close()
    return tmp_path


PRICES = """currency = "USD"
[[prices]]
model = "gpt-4.1"
input = 2.0
output = 8.0
"""


def usage(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return cli_in_process("usage", *args, cwd=data_dir, env={"PROXY_DATA_DIR": str(data_dir), **env})


def priced(data_dir: Path) -> dict[str, str]:
    path = data_dir / "prices.toml"
    path.write_text(PRICES)
    return {"PROXY_PRICES_FILE": str(path)}


def test_table_by_day(data_dir: Path):
    lines = usage(data_dir).stdout.splitlines()
    assert [line.split() for line in lines[:-1]] == [
        ["day", "requests", "input_tokens", "output_tokens", "total_tokens", "cost", "unpriced_requests"],
        ["2026-11-24", "3", "15", "1044", "1059", "-", "3"],
        ["2026-11-25", "4", "31", "41", "72", "-", "4"],
        ["total", "7", "46", "1085", "1131", "-", "7"],
    ]
    assert lines[-1] == "cost: no price file (PROXY_PRICES_FILE unset)"


def test_costs_from_the_price_file_in_force(data_dir: Path):
    lines = usage(data_dir, **priced(data_dir)).stdout.splitlines()
    # alice's gpt-4.1: 10 in + 20 out on the 24th = 0.00018; bob's gpt-4o has no price
    assert [line.split() for line in lines[1:-1]] == [
        ["2026-11-24", "3", "15", "1044", "1059", "0.000180", "1"],
        ["2026-11-25", "4", "31", "41", "72", "0.000390", "0"],
        ["total", "7", "46", "1085", "1131", "0.000570", "1"],
    ]
    assert lines[-1] == f"cost in USD, priced by {data_dir / 'prices.toml'}; - = no price for that model"
    report = json.loads(usage(data_dir, "--by", "key", "--format", "json", **priced(data_dir)).stdout)
    assert report["prices"] == {"file": str(data_dir / "prices.toml"), "currency": "USD"}
    alice, bob = report["rows"]
    assert alice["cost"] == pytest.approx((41 * 2.0 + 61 * 8.0) / 1e6)
    assert (bob["cost"], bob["unpriced_requests"]) == (None, 1)  # unpriced, not free
    assert report["total"]["cost"] == pytest.approx(alice["cost"])
    rows = list(csv.reader(io.StringIO(usage(data_dir, "--by", "model", "--format", "csv", **priced(data_dir)).stdout)))
    assert rows[2] == ["gpt-4o", "1", "5", "1024", "1029", "", "1"]  # an empty cell, never 0
    broken = usage(data_dir, PROXY_PRICES_FILE=str(data_dir / "missing.toml"))
    assert broken.returncode != 0
    assert "PROXY_PRICES_FILE=" in broken.stderr
    assert "does not exist" in broken.stderr


def test_json_by_model_for_one_key_since_a_date(data_dir: Path):
    report = json.loads(usage(data_dir, "--key", "alice", "--by", "model", "--since", "2026-11-25",
                              "--format", "json").stdout)  # fmt: skip
    assert report["rows"] == [
        {"model": "gpt-4.1", "requests": 4, "input_tokens": 31, "output_tokens": 41, "total_tokens": 72,
         "cost": None, "unpriced_requests": 4}
    ]  # fmt: skip
    assert report["prices"] is None
    assert report["total"]["requests"] == 4


def test_csv_by_key(data_dir: Path):
    rows = list(csv.reader(io.StringIO(usage(data_dir, "--by", "key", "--format", "csv").stdout)))
    assert rows == [
        ["key", "requests", "input_tokens", "output_tokens", "total_tokens", "cost", "unpriced_requests"],
        ["alice", "6", "41", "61", "102", "", "6"],
        ["bob", "1", "5", "1024", "1029", "", "1"],
    ]


def test_bad_filters_and_an_empty_ledger(data_dir: Path, tmp_path: Path):
    refused = usage(data_dir, "--since", "last week")
    assert refused.returncode != 0
    assert "since must be a date" in refused.stderr
    assert usage(data_dir, "--by", "week").returncode != 0
    missing = tmp_path / "missing"
    missing.mkdir()
    assert usage(missing, "--format", "json").returncode == 1  # said as such: tests/test_cli_ledger.py
    assert not (missing / "ledger.sqlite3").exists()  # reading never creates a ledger
    empty = tmp_path / "empty"
    empty.mkdir()
    SqliteStore(empty / "ledger.sqlite3").close()
    assert usage(empty, "--format", "json").stdout.count('"requests": 0') == 1


@pytest.mark.parametrize(
    ("text", "first"),
    [("2026-11-25", "2026-11-25T00:00"), ("2026-11-25T10:30", "2026-11-25T11:00"),
     ("2026-11-25T10:00+02:00", "2026-11-25T08:00")],
)  # fmt: skip
def test_since_is_the_first_whole_utc_hour(text: str, first: str):
    assert since_hour(text) == hour(first)
    with pytest.raises(ReportError):
        since_hour("25/11/2026")


def test_both_stores_sum_the_same_days(data_dir: Path, redis_server: RedisServer):
    """The dashboard reads days (summed by key, route and model) rather than hours: SQLite sums in SQL, Redis in
    Python."""
    sqlite = SqliteStore(data_dir / "ledger.sqlite3")
    redis = RedisStore(redis_server.url)
    try:
        hourly = sqlite.rows(None, 0)
        redis.add({RowKey(*row[:4]): Counts(*row[4:]) for row in hourly})
        day = hour("2026-11-25T00:00") // 24
        expected = [
            (day - 1, "alice", "openai.responses", "gpt-4.1", 2, 10, 20, 0, hour("2026-11-24T10:00")),
            (day - 1, "bob", "aichat.conversations", "gpt-4o", 1, 5, 1024, 0, hour("2026-11-24T23:00")),
            (day, "alice", "openai.responses", "gpt-4.1", 4, 31, 41, 0, hour("2026-11-25T01:00")),
        ]
        assert sorted(sqlite.days(0)) == sorted(redis.days(0)) == sorted(by_day(hourly)) == expected
        assert sqlite.days(hour("2026-11-25T00:00")) == expected[2:]
    finally:
        sqlite.close()
        redis.close()


SPEECH_PRICE = """
[[prices]]
model = "tts-1"
per_unit = 0.000015
unit = "character"
"""


def test_by_route_names_each_route_s_unit_and_prices_its_units(data_dir: Path):
    store = SqliteStore(data_dir / "ledger.sqlite3")
    store.add({RowKey(hour("2026-11-25T02:00"), "alice", "openai.audio.speech", "tts-1"): Counts(2, 6, 0, 21)})
    store.add({RowKey(hour("2026-11-25T02:00"), "bob", "openai.audio.speech", "tts-1-hd"): Counts(1, 3, 0, 10)})
    store.close()
    env = priced(data_dir)
    with Path(env["PROXY_PRICES_FILE"]).open("a") as prices:
        prices.write(SPEECH_PRICE)
    report = json.loads(usage(data_dir, "--by", "route", "--format", "json", **env).stdout)
    responses = (41 * 2.0 + 61 * 8.0) / 1e6
    assert report["rows"] == [
        {"route": "aichat.conversations", "requests": 1, "input_tokens": 5, "output_tokens": 1024,
         "total_tokens": 1029, "cost": None, "unpriced_requests": 1, "unit": "token", "units": 1029},
        {"route": "openai.audio.speech", "requests": 3, "input_tokens": 9, "output_tokens": 0, "total_tokens": 9,
         "cost": pytest.approx(21 * 0.000015), "unpriced_requests": 1, "unit": "character", "units": 31},
        {"route": "openai.responses", "requests": 6, "input_tokens": 41, "output_tokens": 61, "total_tokens": 102,
         "cost": pytest.approx(responses), "unpriced_requests": 0, "unit": "token", "units": 102},
    ]  # fmt: skip
    table = usage(data_dir, "--by", "route", **env).stdout.splitlines()
    assert table[0].split() == ["route", "requests", "input_tokens", "output_tokens", "total_tokens", "unit", "units",
                                "cost", "unpriced_requests"]  # fmt: skip
    assert table[-2].split() == ["total", "10", "55", "1085", "1140", "0.000885", "2"]  # no units total: units differ


OLD_SCHEMA = """CREATE TABLE usage (hour INTEGER NOT NULL, key TEXT NOT NULL, route TEXT NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    PRIMARY KEY (hour, key, route, model)) WITHOUT ROWID"""


def test_a_ledger_from_before_units_gains_the_column(tmp_path: Path):
    path = tmp_path / "ledger.sqlite3"
    old = sqlite3.connect(path)
    old.execute(OLD_SCHEMA)
    old.execute("INSERT INTO usage VALUES (1, 'alice', 'openai.responses', 'gpt-4.1', 2, 10, 20)")
    old.execute("INSERT INTO usage VALUES (1, 'bob', 'openai.images.generations', 'dall-e-3', 3, 30, 0)")
    old.commit()
    old.close()
    store = SqliteStore(path)
    store.add({RowKey(1, "alice", "openai.audio.speech", "tts-1"): Counts(1, 3, 0, 12)})
    store.add({RowKey(1, "bob", "openai.images.generations", "dall-e-3"): Counts(1, 10, 0, 2)})
    assert store.rows(None, 0) == [
        (1, "alice", "openai.audio.speech", "tts-1", 1, 3, 0, 12),
        (1, "alice", "openai.responses", "gpt-4.1", 2, 10, 20, 0),
        (1, "bob", "openai.images.generations", "dall-e-3", 4, 40, 0, 3 + 2),  # one image per older request
    ]
    store.close()
    again = SqliteStore(path)  # opened again: nothing to migrate, nothing counted twice
    assert [row[-1] for row in again.rows(None, 0)] == [12, 0, 5]
    again.close()


def test_redis_counts_units_too(redis_server: RedisServer):
    store = RedisStore(redis_server.url)
    row = RowKey(1, "alice", "openai.audio.transcriptions", "whisper-1")
    store.add({row: Counts(1, 30, 0, 3)})
    store.add({row: Counts(1, 20, 0, 2)})
    assert store.rows(None, 0) == [(*row, 2, 50, 0, 5)]
    store.close()
