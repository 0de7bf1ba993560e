"""uvicorn's httptools protocol, answering requests it cannot parse with the OpenAI error envelope.

A request line or header the HTTP parser refuses (a bare CR or LF in a header, an unknown method, a malformed
content-length) never reaches the app: uvicorn answers it itself, in plain text. Clients of an OpenAI-compatible
gateway parse every error as `{"error": {...}}`, so this one should read the same way.
"""

from __future__ import annotations

from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import InvalidRequest


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        # same framing as uvicorn's (default headers, connection: close), our body
        body = InvalidRequest("Malformed HTTP request: the request line or a header could not be parsed.").body()
        head = [f"HTTP/1.1 400 {HTTPStatus.BAD_REQUEST.phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
