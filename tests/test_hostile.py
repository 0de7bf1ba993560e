"""Hostile input over raw sockets (httpx would refuse or normalise most of it): oversized and endless bodies,
wrong content types, pathological JSON, header injection, path tricks, wrong methods.

Whatever arrives, the gateway answers it with a status below 500 in the OpenAI error envelope, forwards
nothing, and never reaches any upstream path but the route's own. (Field-by-field validation is in
tests/routes/test_validation.py.)
"""

from __future__ import annotations

import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import (
    CLIENT_KEY,
    GatewayFactory,
    GatewayProcess,
    LogReader,
    RawResponse,
    assert_no_secrets,
    raw_exchange,
    read_response,
    rss_bytes,
    start_gateway,
    stop_gateway,
)

BODY = b'{"model":"gpt-4.1","input":"hi"}'
SMALL_LIMIT = 4096


@pytest.fixture(scope="module", autouse=True)  # autouse: measured before the module's first test
def log_of_this_module(gateway: GatewayProcess) -> LogReader:
    """The shared gateway's log from before the first hostile request (other modules' tests write to it too,
    some with expected tracebacks, e.g. a JSON body the upstream cut)."""
    return gateway.log_from_now()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[GatewayProcess]:
    """A gateway with a small body limit, so that bodies past it are cheap to send."""
    env = {**gateway_env, "PROXY_MAX_REQUEST_BYTES": str(SMALL_LIMIT)}
    process = start_gateway(tmp_path_factory.mktemp("small"), env)
    yield process
    stop_gateway(process)


def request(
    method: str = "POST",
    target: str = "/openai/responses",
    body: bytes = BODY,
    headers: bytes = b"content-type: application/json\r\n",
) -> bytes:
    length = f"content-length: {len(body)}\r\n".encode() if body or method == "POST" else b""
    return f"{method} {target} HTTP/1.1\r\nhost: localhost\r\n".encode() + headers + length + b"\r\n" + body


def send(gateway: GatewayProcess, raw: bytes, head: bool = False) -> RawResponse:
    response = raw_exchange(gateway.port, raw, head=head)
    assert_no_secrets(repr(response.headers).encode() + response.body, "a response to hostile input")
    return response


def assert_refused(response: RawResponse, fake: FakeUpstream, status: int, code: str) -> None:
    """The gateway's own error, in the envelope, and nothing went upstream."""
    assert response.status == status, response.body
    assert fake.exchanges == [], f"forwarded to the upstream: {[e.body[:80] for e in fake.exchanges]}"
    assert response.header("content-type") == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code
    assert error["message"]


def assert_forwarded_to(fake: FakeUpstream, path: str, body: bytes = BODY) -> None:
    [exchange] = fake.exchanges
    assert (exchange.path, exchange.query, exchange.body) == (path, b"", body)


# --- oversized bodies ----------------------------------------------------------------------------------------


def test_content_length_over_the_limit_is_refused_before_the_body_is_sent(gateway: GatewayProcess, fake: FakeUpstream):
    """A gigabyte announced, not one byte of it sent: the 413 comes at once (default 10 MiB limit)."""
    raw = request(body=b"")[: -len(b"content-length: 0\r\n\r\n")] + b"content-length: 1073741824\r\n\r\n"
    started = time.monotonic()
    response = send(gateway, raw)
    assert time.monotonic() - started < 2
    assert_refused(response, fake, 413, "request_too_large")


def test_content_length_just_over_the_limit(small: GatewayProcess, fake: FakeUpstream):
    body = b'{"model":"gpt-4.1","input":"' + b"x" * (SMALL_LIMIT - 29) + b'"}'
    assert len(body) == SMALL_LIMIT + 1
    assert_refused(send(small, request(body=body)), fake, 413, "request_too_large")


def test_a_body_at_the_limit_is_forwarded(small: GatewayProcess, fake: FakeUpstream):
    body = b'{"model":"gpt-4.1","input":"' + b"x" * (SMALL_LIMIT - 30) + b'"}'
    assert len(body) == SMALL_LIMIT
    assert send(small, request(body=body)).status == 200
    assert_forwarded_to(fake, "/openai/responses", body)


