"""The client keys file (`PROXY_KEYS_FILE`): TOML `[[keys]]` tables holding each key's SHA-256, never the key.

Reading, writing (atomically: a temporary file renamed over the old one), and creating keys for the CLI.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path

import orjson

from app import tomlfile

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DIGEST = re.compile(r"[0-9a-f]{64}")
PERIODS = ("day", "month")  # budget periods, in UTC
FIELDS = ("name", "sha256", "models", "rpm", "tpm", "budget_tokens", "budget_amount", "budget_period", "admin")


class KeysFileError(ValueError):
    """The keys file cannot be used as it is; the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    name: str
    sha256: str
    models: frozenset[str] | None = None  # None: every model the route accepts
    rpm: int | None = None
    tpm: int | None = None
    budget_tokens: int | None = None  # tokens per budget_period; None: no budget
    budget_period: str = "month"
    admin: bool = False  # may read GET /admin/usage and the dashboard
    budget_amount: float | None = None  # money per budget_period, in the price file's currency; None: no budget

    @property
    def budgeted(self) -> bool:
        return self.budget_tokens is not None or self.budget_amount is not None

    def allows(self, model: str) -> bool:
        """Whether the allowlist admits `model`: a listed name, or a glob pattern it matches (`claude-*`)."""
        if self.models is None or model in self.models:
            return True
        return any(fnmatchcase(model, pattern) for pattern in self.models)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def _integer(raw: dict[str, object], field: str, where: str, least: int) -> int | None:
    value = raw.get(field)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
        kind = "a positive integer" if least > 0 else "a non-negative integer"
        raise KeysFileError(f"{where}: {field} must be {kind}, not {value!r}")
    return value


def _entry(raw: object, index: int) -> KeyEntry:
    """One [[keys]] table, checked strictly: a typo in a budget must not silently mean "no budget"."""
    if not isinstance(raw, dict):
        raise KeysFileError(f"keys[{index}] is not a table")
    name, sha = raw.get("name"), raw.get("sha256")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise KeysFileError(f"keys[{index}]: name must match {NAME.pattern}")
    where = f"keys[{index}] ({name})"
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise KeysFileError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    if not isinstance(sha, str) or not DIGEST.fullmatch(sha):
        raise KeysFileError(f"{where}: sha256 must be 64 lowercase hex digits")
    models = raw.get("models")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        raise KeysFileError(f"{where}: models must be a list of strings")
    rpm, tpm = _integer(raw, "rpm", where, 1), _integer(raw, "tpm", where, 1)
    budget = _integer(raw, "budget_tokens", where, 0)
    period = raw.get("budget_period", "month")
    if period not in PERIODS:
        raise KeysFileError(f'{where}: budget_period must be "day" or "month", not {period!r}')
    amount = raw.get("budget_amount")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount < math.inf
    ):
        raise KeysFileError(f"{where}: budget_amount must be a non-negative number, not {amount!r}")
    if "budget_period" in raw and budget is None and amount is None:
        raise KeysFileError(f"{where}: budget_period is set but neither budget_tokens nor budget_amount is")
    admin = raw.get("admin", False)
    if not isinstance(admin, bool):
        raise KeysFileError(f"{where}: admin must be true or false, not {admin!r}")
    allowed = frozenset(models) if models is not None else None
    money = float(amount) if amount is not None else None
    return KeyEntry(name, sha, allowed, rpm, tpm, budget, str(period), admin, money)


def load(path: Path) -> list[KeyEntry]:
    document = tomlfile.read(path, KeysFileError, "keys file", " (create keys with `acedata-proxy keys create`)")
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
    numbers = (("rpm", entry.rpm), ("tpm", entry.tpm), ("budget_tokens", entry.budget_tokens))
    lines += [f"{field} = {value}" for field, value in numbers if value is not None]
    if entry.budget_amount is not None:
        lines.append(f"budget_amount = {entry.budget_amount!r}")
    if entry.budgeted:
        lines.append(f'budget_period = "{entry.budget_period}"')
    if entry.admin:
        lines.append("admin = true")
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


def create(path: Path, name: str, models: list[str] | None = None, **options: object) -> str:
    """Append a key and return its plaintext, which is stored nowhere. `options`: rpm, tpm, budget_tokens,
    budget_period, admin (checked as the file's own fields are)."""
    entries = load(path) if path.exists() else []
    if any(entry.name == name for entry in entries):
        raise KeysFileError(f"a key named {name!r} already exists; revoke it first")
    key = new_key()
    fields = {"name": name, "sha256": digest(key), "models": models, **options}
    entry = _entry({field: value for field, value in fields.items() if value is not None}, len(entries))
    save(path, [*entries, entry])
    return key


def revoke(path: Path, name: str) -> None:
    entries = load(path)
    kept = [entry for entry in entries if entry.name != name]
    if len(kept) == len(entries):
        raise KeysFileError(f"no key named {name!r}")
    save(path, kept)


def rotate(path: Path, name: str) -> str:
    """Give the key named `name` a new plaintext, keeping its models, limits, budget and admin flag; the old
    plaintext stops working when running gateways re-read the file. Returns the new plaintext."""
    entries = load(path)
    if not any(entry.name == name for entry in entries):
        raise KeysFileError(f"no key named {name!r}")
    key = new_key()
    save(path, [replace(entry, sha256=digest(key)) if entry.name == name else entry for entry in entries])
    return key
