"""What the gateway learns about one request while serving it, shared by the endpoint, logs and metrics."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from app.errors import Envelope
from app.proxy.headers import header
from app.proxy.usage import NO_TOKENS, Owner, TextMeter, Tokens
from app.types import Scope

SCOPE_KEY = "acedata_proxy.request"
WATCH_KEY = "acedata_proxy.disconnect"  # the scope's DisconnectWatch, when the server provides one
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    route: str = "other"
    envelope: Envelope = "openai"  # the error envelope of the route (resolved with it, before anything can fail)
    model: str | None = None
    model_label: str = "other"  # bounded: a documented or configured model, else "other"
    key_name: str | None = None
    status: int = 0
    bytes_out: int = 0
    upstream_ttfb: float | None = None
    upstream_error: str | None = None  # connect, timeout, reset, protocol, status
    client_disconnected: bool = False
    rate_limited: bool = False
    overloaded: bool = False  # refused by PROXY_MAX_INFLIGHT
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # added to whatever answers
    input_tokens: int | None = None  # the upstream's reported usage, when its answer carried one
    output_tokens: int | None = None
    units: int | None = None  # the route's billing units as the upstream reported them (a transcription's seconds)
    estimate: Tokens = NO_TOKENS  # what admission reserved: the body's size in tokens and its output cap
    text: TextMeter | None = None  # the generated text relayed, on routes that measure it
    deferred: bool = False  # a background response's creation: its usage is charged when it completes
    charged: Tokens | None = None  # app.proxy.usage.charge's verdict, set once when the request ends
    # who the charge belongs to when it is not this request's key: a background response's creator
    charged_to: Owner | None = None
    budget_remaining: int | None = None  # the key's budget left once this request settled, when it has one


class _Ids:
    """Fresh request ids: a random prefix per process and a counter, unique without a uuid4 per request."""

    def __init__(self) -> None:
        self.prefix = ""
        self.counter = itertools.count()
        os.register_at_fork(after_in_child=self.forget)  # a forked child draws a prefix of its own

    def forget(self) -> None:
        self.prefix = ""

    def __next__(self) -> str:
        if not self.prefix:
            self.prefix = uuid.uuid4().hex[:16]
        return f"{self.prefix}{next(self.counter):016x}"


_ids = _Ids()


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's x-request-id when it is a sane token, else a fresh one (never echo arbitrary bytes)."""
    value = header(headers, b"x-request-id")
    return value.decode() if value is not None and _VALID_REQUEST_ID.fullmatch(value) else next(_ids)


def request_info(scope: Scope) -> RequestInfo:
    info: RequestInfo | None = scope.get(SCOPE_KEY)
    if info is None:
        info = scope[SCOPE_KEY] = RequestInfo(request_id_from(scope.get("headers", [])))
    return info


class DisconnectWatch:
    """Cancels a request's task when its client's connection is lost, until the final byte is handed over.

    The serving layer (app/serving/protocol.py) puts one in each request's scope and trips it from the
    connection's own connection_lost, so no task per request has to wait on receive() for the disconnect
    (that task cost ~30 µs a request, docs/performance-steps.md). Elsewhere (an in-process ASGI client) the
    endpoint runs such a task itself, app/proxy/forward.py's `_Watch`."""

    __slots__ = ("disconnected", "finished", "lost", "resume_reading", "task")

    def __init__(self, resume_reading: Callable[[], None]):
        self.resume_reading = resume_reading  # the client's close is seen only while its socket is read
        self.task: asyncio.Task[None] | None = None
        self.lost = False
        self.disconnected = False  # the task was cancelled for it
        self.finished = False

    def arm(self, task: asyncio.Task[None]) -> None:
        self.task = task
        if self.lost:
            self.trip()
        else:
            self.resume_reading()

    def finish(self) -> None:
        """The final byte is handed over: nothing cancels the task any more, and the watch, which the connection
        keeps until its next request, no longer keeps the task."""
        self.finished = True
        self.task = None

    def trip(self) -> None:
        """The client's connection is gone."""
        self.lost = True
        if self.task is not None and not self.finished and not self.disconnected:
            self.disconnected = True
            self.task.cancel()