def test_chunked_body_growing_past_the_limit_is_refused_midway(small: GatewayProcess, fake: FakeUpstream):
    """No content-length to refuse up front: the gateway counts as chunks arrive and answers 413 once past the
    limit, while the client is still sending (the body never ends here)."""
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        head = b"POST /openai/responses HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        sock.sendall(head + b"transfer-encoding: chunked\r\n\r\n")
        chunk = b"x" * 1024
        for _ in range(SMALL_LIMIT // len(chunk) + 1):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        response = read_response(sock)  # the terminating chunk was never sent
    assert_refused(response, fake, 413, "request_too_large")


def test_huge_json_under_the_limit_is_forwarded_byte_for_byte(gateway: GatewayProcess, fake: FakeUpstream):
    body = orjson.dumps({"model": "gpt-4.1", "input": [{"role": "user", "content": "y" * 1000}] * 9000})
    assert 9_000_000 < len(body) < 10 * 1024 * 1024
    assert send(gateway, request(body=body)).status == 200
    assert_forwarded_to(fake, "/openai/responses", body)


# --- content types and bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x", b"text/json", b"application/jsonx",
     b"application/xml", b"", b"application/json-patch", b"*/*"],
)  # fmt: skip
def test_wrong_content_types_are_refused(gateway: GatewayProcess, fake: FakeUpstream, content_type: bytes):
    response = send(gateway, request(headers=b"content-type: " + content_type + b"\r\n"))
    assert_refused(response, fake, 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type", [b"application/json; charset=utf-8", b"APPLICATION/JSON", b"application/merge-patch+json"]
)
def test_json_content_types_in_other_spellings_pass(gateway: GatewayProcess, fake: FakeUpstream, content_type: bytes):
    assert send(gateway, request(headers=b"content-type: " + content_type + b"\r\n")).status == 200
    assert_forwarded_to(fake, "/openai/responses")


def test_conflicting_content_types_never_forward_what_was_not_checked(gateway: GatewayProcess, fake: FakeUpstream):
    """Two content-type headers: the gateway must not check one and forward the other. Refusing the request is
    fine; so is forwarding exactly the content type it checked."""
    headers = b"content-type: application/json\r\ncontent-type: text/plain\r\n"
    response = send(gateway, request(headers=headers))
    if response.status == 400:
        assert_refused(response, fake, 400, "invalid_request")
        return
    assert response.status == 200
    [exchange] = fake.exchanges
    forwarded = [value for name, value in exchange.headers if name == b"content-type"]
    assert forwarded == [b"application/json"], forwarded


NOT_JSON_OBJECTS = [
    pytest.param(b'{"model":"gpt-4.1","input":"hi","x":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
                 id="objects-50000-deep"),
    pytest.param(b'{"model":"gpt-4.1","input":"hi","tools":[' + b"[" * 50_000 + b"]" * 50_000 + b"]}",
                 id="arrays-50000-deep"),
    pytest.param(b'{"model":"gpt-4.1","input":"\xc0\xaf"}', id="overlong-utf8"),
    pytest.param(b'{"model":"gpt-4.1","in\xffput":"hi"}', id="invalid-utf8-in-a-key"),
    pytest.param(b'{"model":"gpt-4.1","input":"\xed\xa0\x80"}', id="utf8-encoded-surrogate"),
    pytest.param(b'{"model":"gpt-4.1","input":"\\ud800"}', id="lone-surrogate-escape"),
    pytest.param(b'\xef\xbb\xbf{"model":"gpt-4.1","input":"hi"}', id="byte-order-mark"),
    pytest.param('{"model":"gpt-4.1","input":"hi"}'.encode("utf-16"), id="utf-16"),
    pytest.param(b'{"model":"gpt-4.1","input":"hi"} trailing', id="trailing-garbage"),
    pytest.param(BODY + BODY, id="two-objects"),
    pytest.param(b'{"model":"gpt-4.1","input":"hi","x":NaN}', id="NaN"),
    pytest.param(b'{"model":"gpt-4.1","input":"hi","x":[-Infinity]}', id="Infinity"),
    pytest.param(b'{"model":"gpt-4.1","input":"hi",}', id="trailing-comma"),
    pytest.param(b"{'model':'gpt-4.1','input':'hi'}", id="single-quotes"),
    pytest.param(b'{"model":"gpt-4.1","input":"hi"/*c*/}', id="comment"),
    pytest.param(b"1", id="number"),
    pytest.param(b"true", id="boolean"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b"\x00" * 64, id="nul-bytes"),
]  # fmt: skip


