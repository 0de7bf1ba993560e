"""KeyStore.authenticate: the client key as `Authorization: Bearer` or `x-api-key`, and glob allowlists."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.access import keys
from app.access.auth import KeyStore
from app.access.keys import KeyEntry
from app.errors import InvalidApiKey


@pytest.fixture
def store(tmp_path: Path) -> tuple[KeyStore, str, str]:
    path = tmp_path / "keys.toml"
    first, second = keys.create(path, "first"), keys.create(path, "second")
    return KeyStore(path), first, second


def test_bearer_x_api_key_or_x_goog_api_key(store: tuple[KeyStore, str, str]):
    keystore, first, second = store
    assert keystore.authenticate([(b"authorization", b"Bearer " + first.encode())]).name == "first"
    assert keystore.authenticate([(b"authorization", b"bearer  " + first.encode())]).name == "first"
    assert keystore.authenticate([(b"x-api-key", second.encode())]).name == "second"
    both = [(b"x-api-key", second.encode()), (b"authorization", b"Bearer " + first.encode())]
    assert keystore.authenticate(both).name == "first"  # Authorization decides when both are sent
    assert keystore.authenticate([(b"x-goog-api-key", second.encode())]).name == "second"  # google-genai
    google = [(b"x-goog-api-key", first.encode()), (b"authorization", b"Bearer " + second.encode())]
    assert keystore.authenticate(google).name == "second"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "Missing client key"),
        ([(b"authorization", b"Basic abc")], "Missing client key"),
        ([(b"x-api-key", b"sk-wrong")], "Invalid client key."),
        ([(b"x-goog-api-key", b"sk-wrong")], "Invalid client key."),
        ([(b"authorization", b"Bearer sk-wrong")], "Invalid client key."),
    ],
)
def test_refused(store: tuple[KeyStore, str, str], headers: list[tuple[bytes, bytes]], message: str):
    with pytest.raises(InvalidApiKey, match=message):
        store[0].authenticate(headers)


def test_allowlist_entries_may_be_globs():
    entry = KeyEntry("k", "0" * 64, models=frozenset({"claude-*", "gpt-4o", "o?-mini"}))
    assert [entry.allows(m) for m in ("claude-opus-5-5", "gpt-4o", "o3-mini", "gpt-4o-mini", "Claude-x")] == [
        True, True, True, False, False,
    ]  # fmt: skip
    assert KeyEntry("open", "0" * 64).allows("anything")
