"""Every setting the gateway reads, by the names in docs/contract.md (environment variables, also read from
`.env`), and the warning for a variable that looks like one but is not."""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.clients.origin import OriginError, parse_origin, proxy_for

MiB = 1024 * 1024

# Values a copied `.env.example` would carry: refusing them beats spending a day on upstream 401s.
PLACEHOLDER_TOKENS = frozenset({"", "changeme", "change-me", "your-token-here", "<token>", "sk-..."})
# the URL schemes redis-py opens; anything else (a bare host:port) fails deep inside the client
REDIS_SCHEMES = ("redis", "rediss", "unix")
# the prefixes of this project's variables: a name with one of them that no setting reads is most likely a typo
PREFIXES = ("PROXY_", "ACEDATACLOUD_")


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def default_data_dir() -> Path:
    """The per-user data directory (XDG): $XDG_DATA_HOME/acedata-proxy, else ~/.local/share/acedata-proxy."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "acedata-proxy"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `TOKEN=` in compose files means unset, not a token
        extra="ignore",
        populate_by_name=True,
    )

    api_token: SecretStr | None = Field(None, validation_alias=_env("ACEDATACLOUD_API_TOKEN"))
    api_base_url: str = Field("https://api.acedata.cloud", validation_alias=_env("ACEDATACLOUD_API_BASE_URL"))
    host: str = Field("127.0.0.1", validation_alias=_env("PROXY_HOST"))
    port: int = Field(8000, ge=0, le=65535, validation_alias=_env("PROXY_PORT"))
    workers: int = Field(1, ge=1, le=64, validation_alias=_env("PROXY_WORKERS"))
    connect_timeout: float = Field(5.0, gt=0, validation_alias=_env("PROXY_CONNECT_TIMEOUT"))
    read_timeout: float = Field(600.0, gt=0, validation_alias=_env("PROXY_READ_TIMEOUT"))
    # None: the read timeout. Separate because a model may think long before its first byte, then stream fast.
    first_byte_timeout_setting: float | None = Field(None, gt=0, validation_alias=_env("PROXY_FIRST_BYTE_TIMEOUT"))
    connect_retries: int = Field(2, ge=0, le=5, validation_alias=_env("PROXY_CONNECT_RETRIES"))
    upstream_client: Literal["http1", "httpx"] = Field("http1", validation_alias=_env("PROXY_UPSTREAM_CLIENT"))
    max_connections: int = Field(1000, ge=1, validation_alias=_env("PROXY_MAX_CONNECTIONS"))
    max_keepalive_connections: int = Field(200, ge=0, validation_alias=_env("PROXY_MAX_KEEPALIVE_CONNECTIONS"))
    # below the 5 s idle timeout common upstream servers close at, so the gateway lets go first
    keepalive_expiry: float = Field(4.0, gt=0, validation_alias=_env("PROXY_KEEPALIVE_EXPIRY"))
    max_request_bytes: int = Field(10 * MiB, ge=1, validation_alias=_env("PROXY_MAX_REQUEST_BYTES"))
    keys_file: Path | None = Field(None, validation_alias=_env("PROXY_KEYS_FILE"))
    prices_file: Path | None = Field(None, validation_alias=_env("PROXY_PRICES_FILE"))  # money: docs/dashboard.md
    redis_url: str | None = Field(None, validation_alias=_env("PROXY_REDIS_URL"))
    # the embedded usage ledger (SQLite) lives here; with PROXY_REDIS_URL the ledger is in Redis instead
    data_dir: Path = Field(default_factory=default_data_dir, validation_alias=_env("PROXY_DATA_DIR"))
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", validation_alias=_env("PROXY_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("PROXY_LOG_FORMAT"))
    extra_models: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias=_env("PROXY_EXTRA_MODELS"))
    allow_any_model: bool = Field(False, validation_alias=_env("PROXY_ALLOW_ANY_MODEL"))
    # glob patterns of the model ids the Anthropic Messages routes accept beyond the catalog's Claude models
    anthropic_models: Annotated[tuple[str, ...], NoDecode] = Field(
        ("claude-*",), validation_alias=_env("PROXY_ANTHROPIC_MODELS")
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias=_env("PROXY_CORS_ORIGINS"))
    allow_unauthenticated: bool = Field(False, validation_alias=_env("PROXY_ALLOW_UNAUTHENTICATED"))
    rate_limit_fail_open: bool = Field(False, validation_alias=_env("PROXY_RATE_LIMIT_FAIL_OPEN"))
    tpm_output_reservation: int = Field(1024, ge=0, validation_alias=_env("PROXY_TPM_OUTPUT_RESERVATION"))
    # forwarded requests and streams one worker holds at once; beyond it 503 `overloaded` (None: no limit)
    max_inflight: int | None = Field(None, ge=1, validation_alias=_env("PROXY_MAX_INFLIGHT"))
    # GET /metrics on this port of PROXY_HOST instead of the gateway's own (None: on the gateway's port, and
    # only for admin keys when a keys file is set)
    metrics_port: int | None = Field(None, ge=0, le=65535, validation_alias=_env("PROXY_METRICS_PORT"))
    # a client's request head must arrive within this long; its body within this plus a second per 16 KiB
    head_timeout: float = Field(5.0, gt=0, le=60, validation_alias=_env("PROXY_HEAD_TIMEOUT"))
    # SIGTERM: stop accepting, let in-flight requests and streams finish for this long, then cut them and exit
    shutdown_grace: float = Field(30.0, ge=0, validation_alias=_env("PROXY_SHUTDOWN_GRACE"))

    @field_validator("api_token", mode="after")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_TOKENS:
            raise ValueError("a placeholder, not a token: set the real token or leave it unset")
        return value

    @field_validator("api_base_url", mode="after")
    @classmethod
    def _usable_base_url(cls, value: str) -> str:
        """An http(s) URL, optionally with a path prefix (joined with every route's path), no credentials; and
        an egress proxy (HTTPS_PROXY, ...) both clients can use for it."""
        try:
            proxy_for(parse_origin(value.strip()))
        except OriginError as exc:
            raise ValueError(str(exc)) from None
        return value.strip().rstrip("/")

    @field_validator("redis_url", mode="after")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in REDIS_SCHEMES:
            schemes = ", ".join(f"{scheme}://" for scheme in REDIS_SCHEMES)
            raise ValueError(f"{value!r} is not a Redis URL: it starts with one of {schemes} (redis://{value})")
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("extra_models", "cors_origins", "anthropic_models", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("cors_origins", mode="after")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/")):
                raise ValueError(f"PROXY_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com")
        return tuple(origin.rstrip("/") for origin in value)

    @property
    def first_byte_timeout(self) -> float:
        return self.first_byte_timeout_setting or self.read_timeout

    @property
    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token is not None else None

    def binds_publicly(self) -> bool:
        """True when `host` is reachable from other machines (anything but loopback)."""
        if self.host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return True


def variable_names() -> dict[str, str]:
    """Each setting's environment variable, by field name."""
    names = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        first = alias.choices[0] if isinstance(alias, AliasChoices) else None
        names[name] = first if isinstance(first, str) else name.upper()
    return names


def _unprefixed(name: str) -> str:
    return next((name.removeprefix(prefix) for prefix in PREFIXES if name.startswith(prefix)), name)


def unknown_variables(environ: Mapping[str, str], env_file: Path = Path(".env")) -> list[str]:
    """One warning per PROXY_* or ACEDATACLOUD_* variable (in the environment or `env_file`) that no setting
    reads, with the closest known name: a misspelled PROXY_KEYS_FILE would otherwise start an open gateway."""
    known = set(variable_names().values())
    bare = {_unprefixed(name): name for name in known}
    names = {name: "the environment" for name in environ}
    if env_file.is_file():
        names.update((name, str(env_file)) for name in dotenv_values(env_file) if name not in names)
    warnings = []
    for name, where in sorted(names.items()):
        upper = name.upper()
        if upper.startswith(PREFIXES) and upper not in known:
            hint = " (docs/configuration.md lists every setting)"
            close = difflib.get_close_matches(_unprefixed(upper), bare, n=1, cutoff=0.6)  # the prefix matches all
            if close:
                hint = f": did you mean {bare[close[0]]}?"
            warnings.append(f"{name} (in {where}) is not a setting{hint}")
    return warnings
