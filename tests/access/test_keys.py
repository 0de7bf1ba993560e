"""The keys file and `acedata-proxy keys`: hashes only, plaintext printed once, clear refusals."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from app.access import keys
from app.access.keys import KeysFileError
from tests.helpers.cli import cli_in_process


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return cli_in_process("keys", *args, cwd=cwd, env={"PROXY_DATA_DIR": str(cwd / "data")})


def test_create_prints_the_key_once_and_stores_only_its_digest(tmp_path: Path):
    result = cli("create", "--name", "alice", "--models", "gpt-4.1, gpt-4o", "--rpm", "5", "--tpm", "900",
                 "--file", "team.toml", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-")
    assert len(key) > 40
    text = (tmp_path / "team.toml").read_text()
    assert key not in text
    assert keys.digest(key) in text
    assert (tmp_path / "team.toml").stat().st_mode & 0o777 == 0o600
    [entry] = keys.load(tmp_path / "team.toml")
    assert entry == keys.KeyEntry("alice", keys.digest(key), frozenset({"gpt-4.1", "gpt-4o"}), 5, 900)


def test_list_and_revoke(tmp_path: Path):
    for name in ("alice", "bob"):
        assert cli("create", "--name", name, "--file", "k.toml", cwd=tmp_path).returncode == 0
    listing = cli("list", "--file", "k.toml", cwd=tmp_path).stdout
    assert "alice" in listing
    assert "bob" in listing
    assert "sk-" not in listing
    assert cli("revoke", "bob", "--file", "k.toml", cwd=tmp_path).returncode == 0
    assert [e.name for e in keys.load(tmp_path / "k.toml")] == ["alice"]
    again = cli("revoke", "bob", "--file", "k.toml", cwd=tmp_path)
    assert again.returncode != 0
    assert "no key named 'bob'" in again.stderr


def test_a_new_file_is_private_and_a_file_made_readable_stays_so(tmp_path: Path):
    path = tmp_path / "k.toml"
    keys.create(path, "alice")
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # for a container's user (docs/deployment.md, Container image)
    keys.create(path, "bob")
    keys.revoke(path, "alice")
    assert path.stat().st_mode & 0o777 == 0o644


def test_duplicate_names_are_refused(tmp_path: Path):
    path = tmp_path / "k.toml"
    keys.create(path, "alice")
    with pytest.raises(KeysFileError, match="already exists"):
        keys.create(path, "alice")


def test_keys_file_defaults_to_proxy_keys_file(tmp_path: Path):
    (tmp_path / ".env").write_text("PROXY_KEYS_FILE=from-env.toml\n")
    assert cli("create", "--name", "carol", cwd=tmp_path).returncode == 0
    assert [e.name for e in keys.load(tmp_path / "from-env.toml")] == ["carol"]


SHA = "sha256 = '" + "0" * 64 + "'\n"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("budget_tokens = -1\n", "keys[0] (bob): budget_tokens must be a non-negative integer, not -1"),
        ("budget_tokens = 1.5\n", "keys[0] (bob): budget_tokens must be a non-negative integer, not 1.5"),
        ("budget_tokens = '100'\n", "keys[0] (bob): budget_tokens must be a non-negative integer, not '100'"),
        ("budget_tokens = 9\nbudget_period = 'week'\n", 'keys[0] (bob): budget_period must be "day" or "month"'),
        ("budget_period = 'day'\n", "keys[0] (bob): budget_period is set but neither budget_tokens nor"),
        ("budget_amount = -1\n", "keys[0] (bob): budget_amount must be a non-negative number, not -1"),
        ("budget_amount = '5'\n", "keys[0] (bob): budget_amount must be a non-negative number, not '5'"),
        ("budget_amount = inf\n", "keys[0] (bob): budget_amount must be a non-negative number, not inf"),
        ("budget = 100\n", "keys[0] (bob): unknown field 'budget'"),
        ("admin = 'yes'\n", "keys[0] (bob): admin must be true or false"),
    ],
)
def test_budget_and_admin_fields_are_checked_strictly(tmp_path: Path, fields: str, message: str):
    path = tmp_path / "k.toml"
    path.write_text("[[keys]]\nname = 'bob'\n" + SHA + fields)
    with pytest.raises(KeysFileError) as refused:
        keys.load(path)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_budgets_and_admin_round_trip_through_create(tmp_path: Path):
    result = cli("create", "--name", "lead", "--budget-tokens", "50000", "--budget-period", "day", "--admin",
                 "--file", "k.toml", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [entry] = keys.load(tmp_path / "k.toml")
    assert (entry.budget_tokens, entry.budget_period, entry.admin) == (50000, "day", True)
    listing = cli("list", "--file", "k.toml", cwd=tmp_path).stdout.splitlines()
    assert listing[0].split() == [
        "name", "models", "rpm", "tpm", "period", "spent", "budget", "admin", "cost", "budget_amount"
    ]  # fmt: skip
    assert listing[1].split()[4:] == [dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), "0", "50000", "yes", "-", "-"]
    assert listing[-1] == "cost: PROXY_PRICES_FILE unset"
    money = cli("create", "--name", "dev", "--budget-amount", "12.5", "--file", "k.toml", cwd=tmp_path)
    assert money.returncode == 0, money.stderr
    assert keys.load(tmp_path / "k.toml")[1].budget_amount == 12.5
    assert cli("list", "--file", "k.toml", cwd=tmp_path).stdout.splitlines()[2].split()[-2:] == ["-", "12.50"]
    refused = cli("create", "--name", "x", "--budget-tokens", "-3", "--file", "k.toml", cwd=tmp_path)
    assert refused.returncode != 0
    assert "budget_tokens must be a non-negative integer" in refused.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[keys]]\nname = 'a b'\nsha256 = '" + "0" * 64 + "'\n", "name must match"),
        ("[[keys]]\nname = 'a'\nsha256 = 'sk-plaintext'\n", "sha256 must be 64"),
        ("[[keys]]\nname = 'a'\nsha256 = '" + "0" * 64 + "'\nrpm = 0\n", "rpm must be a positive integer"),
        ("[[keys]]\nname = 'a'\nsha256 = '" + "0" * 64 + "'\nmodels = 'gpt-4.1'\n", "models must be a list"),
        ("keys = [", "cannot be read"),
        ("[[keys]]\nname='a'\nsha256='" + "0" * 64 + "'\n[[keys]]\nname='a'\nsha256='" + "1" * 64 + "'\n", "unique"),
    ],
)
def test_invalid_files_are_refused_with_the_reason(tmp_path: Path, text: str, message: str):
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(KeysFileError, match=message):
        keys.load(path)