@pytest.mark.parametrize("body", NOT_JSON_OBJECTS)
def test_bodies_that_are_not_a_valid_json_object_are_refused(gateway: GatewayProcess, fake: FakeUpstream, body: bytes):
    assert_refused(send(gateway, request(body=body)), fake, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [b'{"model":"gpt-4.1","model":"not-a-model","input":"hi"}',
     b'{"model":"not-a-model","model":"gpt-4.1","input":"hi"}',
     b'{"model":"not-a-model","mod\\u0065l":"gpt-4.1","input":"hi"}', b'{"model":"gpt-4.1","input":"hi","input":"x"}'],
)  # fmt: skip
def test_duplicate_top_level_keys_are_refused(gateway: GatewayProcess, fake: FakeUpstream, body: bytes):
    """Parsers disagree on which of two keys counts (the gateway's keeps the last, others the first): a
    duplicate could smuggle an unchecked model past validation or an allowlist, so none is forwarded."""
    assert_refused(send(gateway, request(body=body)), fake, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [b'{"model":"gpt-4.1","input":[{"role":"user","content":"model"},{"role":"user","content":"hi"}]}',
     '{"model":"gpt-4.1","input":"\u23fa h\u00e9 \\u00e9 \\"model\\": {1}","instructions":"\U0001f600"}'.encode()],
    ids=["nested", "non-ascii-and-escapes"],
)  # fmt: skip
def test_repeated_keys_below_the_top_level_are_forwarded(gateway: GatewayProcess, fake: FakeUpstream, body: bytes):
    """The second body is how Claude Code writes: UTF-8 prose and \\u escapes together, so the top level is walked."""
    assert send(gateway, request(body=body)).status == 200
    assert_forwarded_to(fake, "/openai/responses", body)


def test_a_body_of_millions_of_tiny_values_is_refused_cheaply(gateway: GatewayProcess, fake: FakeUpstream):
    """10 MB of empty objects raised the gateway's memory by 500 MB and held its loop for a second."""
    body = b'{"model":"gpt-4.1","input":[' + b",".join([b"{}"] * 3_000_000) + b"]}"
    before = rss_bytes(gateway.proc.pid)
    started = time.monotonic()
    response = send(gateway, request(body=body))
    assert time.monotonic() - started < 2
    assert_refused(response, fake, 400, "invalid_request")
    assert "too many JSON values" in response.json()["error"]["message"]
    assert rss_bytes(gateway.proc.pid) - before < 80 * 1024 * 1024


# --- headers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [b"x-request-id: a\rinjected: 1", b"x-request-id: a\ninjected: 1", b"x-request-id: a\x00b",
     b"x-request-id: ok\r\n folded", b"content-length: 5", b"transfer-encoding: chunked", b"bad header: 1",
     b"content-length: -1", b"content-length: 1e9"],
)  # fmt: skip
def test_malformed_headers_are_refused_by_the_parser_in_the_envelope(
    gateway: GatewayProcess, fake: FakeUpstream, header: bytes
):
    """CR/LF/NUL in a value, obsolete line folding, conflicting lengths (request smuggling): uvicorn's parser
    refuses them before the app runs; the answer still reads as the OpenAI envelope."""
    response = send(gateway, request(headers=b"content-type: application/json\r\n" + header + b"\r\n"))
    assert_refused(response, fake, 400, "invalid_request")
    assert response.header("connection") == "close"


