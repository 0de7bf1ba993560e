"""Log configuration: text or one JSON object per line, with every known secret redacted from the final text
(messages, fields and tracebacks alike), so no code path can leak the upstream token into a log line."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson

from app.settings import Settings

LOGGERS = ("acedata_proxy", "uvicorn", "uvicorn.error", "uvicorn.access")
REDACTED = "[redacted]"
# credentials a library may print (a request's headers at debug level): the client's key, cookies, tokens
CREDENTIALS = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\bcookie|\bset-cookie|\bx-api-key|\bapi-key)(['\"]?\s*[:=,]\s*b?['\"]?)[^'\"\r\n]+"
    r"|\bbearer\s+[^\s'\"]+"
)


class Formatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str] = ()):
        super().__init__()
        self.fmt = fmt
        self.secrets = tuple(secret for secret in secrets if len(secret) >= 4)
        self._second, self._stamp = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        exception = self.formatException(record.exc_info) if record.exc_info else None
        line = self.line(record.created, record.levelname, record.name, record.getMessage(), fields, exception)
        # not on the access log's own path (app/logs.AccessLog.write): its fields name keys, never carry them
        return CREDENTIALS.sub(lambda match: (match.group(1) or "") + (match.group(2) or "") + REDACTED, line)

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any],
        exception: str | None,
        access: bool = False,
    ) -> str:
        """The record as one line (more with an exception). `access`: the fields are an access line's, which
        begin with ACCESS_FIELDS."""
        if self.fmt == "json":
            entry: dict[str, Any] = {
                "ts": round(created, 3),
                "level": level.lower(),
                "logger": logger,
                "message": message,
                **fields,
            }
            if exception:
                entry["exception"] = exception
            text = orjson.dumps(entry, default=str).decode()
        else:
            text = f"{self._timestamp(created)} {level:<7} {logger}: {message}"
            if fields:
                text += " " + (_access_text(fields) if access else _fields_text(fields))
            if exception:
                text += "\n" + exception
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime a second, not one a line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        return self._stamp


def _fields_text(fields: dict[str, Any]) -> str:
    return " ".join([f"{key}={_text_value(value)}" for key, value in fields.items()])


# The fields every access line begins with (app/middleware/observe.py), in order. Of their values only the path and
# the model are a client's text; the others are numbers, labels of the route table, a request id that was
# checked against a token pattern and a key name that was checked likewise (app/access/keys.py): no quoting.
ACCESS_FIELDS = ("method", "path", "route", "model", "status", "duration_ms", "bytes", "request_id", "key")
_ACCESS_COUNT = len(ACCESS_FIELDS)


def _access_text(fields: dict[str, Any]) -> str:
    """What _fields_text writes for an access line, its common fields in one f-string: a loop over every field
    costs twice as much, on every request (tests/test_logs.py holds the two to the same text)."""
    f = fields
    text = (
        f"method={f['method']} path={_text_value(f['path'])} route={f['route']} model={_text_value(f['model'])} "
        f"status={f['status']} duration_ms={f['duration_ms']} bytes={f['bytes']} request_id={f['request_id']} "
        f"key={'-' if f['key'] is None else f['key']}"
    )
    if len(f) == _ACCESS_COUNT:
        return text
    if len(f) == _ACCESS_COUNT + 2 and "tokens_out" in f:  # a forwarded request's usage (numbers)
        return f"{text} tokens_in={f['tokens_in']} tokens_out={f['tokens_out']}"
    return text + " " + _fields_text({key: f[key] for key in tuple(f)[_ACCESS_COUNT:]})


def _text_value(value: Any) -> str:
    """A field's value in the text format: quoted when it has spaces, `=` or quotes, so that no value (a path,
    a model) can read as fields of its own."""
    if value is None:
        return "-"
    if type(value) is not str:  # numbers and flags: nothing to quote
        return str(value)
    if " " not in value and "=" not in value and '"' not in value and "\t" not in value:
        return value
    text = value
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class CoalescingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Access lines logged during one event-loop iteration leave in one write (`queue`): under load one syscall
    carries many; at rest a line is written at the end of the iteration that logged it. Every other record is
    written at once, after the queued lines: a worker that dies right after logging (uvicorn re-raises SIGTERM
    once it has shut down) must not take its last lines with it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            lines, self.pending = self.pending, []
            self._write([*lines, self.format(record)])
            self.stream.flush()
        except Exception:
            self.handleError(record)

    def queue(self, line: str) -> None:
        """Write `line` at the end of this loop iteration, with the others logged in it (hold self.lock)."""
        if not self.pending:  # the first line of this iteration schedules the write (asking for the loop costs
            try:  # a getpid() system call, so only the first asks)
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self._write([line])
                return
        self.pending.append(line)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self.pending = self.pending, []
            if lines:
                self._write(lines)
            super().flush()

    def _write(self, lines: list[str]) -> None:
        self.stream.write("\n".join(lines) + "\n")


class AccessLog:
    """One line per request. The hot path skips the LogRecord machinery when the line would only reach our own
    handler anyway (the usual case); anything else (a test's handler, a filter) gets an ordinary record."""

    def __init__(self, handler: CoalescingHandler):
        self.logger = logging.getLogger("acedata_proxy.access")
        self.handler = handler
        self.formatter: Formatter = handler.formatter  # type: ignore[assignment]

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def write(self, fields: dict[str, Any]) -> None:
        parent = self.logger.parent
        if self.logger.handlers or self.logger.filters or parent is None or parent.handlers != [self.handler]:
            self.logger.info("request", extra={"fields": fields})
            return
        line = self.formatter.line(time.time(), "INFO", self.logger.name, "request", fields, None, access=True)
        with self.handler.lock:  # type: ignore[union-attr]
            self.handler.queue(line)


def configure(settings: Settings) -> AccessLog:
    """Point the gateway's and uvicorn's loggers at one stderr handler; safe to call again (tests do)."""
    handler = CoalescingHandler()
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
    return AccessLog(handler)
