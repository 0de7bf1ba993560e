"""The log formatter: credentials any library prints are redacted from every record (websocket libraries printed
an upgrade's headers at debug level), and text-format values that could read as fields are quoted."""

from __future__ import annotations

import logging

import pytest

from app.logs import Formatter
from tests.helpers import CLIENT_KEY


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize(
    "message",
    [f"< authorization: Bearer {CLIENT_KEY}", "< Cookie: session=cookie-5ecret",
     f"headers: [(b'authorization', b'Bearer {CLIENT_KEY}'), (b'cookie', b'session=cookie-5ecret')]",
     f"{{'Proxy-Authorization': 'Basic {CLIENT_KEY}', 'x-api-key': '{CLIENT_KEY}'}}",
     f"sent Bearer {CLIENT_KEY} upstream"],
)  # fmt: skip
def test_credentials_are_redacted_from_every_record(fmt: str, message: str):
    record = logging.LogRecord("websockets.server", logging.DEBUG, __file__, 1, message, (), None)
    line = Formatter(fmt).format(record)
    assert CLIENT_KEY not in line
    assert "cookie-5ecret" not in line
    assert "[redacted]" in line


@pytest.mark.parametrize(
    ("value", "shown"),
    [("/v1/models", "/v1/models"), ("/a b", '"/a b"'), ("x=1", '"x=1"'), ('a"b c', '"a\\"b c"'), (200, "200"),
     (None, "-")],
)  # fmt: skip
def test_text_values_that_could_forge_fields_are_quoted(value: object, shown: str):
    line = Formatter("text").line(0, "INFO", "acedata_proxy.access", "request", {"path": value, "status": 1}, None)
    assert line.endswith(f"request path={shown} status=1")


ACCESS = {
    "method": "POST", "path": "/openai/responses", "route": "openai.responses", "model": "gpt-4.1", "status": 200,
    "duration_ms": 2.12, "bytes": 400, "request_id": "0123456789abcdef0123456789abcdef", "key": None,
}  # fmt: skip


@pytest.mark.parametrize(
    "fields",
    [ACCESS, {**ACCESS, "key": "team-a", "tokens_in": 1, "tokens_out": 2},
     {**ACCESS, "path": "/a b=c", "model": 'x" y', "tokens_in": 1, "tokens_out": 2, "upstream_error": "status"},
     {**ACCESS, "model": None, "client_disconnected": True}],
)  # fmt: skip
def test_access_lines_read_as_any_other_record_does(fields: dict[str, object]):
    """The access log's own path writes its common fields in one go; the text must be what the generic one
    writes, quoting included."""
    formatter = Formatter("text")
    generic = formatter.line(0, "INFO", "acedata_proxy.access", "request", fields, None)
    assert formatter.line(0, "INFO", "acedata_proxy.access", "request", fields, None, access=True) == generic
