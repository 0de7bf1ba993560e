"""The client keys file (`PROXY_KEYS_FILE`): TOML `[[keys]]` tables holding each key's SHA-256, never the key.

Reading, writing (atomically: a temporary file renamed over the old one), and creating keys for the CLI.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import orjson

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DIGEST = re.compile(r"[0-9a-f]{64}")


class KeysFileError(ValueError):
    """The keys file cannot be used as it is; the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    name: str
    sha256: str
    models: frozenset[str] | None = None  # None: every model the route accepts
    rpm: int | None = None
    tpm: int | None = None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def _entry(raw: object, index: int) -> KeyEntry:
    if not isinstance(raw, dict):
        raise KeysFileError(f"keys[{index}] is not a table")
    name, sha = raw.get("name"), raw.get("sha256")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise KeysFileError(f"keys[{index}]: name must match {NAME.pattern}")
    if not isinstance(sha, str) or not DIGEST.fullmatch(sha):
        raise KeysFileError(f"keys[{index}] ({name}): sha256 must be 64 lowercase hex digits")
    models = raw.get("models")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        raise KeysFileError(f"keys[{index}] ({name}): models must be a list of strings")
    limits = {field: raw.get(field) for field in ("rpm", "tpm")}
    for field, value in limits.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise KeysFileError(f"keys[{index}] ({name}): {field} must be a positive integer")
    return KeyEntry(name, sha, frozenset(models) if models is not None else None, limits["rpm"], limits["tpm"])


def load(path: Path) -> list[KeyEntry]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeysFileError(f"keys file {path} does not exist (create keys with `acedata-proxy keys create`)") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"keys file {path} cannot be read: {exc}") from None
    raw_keys = document.get("keys", [])
    if not isinstance(raw_keys, list):
        raise KeysFileError("`keys` must be an array of tables ([[keys]])")
    entries = [_entry(raw, index) for index, raw in enumerate(raw_keys)]
    names = [entry.name for entry in entries]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise KeysFileError(f"key names must be unique; repeated: {', '.join(sorted(duplicated))}")
    return entries


def _toml(entry: KeyEntry) -> str:
    # JSON strings and integers are valid TOML values
    lines = ["[[keys]]", f"name = {orjson.dumps(entry.name).decode()}", f'sha256 = "{entry.sha256}"']
    if entry.models is not None:
        lines.append(f"models = {orjson.dumps(sorted(entry.models)).decode()}")
    lines += [f"{field} = {value}" for field, value in (("rpm", entry.rpm), ("tpm", entry.tpm)) if value is not None]
    return "\n".join(lines) + "\n"


def save(path: Path, entries: list[KeyEntry]) -> None:
    """Replace the file in one rename, so a gateway watching it never reads half a file."""
    text = "# acedata-proxy client keys: SHA-256 digests only. Manage with `acedata-proxy keys`.\n\n"
    text += "\n".join(_toml(entry) for entry in entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    # 0600 for a new file; an existing file keeps its mode, so one made readable to a container's user stays so
    os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o600)
    os.replace(temporary, path)


def create(
    path: Path, name: str, models: list[str] | None = None, rpm: int | None = None, tpm: int | None = None
) -> str:
    """Append a key and return its plaintext, which is stored nowhere."""
    entries = load(path) if path.exists() else []
    if any(entry.name == name for entry in entries):
        raise KeysFileError(f"a key named {name!r} already exists; revoke it first")
    key = new_key()
    entry = _entry({"name": name, "sha256": digest(key), "models": models, "rpm": rpm, "tpm": tpm}, len(entries))
    save(path, [*entries, entry])
    return key


def revoke(path: Path, name: str) -> None:
    entries = load(path)
    kept = [entry for entry in entries if entry.name != name]
    if len(kept) == len(entries):
        raise KeysFileError(f"no key named {name!r}")
    save(path, kept)
