"""Log configuration: text or one JSON object per line, with every known secret redacted from the final text
(messages, fields and tracebacks alike), so no code path can leak the upstream token into a log line."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

from app.settings import Settings

LOGGERS = ("acedata_proxy", "uvicorn", "uvicorn.error", "uvicorn.access")
REDACTED = "[redacted]"


class Formatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str] = ()):
        super().__init__()
        self.fmt = fmt
        self.secrets = tuple(secret for secret in secrets if len(secret) >= 4)

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        text = self._json(record, fields) if self.fmt == "json" else self._text(record, fields)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _text(self, record: logging.LogRecord, fields: dict[str, Any]) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + " ".join(f"{key}={'-' if value is None else value}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def _json(self, record: logging.LogRecord, fields: dict[str, Any]) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(settings: Settings) -> None:
    """Point the gateway's and uvicorn's loggers at one stderr handler; safe to call again (tests do)."""
    handler = logging.StreamHandler(sys.stderr)
    secrets = [settings.token] if settings.token else []
    handler.setFormatter(Formatter(settings.log_format, secrets))
    level = settings.log_level.upper()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if getattr(old, "acedata_proxy", False):
                logger.removeHandler(old)
        handler.acedata_proxy = True  # type: ignore[attr-defined]
        if name in ("acedata_proxy", "uvicorn"):
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(level)
    # uvicorn's own access log is replaced by ours, which knows route, model and key
    logging.getLogger("uvicorn.access").disabled = True
