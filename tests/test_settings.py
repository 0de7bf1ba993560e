"""Settings: the contract's variable names (docs/contract.md), defaults, refusals of values that cannot work, and
the warning for a variable no setting reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import MiB, Settings, unknown_variables


def make(**env: str) -> Settings:
    fields: dict[str, Any] = {"_env_file": None, **env}  # settings by their environment names, no .env read
    return Settings(**fields)


def test_defaults(monkeypatch: pytest.MonkeyPatch):
    for name in ("ACEDATACLOUD_API_TOKEN", "ACEDATACLOUD_API_BASE_URL", "PROXY_HOST", "PROXY_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = make()
    assert settings.token is None
    assert settings.api_base_url == "https://api.acedata.cloud"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert (settings.connect_timeout, settings.read_timeout) == (5, 600)
    assert settings.max_request_bytes == 10 * MiB
    assert (settings.log_level, settings.log_format) == ("info", "text")


def test_reads_design_names_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ACEDATACLOUD_API_TOKEN", "real-token-123")
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("PROXY_EXTRA_MODELS", "gpt-9, gpt-10 ,")
    monkeypatch.setenv("PROXY_LOG_FORMAT", "JSON")
    monkeypatch.setenv("PROXY_READ_TIMEOUT", "1.5")
    settings = make()
    assert settings.token == "real-token-123"
    assert "real-token-123" not in repr(settings)
    assert settings.api_base_url == "http://127.0.0.1:9"
    assert settings.extra_models == ("gpt-9", "gpt-10")
    assert settings.log_format == "json"
    assert settings.read_timeout == 1.5


@pytest.mark.parametrize("token", ["changeme", "your-token-here", "<token>"])
def test_placeholder_token_is_refused(monkeypatch: pytest.MonkeyPatch, token: str):
    monkeypatch.setenv("ACEDATACLOUD_API_TOKEN", token)
    with pytest.raises(ValidationError, match="placeholder"):
        make()


@pytest.mark.parametrize(
    "url", ["ftp://x", "api.acedata.cloud", "https://user:pw@x", "https://:pw@x", "https://x/?q=1", "https://x:99999"]
)
def test_base_url_must_be_an_origin(monkeypatch: pytest.MonkeyPatch, url: str):
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", url)
    with pytest.raises(ValidationError):
        make()


def test_base_url_may_carry_a_path_prefix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", "https://gw.example:8443/acedata/")
    assert make().api_base_url == "https://gw.example:8443/acedata"


def test_credentials_in_the_base_url_are_refused_in_one_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", "https://user:secret@api.acedata.cloud")
    with pytest.raises(ValidationError) as refused:
        make()
    message = refused.value.errors()[0]["msg"]
    assert "credentials in a URL are not accepted" in message
    assert "\n" not in message
    assert "secret" not in message


def test_an_egress_proxy_the_clients_cannot_use_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy.corp:1080")
    with pytest.raises(ValidationError, match="use an http:// proxy URL"):
        make()


def test_keepalive_expiry_defaults_below_five_seconds(monkeypatch: pytest.MonkeyPatch):
    assert make().keepalive_expiry < 5
    monkeypatch.setenv("PROXY_KEEPALIVE_EXPIRY", "2.5")
    assert make().keepalive_expiry == 2.5


@pytest.mark.parametrize(
    ("host", "public"),
    [("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True), ("10.1.2.3", True)],
)
def test_binds_publicly(host: str, public: bool):
    assert make(PROXY_HOST=host).binds_publicly() is public


def test_cors_origins_are_a_list_of_origins(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PROXY_CORS_ORIGINS", "http://localhost:5173, https://tools.example.com/")
    assert make().cors_origins == ("http://localhost:5173", "https://tools.example.com")


@pytest.mark.parametrize("origins", ["localhost:3000", "https://x.example/app", "file:///tmp"])
def test_cors_origin_that_is_not_an_origin_is_refused(monkeypatch: pytest.MonkeyPatch, origins: str):
    monkeypatch.setenv("PROXY_CORS_ORIGINS", origins)
    with pytest.raises(ValidationError, match="PROXY_CORS_ORIGINS"):
        make()


def test_data_dir_defaults_to_the_users_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.delenv("PROXY_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert make().data_dir == tmp_path / "xdg" / "acedata-proxy"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert make().data_dir == tmp_path / ".local" / "share" / "acedata-proxy"
    monkeypatch.setenv("PROXY_DATA_DIR", str(tmp_path / "ledger"))
    assert make().data_dir == tmp_path / "ledger"


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://:pw@cache.example:6380", "unix:///run/r.sock"])
def test_redis_urls_with_a_scheme_are_accepted(url: str):
    assert make(PROXY_REDIS_URL=url).redis_url == url


def test_a_redis_url_without_scheme_is_refused_naming_the_fix():
    with pytest.raises(ValidationError) as caught:
        make(PROXY_REDIS_URL="localhost:6379")
    [error] = caught.value.errors()
    assert "'localhost:6379' is not a Redis URL" in error["msg"]
    assert "(redis://localhost:6379)" in error["msg"]


def test_unknown_variables_are_named_with_the_closest_setting(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("PROXY_LOG_LEVL=debug\nPROXY_PORT=9000\nOTHER=1\n")
    environ = {"PROXY_KEY_FILE": "keys.toml", "proxy_keys_file": "k", "ACEDATACLOUD_TOKEN": "t", "HOME": "/root"}
    assert unknown_variables(environ, env_file) == [
        "ACEDATACLOUD_TOKEN (in the environment) is not a setting: did you mean ACEDATACLOUD_API_TOKEN?",
        "PROXY_KEY_FILE (in the environment) is not a setting: did you mean PROXY_KEYS_FILE?",
        f"PROXY_LOG_LEVL (in {env_file}) is not a setting: did you mean PROXY_LOG_LEVEL?",
    ]
    assert unknown_variables({"PROXY_ZZZZ": "1"}, tmp_path / "none") == [
        "PROXY_ZZZZ (in the environment) is not a setting (docs/configuration.md lists every setting)"
    ]
