"""One default TLS context per test process for every httpx client the tests make.

httpx (and httpx2, under the Agents SDK and google-genai) builds a new `ssl.SSLContext` for every client and
transport, loading the whole CA bundle each time: about 50 ms of CPU, paid by each `httpx.get`, each SDK client and
each client fixture, well over a thousand times a run, although no test speaks TLS with the default trust store
(the TLS tests pass a context of their own, which is left alone)."""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from types import ModuleType

import httpx._transports.default as httpx_transports
import httpx2._transports.default as httpx2_transports
import pytest

MakeContext = Callable[..., ssl.SSLContext]


def reusing(make: MakeContext) -> MakeContext:
    """`make` (httpx's `create_ssl_context`), but the default context is built once per trust settings."""
    made: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}
    lock = threading.Lock()

    def create_ssl_context(verify: object = True, cert: object = None, trust_env: bool = True) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            return make(verify=verify, cert=cert, trust_env=trust_env)
        # the variables it reads: a test that sets them gets a context that trusts what they name
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        with lock:
            if key not in made:
                made[key] = make(verify=verify, cert=cert, trust_env=trust_env)
            return made[key]

    return create_ssl_context


def reuse_default_tls_contexts(patch: pytest.MonkeyPatch) -> None:
    """For as long as `patch` lasts, clients of both httpx packages share their default TLS context."""
    transports: tuple[ModuleType, ...] = (httpx_transports, httpx2_transports)
    for module in transports:
        patch.setattr(module, "create_ssl_context", reusing(module.create_ssl_context))
