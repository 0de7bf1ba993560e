"""Every setting the gateway reads, by the names in DESIGN.md (environment variables, also read from `.env`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024

# Values a copied `.env.example` would carry: refusing them beats spending a day on upstream 401s.
PLACEHOLDER_TOKENS = frozenset({"", "changeme", "change-me", "your-token-here", "<token>", "sk-..."})


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


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
    max_request_bytes: int = Field(10 * MiB, ge=1, validation_alias=_env("PROXY_MAX_REQUEST_BYTES"))
    keys_file: Path | None = Field(None, validation_alias=_env("PROXY_KEYS_FILE"))
    redis_url: str | None = Field(None, validation_alias=_env("PROXY_REDIS_URL"))
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", validation_alias=_env("PROXY_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("PROXY_LOG_FORMAT"))
    extra_models: Annotated[tuple[str, ...], NoDecode] = Field((), validation_alias=_env("PROXY_EXTRA_MODELS"))
    allow_any_model: bool = Field(False, validation_alias=_env("PROXY_ALLOW_ANY_MODEL"))
    allow_unauthenticated: bool = Field(False, validation_alias=_env("PROXY_ALLOW_UNAUTHENTICATED"))
    rate_limit_fail_open: bool = Field(False, validation_alias=_env("PROXY_RATE_LIMIT_FAIL_OPEN"))
    tpm_output_reservation: int = Field(1024, ge=0, validation_alias=_env("PROXY_TPM_OUTPUT_RESERVATION"))
    # forwarded requests and streams one worker holds at once; beyond it 503 `overloaded` (None: no limit)
    max_inflight: int | None = Field(None, ge=1, validation_alias=_env("PROXY_MAX_INFLIGHT"))
    # SIGTERM: stop accepting, let in-flight requests and streams finish for this long, then cut them and exit
    shutdown_grace: float = Field(30.0, ge=0, validation_alias=_env("PROXY_SHUTDOWN_GRACE"))

    @field_validator("api_token", mode="after")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_TOKENS:
            raise ValueError("ACEDATACLOUD_API_TOKEN is a placeholder; set the real token or leave it unset")
        return value

    @field_validator("api_base_url", mode="after")
    @classmethod
    def _origin_only(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("ACEDATACLOUD_API_BASE_URL must be an http(s) origin, e.g. https://api.acedata.cloud")
        if parts.query or parts.fragment or parts.username:
            raise ValueError("ACEDATACLOUD_API_BASE_URL takes no query, fragment or credentials")
        return value.strip().rstrip("/")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("extra_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

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
