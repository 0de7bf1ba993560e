"""The keys file is watched while the gateway serves: a broken edit is logged when it happens."""

from __future__ import annotations

import time
from pathlib import Path

from app import keys
from tests.conftest import GatewayFactory


def test_a_broken_edit_is_logged_without_any_request(make_gateway: GatewayFactory, tmp_path: Path):
    keys_file = tmp_path / "keys.toml"
    keys.create(keys_file, "alice")
    gateway = make_gateway(PROXY_KEYS_FILE=str(keys_file))
    keys_file.write_text("[[keys]\n")  # no request follows: only the watcher can notice
    deadline = time.monotonic() + 10
    while "keys file not reloaded, previous keys stay in force" not in gateway.log():
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.1)