@pytest.mark.parametrize(
    "value",
    [b"a b", b"caf\xc3\xa9", b"\xff\xfe", b"x" * 200, b"../../etc/passwd", b"%0d%0aset-cookie:%20a=b",
     b"<script>alert(1)</script>", b"", b"a,b"],
)  # fmt: skip
def test_odd_request_ids_are_replaced_not_echoed(gateway: GatewayProcess, fake: FakeUpstream, value: bytes):
    response = send(gateway, request(headers=b"content-type: application/json\r\nx-request-id: " + value + b"\r\n"))
    assert response.status == 200
    fresh = response.header("x-request-id")
    assert fresh
    assert fresh.encode() != value
    assert fresh.isalnum()
    assert fake.exchanges[0].header("x-request-id") == fresh  # the same fresh id went upstream


def test_client_headers_cannot_steer_or_reach_the_upstream(gateway: GatewayProcess, fake: FakeUpstream):
    """Host, forwarding and hop-by-hop headers, credentials and cookies: none reaches the upstream, and the
    request goes to the configured upstream whatever the client claims."""
    headers = (
        b"content-type: application/json\r\nhost2: evil.example\r\nx-forwarded-host: evil.example\r\n"
        b"forwarded: host=evil.example\r\nx-forwarded-proto: gopher\r\nx-original-url: /admin\r\n"
        b"x-rewrite-url: /admin\r\ncookie: session=1\r\nauthorization: Bearer sk-someone\r\n"
        b"proxy-authorization: Basic eDp4\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nte: trailers\r\n"
    )
    raw = b"POST /openai/responses HTTP/1.1\r\nhost: 127.0.0.1\r\n" + headers
    raw += f"content-length: {len(BODY)}\r\n\r\n".encode() + BODY
    assert send(gateway, raw).status == 200
    [exchange] = fake.exchanges
    names = {name for name, _ in exchange.headers}
    assert names <= {b"host", b"accept", b"content-type", b"user-agent", b"accept-encoding", b"authorization",
                     b"x-request-id", b"content-length", b"connection"}  # fmt: skip
    assert b"evil.example" not in b"".join(value for _, value in exchange.headers)
    assert exchange.header("authorization") == "Bearer upstream-secret-6f1c9e2ab7"
    assert (exchange.path, exchange.query) == ("/openai/responses", b"")


# --- paths ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["/openai/../admin", "/openai/responses/../../x", "/v1/../openai/responses", "/openai/%2e%2e/v1/responses",
     "/openai/./responses", "//openai/responses", "/openai/responses/", "/openai//responses", "/OPENAI/RESPONSES",
     "/openai/responses%00", "/openai/responses%20", "/openai/responses;x=1", "/openai/responses.json",
     "/openai", "/openai/", "/v1", "/v1/chat/completion", "/openai/responses/x/y", "/v1/responses/..", "*",
     "/" + "a" * 8000],
)  # fmt: skip
def test_path_tricks_are_404(gateway: GatewayProcess, fake: FakeUpstream, target: str):
    assert_refused(send(gateway, request(target=target)), fake, 404, "not_found")


@pytest.mark.parametrize(
    ("target", "path"),
    [("/openai%2Fresponses", "/openai/responses"), ("/openai%2fresponses", "/openai/responses"),
     ("/v1%2Fresponses", "/openai/responses"), ("/openai/responses?model=o1-pro&x=%0d%0a", "/openai/responses"),
     ("/aichat/conversations?stream=1", "/aichat/conversations"),
     ("http://evil.example/openai/responses", "/openai/responses"), ("/openai/responses#x", "/openai/responses")],
)  # fmt: skip
def test_equivalent_targets_reach_only_the_routes_own_upstream_path(
    gateway: GatewayProcess, fake: FakeUpstream, target: str, path: str
):
    """An encoded slash decodes to a slash (as in every ASGI server), a query string is dropped, an absolute URI
    or a fragment changes nothing: the upstream sees the route's own path, on the configured host."""
    body = BODY if path == "/openai/responses" else b'{"model":"gpt-4o","question":"hi"}'
    assert send(gateway, request(target=target, body=body)).status == 200
    assert_forwarded_to(fake, path, body)
    assert fake.exchanges[0].header("host") != "evil.example"


