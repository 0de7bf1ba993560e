"""Running the gateway under uvicorn: `serve` (one or more workers), `demo` (gateway + fake upstream in one
process, on loopback), and the fake upstream alone (for benchmarks)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from app import logs
from app.access import keys
from app.ledger import open_store
from app.metrics import multiprocess_dir, prepare_multiprocess_dir
from app.serving import heap
from app.serving.address import claimed
from app.serving.limits import ClientLimits
from app.serving.protocol import EnvelopeHttpToolsProtocol
from app.settings import Settings
from app.types import ASGIApp

log = logging.getLogger("acedata_proxy.server")

# uvloop sets TCP_NODELAY on accepted sockets; with asyncio's loop and several workers, responses waited for the
# client's delayed ACK (~40 ms each; https://github.com/encode/uvicorn/issues/3149), so the fast loop is also the
# correct one.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "log_config": None,
    "access_log": False,
    "lifespan": "on",
    "server_header": False,
    # no websockets are served: an upgrade request is an ordinary request (the websocket libraries' debug output
    # printed every header of one, authorization included)
    "ws": "none",
    # nothing here reads the client's address or scheme, so uvicorn's X-Forwarded-* rewriting would only add a
    # middleware frame to every request (and let a forwarded header change what the scope says)
    "proxy_headers": False,
}


BACKLOG = 2048  # uvicorn's default, per listening socket
APP_FACTORY = "app.serving.server:worker_app"  # by import string: each worker process builds its own app


def worker_app() -> ASGIApp:
    """What each worker serves: the app, built in the worker, then the worker's collector tuned (app/serving/heap.py).
    In-process uses of create_app (tests, embedding) keep the interpreter's collector as it was."""
    from app.main import create_app  # in the worker: the process that parses the command line needs no app

    app = create_app()
    heap.tune_for_serving()
    return app


class UnsafeBind(Exception):
    """Refusing to serve an open relay."""


def check_bind(settings: Settings) -> None:
    if settings.binds_publicly() and settings.keys_file is None and not settings.allow_unauthenticated:
        raise UnsafeBind(
            f"Refusing to listen on {settings.host} without PROXY_KEYS_FILE: anyone who can reach it would "
            "spend the team's AceData balance. Create keys (acedata-proxy keys create) or set "
            "PROXY_ALLOW_UNAUTHENTICATED=true if something else guards this address."
        )


def check_limits_are_shared(settings: Settings) -> None:
    """In-process limits are per worker: N workers would admit N times a key's RPM/TPM or budget."""
    if settings.workers == 1 or settings.keys_file is None or settings.redis_url:
        return
    if any(entry.rpm or entry.tpm or entry.budgeted for entry in keys.load(settings.keys_file)):
        raise UnsafeBind(
            f"Refusing to start {settings.workers} workers with rate-limited keys and no PROXY_REDIS_URL: each "
            "worker would count limits on its own and admit up to that many times each key's RPM/TPM/budget. "
            "Set PROXY_REDIS_URL (limits exact across workers and replicas) or run one worker."
        )


