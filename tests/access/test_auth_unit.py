"""KeyStore as a unit, on a real keys file: bearer authentication, the file re-read when it changes (checked at
every request here: the check interval is zero), and a broken edit that leaves the previous keys in force.
test_auth.py holds the real-socket test."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.access import auth, keys
from app.access.auth import KeyStore
from app.access.keys import KeysFileError
from app.errors import InvalidApiKey


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(auth, "CHECK_INTERVAL", 0.0)
    return tmp_path / "keys.toml"


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer " + key.encode())]


def test_a_key_is_found_by_its_bearer_header(keys_file: Path) -> None:
    first, second = keys.create(keys_file, "first"), keys.create(keys_file, "second", rpm=5)
    store = KeyStore(keys_file)
    assert store.authenticate(bearer(first)).name == "first"
    assert store.authenticate([(b"authorization", b"bearer  " + second.encode() + b" ")]).rpm == 5  # any case
    assert store.authenticate([(b"x-api-key", second.encode())]).name == "second"  # Claude Code's header


@pytest.mark.parametrize(
    ("header", "message"),
    [(None, "Missing client key"), (b"Basic dXNlcjpwYXNz", "Missing client key"), (b"Bearer sk-nope", "Invalid")],
)
def test_a_missing_or_unknown_key_is_refused(keys_file: Path, header: bytes | None, message: str) -> None:
    keys.create(keys_file, "team")
    with pytest.raises(InvalidApiKey, match=message):
        KeyStore(keys_file).authenticate([(b"authorization", header)] if header is not None else [])


def test_keys_added_and_revoked_take_effect_without_a_restart(keys_file: Path) -> None:
    old = keys.create(keys_file, "old")
    store = KeyStore(keys_file)
    new = keys.create(keys_file, "new")
    assert store.authenticate(bearer(new)).name == "new"
    keys.revoke(keys_file, "old")
    with pytest.raises(InvalidApiKey):
        store.authenticate(bearer(old))


def test_a_broken_edit_keeps_the_previous_keys(keys_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    team = keys.create(keys_file, "team")
    store = KeyStore(keys_file)
    keys_file.write_text(keys_file.read_text() + "rpm = -1\n")
    with caplog.at_level(logging.ERROR, logger="acedata_proxy.auth"):
        assert store.authenticate(bearer(team)).name == "team"
    assert "keys file not reloaded, previous keys stay in force" in caplog.text
    assert "rpm must be a positive integer" in caplog.text


def test_an_invalid_file_at_start_is_refused(keys_file: Path) -> None:
    keys_file.write_text("[[keys]]\nname = 'team'\n")
    with pytest.raises(KeysFileError, match="sha256 must be 64 lowercase hex digits"):
        KeyStore(keys_file)