def test_a_huge_request_target_is_refused(gateway: GatewayProcess, fake: FakeUpstream):
    response = send(gateway, request(target="/openai/responses?" + "a" * 100_000))
    assert_refused(response, fake, 431, "request_header_fields_too_large")  # the head's limit: 64 KiB


# --- methods -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"])
@pytest.mark.parametrize("target", ["/openai/responses", "/v1/responses", "/aichat/conversations"])
def test_wrong_methods_are_405(gateway: GatewayProcess, fake: FakeUpstream, method: str, target: str):
    response = send(gateway, request(method, target))
    assert_refused(response, fake, 405, "method_not_allowed")
    assert response.header("allow") == "POST"


def test_head_is_405_without_a_body(gateway: GatewayProcess, fake: FakeUpstream):
    response = send(gateway, request("HEAD", body=b""), head=True)
    assert response.status == 405
    assert response.header("allow") == "POST"
    assert fake.exchanges == []


@pytest.mark.parametrize("method", ["FOO", "GET\x00", "post"])
def test_unknown_methods_are_refused_in_the_envelope(gateway: GatewayProcess, fake: FakeUpstream, method: str):
    assert_refused(send(gateway, request(method)), fake, 400, "invalid_request")


@pytest.mark.parametrize(("method", "target"), [("POST", "/healthz"), ("DELETE", "/metrics"), ("PUT", "/readyz")])
def test_wrong_methods_elsewhere_are_405_too(gateway: GatewayProcess, fake: FakeUpstream, method: str, target: str):
    assert_refused(send(gateway, request(method, target)), fake, 405, "method_not_allowed")


def test_hostile_input_left_no_traceback_and_the_gateway_serves(
    gateway: GatewayProcess, fake: FakeUpstream, log_of_this_module: LogReader
):
    response = send(gateway, request(headers=b"content-type: application/json\r\nx-request-id: hostile-last\r\n"))
    assert response.status == 200
    log_of_this_module.wait_for("request_id=hostile-last")  # every line before it is written too
    assert "Traceback" not in log_of_this_module.text()


def test_a_key_over_its_limit_is_refused_before_its_large_body_is_read(
    make_gateway: GatewayFactory, fake: FakeUpstream, tmp_path: Path
):
    """RPM spent: a 5 MB body is refused from its head alone, not read and parsed first (before, 10 MB held
    the loop for a second even for such a key)."""
    path = tmp_path / "keys.toml"
    keys.save(path, [keys.KeyEntry("team", keys.digest(CLIENT_KEY), rpm=1)])
    gateway = make_gateway(PROXY_KEYS_FILE=str(path)).wait_ready()
    auth = f"content-type: application/json\r\nauthorization: Bearer {CLIENT_KEY}\r\n".encode()
    assert send(gateway, request(headers=auth)).status == 200
    head = request(headers=auth, body=b"")[: -len(b"content-length: 0\r\n\r\n")] + b"content-length: 5000000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head)  # and not one byte of the body
        response = read_response(sock)
    assert response.status == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.exchanges) == 1


# --- what the gateway says -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/healthz/", "/docs/", "/metrics/", "/admin/usage/"])
def test_no_redirect_names_the_clients_host(gateway: GatewayProcess, fake: FakeUpstream, target: str):
    """Starlette's trailing-slash redirect wrote the client's Host into its location: a 404 instead."""
    response = send(gateway, request("GET", target, body=b"", headers=b""))
    assert_refused(response, fake, 404, "not_found")
    assert response.header("location") is None


def test_text_log_values_with_spaces_or_equals_are_quoted(gateway: GatewayProcess, fake: FakeUpstream):
    log = gateway.log_from_now()
    send(gateway, request(target="/x%20status=200%20key=admin", headers=b"x-request-id: quoted-path\r\n"))
    line = log.wait_for("request_id=quoted-path")
    assert 'path="/x status=200 key=admin"' in line
    fields = dict(field.split("=", 1) for field in shlex.split(line.partition(" request ")[2]))
    assert (fields["path"], fields["status"], fields["key"]) == ("/x status=200 key=admin", "404", "-")
