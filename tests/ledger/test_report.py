"""`acedata-proxy usage` on a real SQLite ledger: grouping, filters and the three formats, and bad filters."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.ledger.report import ReportError, since_hour
from app.ledger.store import SqliteStore
from tests.helpers import ROOT


def hour(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() // 3600)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = SqliteStore(tmp_path / "ledger.sqlite3")
    store.add({
        (hour("2026-11-24T10:00"), "alice", "openai.responses", "gpt-4.1"): [2, 10, 20],
        (hour("2026-11-24T23:00"), "bob", "aichat.conversations", "gpt-4o"): [1, 5, 1024],
    })  # fmt: skip
    store.add({(hour("2026-11-25T01:00"), "alice", "openai.responses", "gpt-4.1"): [3, 30, 40]})
    store.add({(hour("2026-11-25T01:00"), "alice", "openai.responses", "gpt-4.1"): [1, 1, 1]})  # adds to the row
    store.close()
    return tmp_path


def usage(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "usage", *args], capture_output=True, text=True, timeout=30, cwd=data_dir,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PROXY_DATA_DIR": str(data_dir)},
    )  # fmt: skip


def test_table_by_day(data_dir: Path):
    lines = usage(data_dir).stdout.splitlines()
    assert [line.split() for line in lines] == [
        ["day", "requests", "input_tokens", "output_tokens", "total_tokens"],
        ["2026-11-24", "3", "15", "1044", "1059"],
        ["2026-11-25", "4", "31", "41", "72"],
        ["total", "7", "46", "1085", "1131"],
    ]


def test_json_by_model_for_one_key_since_a_date(data_dir: Path):
    report = json.loads(usage(data_dir, "--key", "alice", "--by", "model", "--since", "2026-11-25",
                              "--format", "json").stdout)  # fmt: skip
    assert report["rows"] == [
        {"model": "gpt-4.1", "requests": 4, "input_tokens": 31, "output_tokens": 41, "total_tokens": 72}
    ]
    assert report["total"]["requests"] == 4


def test_csv_by_key(data_dir: Path):
    rows = list(csv.reader(io.StringIO(usage(data_dir, "--by", "key", "--format", "csv").stdout)))
    assert rows == [
        ["key", "requests", "input_tokens", "output_tokens", "total_tokens"],
        ["alice", "6", "41", "61", "102"],
        ["bob", "1", "5", "1024", "1029"],
    ]


def test_bad_filters_and_an_empty_ledger(data_dir: Path, tmp_path: Path):
    refused = usage(data_dir, "--since", "last week")
    assert refused.returncode != 0
    assert "since must be a date" in refused.stderr
    assert usage(data_dir, "--by", "route").returncode != 0
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
