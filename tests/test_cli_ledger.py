"""`acedata-proxy usage` and `keys list` say which usage ledger they read, and a ledger that does not exist is
reported as such; `keys rotate` gives a key a new plaintext, settings kept, the old one refused at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from app.access import keys
from app.ledger.store import SqliteStore
from tests.helpers import ROOT, GatewayFactory, wait_for


def command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=30, cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PROXY_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip


def test_a_missing_ledger_is_reported_not_shown_as_empty(tmp_path: Path):
    missing = f"no usage ledger at {tmp_path / 'data' / 'ledger.sqlite3'}: no gateway has recorded a request"
    usage = command(tmp_path, "usage")
    assert usage.returncode == 1
    assert usage.stdout == ""
    assert usage.stderr.startswith(f"acedata-proxy usage: {missing}")
    keys.create(tmp_path / "keys.toml", "alice")
    listing = command(tmp_path, "keys", "list", "--file", "keys.toml")
    assert listing.returncode == 0  # the keys are there to list; only their spend is not
    assert listing.stderr.startswith(f"acedata-proxy keys: {missing}")
    assert "alice" in listing.stdout


def test_usage_and_keys_list_name_the_ledger_they_read(tmp_path: Path):
    path = tmp_path / "data" / "ledger.sqlite3"
    path.parent.mkdir()
    SqliteStore(path).close()
    keys.create(tmp_path / "keys.toml", "alice")
    said = f"reading the usage ledger in sqlite ({path})\n"
    usage = command(tmp_path, "usage", "--format", "csv")
    assert usage.returncode == 0
    assert usage.stderr == f"acedata-proxy usage: {said}"
    assert usage.stdout.startswith("day,")  # stdout stays the report alone
    listing = command(tmp_path, "keys", "list", "--file", "keys.toml")
    assert listing.stderr == f"acedata-proxy keys: {said}"


def test_rotate_replaces_the_key_and_keeps_its_settings(tmp_path: Path, make_gateway: GatewayFactory):
    path = tmp_path / "keys.toml"
    old = keys.create(path, "alice", ["gpt-4o"], rpm=50, admin=True)
    keys.create(path, "bob")
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))

    def models(key: str) -> httpx.Response:
        return httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {key}"})

    assert models(old).status_code == 200
    rotated = command(tmp_path, "keys", "rotate", "alice", "--file", "keys.toml")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.splitlines()[-1]
    assert new.startswith("sk-")
    assert new != old
    [alice, bob] = keys.load(path)
    assert alice == keys.KeyEntry("alice", keys.digest(new), frozenset({"gpt-4o"}), rpm=50, admin=True)
    assert bob.name == "bob"
    wait_for(lambda: models(old).status_code == 401, 5, "the old key refused")
    assert [m["id"] for m in models(new).json()["data"]] == ["gpt-4o"]
    unknown = command(tmp_path, "keys", "rotate", "carol", "--file", "keys.toml")
    assert unknown.returncode == 1
    assert "no key named 'carol'" in unknown.stderr
