"""Client authentication against the keys file, which is re-read when it changes (or on SIGHUP), so keys can be
added or revoked without a restart. A file that turns invalid is refused and the previous keys stay in force."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from pathlib import Path

from app.access.keys import KeyEntry, KeysFileError, load
from app.errors import InvalidApiKey
from app.proxy.headers import header
from app.types import Headers

log = logging.getLogger("acedata_proxy.auth")

CHECK_INTERVAL = 1.0  # seconds between looks at the file's metadata (a stat, not a read)


def credential(headers: Headers) -> bytes | None:
    """The client key as an `Authorization` value: that header, else `x-goog-api-key` (what google-genai sends)."""
    authorization = header(headers, b"authorization")
    if authorization is None and (google := header(headers, b"x-goog-api-key")) is not None:
        return b"Bearer " + google
    return authorization


class KeyStore:
    def __init__(self, path: Path):
        self.path = path
        self.entries: tuple[KeyEntry, ...] = tuple(load(path))  # invalid at start: refuse to start
        self._signature = self._stat()
        self._checked = time.monotonic()
        log.info("loaded %d client keys from %s", len(self.entries), path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def reload(self) -> None:
        try:
            entries = tuple(load(self.path))
        except KeysFileError as exc:
            log.error("keys file not reloaded, previous keys stay in force: %s", exc)
            return
        self.entries = entries
        log.info("reloaded %d client keys from %s", len(entries), self.path)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < CHECK_INTERVAL:
            return
        self._checked = now
        signature = self._stat()
        if signature != self._signature:
            self._signature = signature
            self.reload()

    async def watch(self) -> None:
        """Look at the file every second while serving, so an edit that breaks it is logged when it happens,
        not at the next request (which still finds the previous keys in force)."""
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            self._refresh()

    def named(self, name: str) -> KeyEntry | None:
        """The entry of the key called `name`, if it is still in the file."""
        return next((entry for entry in self.entries if entry.name == name), None)

    def authenticate(self, authorization: bytes | None) -> KeyEntry:
        """The key entry for an `Authorization: Bearer sk-...` header, or InvalidApiKey."""
        self._refresh()
        if authorization is None or not authorization[:7].lower() == b"bearer ":
            raise InvalidApiKey("Missing client key: send it as `Authorization: Bearer sk-...` (the SDK's api_key).")
        presented = hashlib.sha256(authorization[7:].strip()).hexdigest()
        match = None
        for entry in self.entries:  # every entry compared, in constant time: no early exit to time
            if hmac.compare_digest(presented, entry.sha256):
                match = entry
        if match is None:
            raise InvalidApiKey("Invalid client key.")
        return match
