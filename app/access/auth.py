"""Client authentication against the keys file, which is re-read when it changes (or on SIGHUP), so keys can be
added or revoked without a restart. A file that turns invalid is refused and the previous keys stay in force."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from app.access.keys import KeyEntry, KeysFileError, load
from app.errors import InvalidApiKey

log = logging.getLogger("acedata_proxy.auth")

CHECK_INTERVAL = 1.0  # seconds between looks at the file's metadata (a stat, not a read)


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

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]]) -> KeyEntry:
        """The key entry for the request's client key, or InvalidApiKey. The key comes as `Authorization: Bearer
        sk-...` (OpenAI SDKs, Claude Code's ANTHROPIC_AUTH_TOKEN), `x-api-key: sk-...` (Claude Code's
        ANTHROPIC_API_KEY, the anthropic SDKs) or `x-goog-api-key: sk-...` (google-genai); a request carrying
        Authorization is judged by it, else by the first of the others it carries."""
        self._refresh()
        presented_key = _presented(headers)
        if presented_key is None:
            raise InvalidApiKey("Missing client key: send it as `Authorization: Bearer sk-...` or `x-api-key: sk-...`.")
        presented = hashlib.sha256(presented_key).hexdigest()
        match = None
        for entry in self.entries:  # every entry compared, in constant time: no early exit to time
            if hmac.compare_digest(presented, entry.sha256):
                match = entry
        if match is None:
            raise InvalidApiKey("Invalid client key.")
        return match


def _presented(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The client key a request presents: the Bearer credential, else the first x-api-key or x-goog-api-key."""
    api_key = None
    for name, value in headers:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
        if (name == b"x-api-key" or name == b"x-goog-api-key") and api_key is None:
            api_key = value.strip()
    return api_key