def exit_quietly_on_signals() -> None:
    """uvicorn shuts down gracefully, then re-raises the signal it caught; make that an ordinary exit
    (0 for SIGTERM: a requested stop that completed) instead of a death by signal or a traceback."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))


def gateway_options(settings: Settings) -> dict[str, Any]:
    """UVICORN_OPTIONS for the gateway itself: requests the HTTP parser refuses get the error envelope, and
    SIGTERM drains (stop accepting, let in-flight requests and streams finish for up to PROXY_SHUTDOWN_GRACE
    seconds, then cancel what is left and exit). uvicorn types that timeout as int but hands it to
    asyncio.wait_for, so fractions of a second work too."""
    return {
        **UVICORN_OPTIONS,
        "http": functools.partial(EnvelopeHttpToolsProtocol, limits=ClientLimits(settings.head_timeout)),
        "timeout_graceful_shutdown": settings.shutdown_grace,
    }


def serve(settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve on `sock` when one was handed over (`--fd`), else claim and bind settings.host and settings.port."""
    check_bind(settings)
    check_limits_are_shared(settings)
    sockets = [sock] if sock is not None else None
    port = settings.port if sock is None else 0  # a handed-over socket (--fd) is its owner's to guard
    if sockets is None and port == 0:  # the kernel picks a fresh port: claimed once known, nothing to probe
        sockets = listening_sockets(settings.host, 0)
        port = sockets[0].getsockname()[1]
    with claimed(settings.host, port, probe=settings.port != 0):
        if not settings.redis_url:
            open_store(settings).close()  # an unwritable PROXY_DATA_DIR stops the start here, in one line
        exit_quietly_on_signals()
        _serve(settings, sockets)


def _serve(settings: Settings, sockets: list[socket.socket] | None) -> None:
    # worker processes build their own Settings from the environment: hand them the command line's choices
    os.environ.update(PROXY_HOST=settings.host, PROXY_PORT=str(settings.port), PROXY_WORKERS=str(settings.workers))
    logs.configure(settings)
    sockets = sockets or listening_sockets(settings.host, settings.port)
    log_listening(sockets[0])
    if settings.workers > 1:
        ours = multiprocess_dir() is None  # a directory of our own making is removed on the way out
        directory = prepare_multiprocess_dir()
        log.info("metrics of %d workers merge in %s", settings.workers, directory)
        try:
            _serve_workers(settings, sockets)
        finally:
            if ours:
                shutil.rmtree(directory, ignore_errors=True)
        return
    config = uvicorn.Config(
        APP_FACTORY, factory=True, host=settings.host, port=settings.port, **gateway_options(settings)
    )
    server = uvicorn.Server(config)
    # a handed-over socket (--fd) is served as it is; uvicorn's own fd option would read it as a Unix socket
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run does: a gateway that never served is a failed start


# uvloop takes one connection per listening socket per loop iteration, so a worker whose loop never idles (a
# thousand streams relayed at once) accepted ~50 connections a second: new streams waited tens of seconds in the
# listen queue, or were reset, and a PROXY_MAX_INFLIGHT refusal came as late. With this many sockets on the
# address (SO_REUSEPORT: the kernel spreads connections over them) it takes that many per iteration.
LISTENERS = 16


def listening_sockets(host: str, port: int, count: int = LISTENERS) -> list[socket.socket]:
    """`count` sockets listening on one address (port 0: the first one's port for all), or one socket where
    SO_REUSEPORT is missing. Only processes of the same user may join such an address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    for _ in range(count if hasattr(socket, "SO_REUSEPORT") else 1):
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto: see loopback_socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            for other in sockets:
                other.close()
            raise
        port = sock.getsockname()[1]
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


class _DrainingSupervisor(Multiprocess):
    """uvicorn's worker supervisor, closing its own copy of the listening socket before it stops the workers.
    Otherwise, while the workers drain, the kernel keeps accepting connections into the backlog of that copy:
    clients would wait on a gateway that is going away, then be reset when it exits, instead of being refused
    at once and retrying elsewhere."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def _serve_workers(settings: Settings, sockets: list[socket.socket]) -> None:
    """What `uvicorn.run(workers=N)` does, with the supervisor above."""
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        **gateway_options(settings),
    )
    _DrainingSupervisor(config, sockets=sockets).run()


def log_listening(sock: socket.socket) -> None:
    """The gateway's URL, logged once per start (uvicorn says nothing when it is handed sockets)."""
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%d", f"[{host}]" if ":" in host else host, port)


def loopback_socket(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    # proto given explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto is IPPROTO_TCP, and
    # without it every response written in two parts waits ~40 ms for the peer's delayed ACK
    # (https://github.com/encode/uvicorn/issues/3149)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
