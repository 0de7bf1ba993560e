"""The keys file is watched while the gateway serves: a broken edit is logged when it happens."""

from __future__ import annotations

from pathlib import Path

from app.access import keys
from tests.helpers import GatewayFactory, wait_for


def test_a_broken_edit_is_logged_without_any_request(make_gateway: GatewayFactory, tmp_path: Path):
    keys_file = tmp_path / "keys.toml"
    keys.create(keys_file, "alice")
    gateway = make_gateway(PROXY_KEYS_FILE=str(keys_file))
    keys_file.write_text("[[keys]\n")  # no request follows: only the watcher can notice
    wait_for(lambda: "keys file not reloaded, previous keys stay in force" in gateway.log(), timeout=10,
             what="the broken edit logged")  # fmt: skip
