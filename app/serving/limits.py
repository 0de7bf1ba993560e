"""What one client connection may cost the serving layer, and the checks of a request head that the HTTP parser
lets through. The bounds are in docs/architecture.md ("What the gateway guarantees").

- A head over HEAD_BYTES or with more than HEAD_FIELDS fields gets 431; bytes past HEAD_BYTES are never handed
  to the parser, so an endless head costs no more than the limit.
- A head must arrive within `head_timeout` (from the connection, or from the previous response); a body within
  `head_timeout` plus one second per BODY_RATE bytes received; else 408 and the connection closes. Idle
  keep-alive connections close after uvicorn's keep-alive timeout.
- Framing: Transfer-Encoding other than exactly `chunked`, chunked on HTTP/1.0, a missing or repeated Host on
  HTTP/1.1, a JSON content type with a charset other than UTF-8: 400. Two readers of one request must not
  disagree on where it ends or what its text is.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import HeadTooLarge, InvalidRequest, ProxyError
from app.proxy.streams import is_json, media_type

HEAD_BYTES = 64 * 1024
HEAD_FIELDS = 100
BODY_RATE = 16 * 1024  # bytes a second a body must average past its grace: a slow mobile link, not a drip
UTF8 = frozenset({b"utf-8", b"utf8"})
HOST_PROBLEM = "An HTTP/1.1 request must carry exactly one Host header."
CODING_PROBLEM = "Transfer-Encoding must be exactly `chunked`, and only on HTTP/1.1."


@dataclass(frozen=True, slots=True)
class ClientLimits:
    head_timeout: float = 5.0

    def body_deadline(self, received: int) -> float:
        """Seconds a body that has `received` bytes so far may have taken."""
        return self.head_timeout + received / BODY_RATE


def _charset_problem(content_type: bytes) -> str | None:
    parameters = content_type.lower().partition(b";")[2]
    if b"charset" not in parameters or not is_json(media_type(content_type)):
        return None
    for parameter in parameters.split(b";"):
        name, _, value = parameter.partition(b"=")
        if name.strip() == b"charset" and value.strip().strip(b'"') not in UTF8:
            return "A JSON body must be UTF-8: its content-type names another charset."
    return None


def head_problem(headers: list[tuple[bytes, bytes]], url: bytes, http_version: str, measure: bool) -> ProxyError | None:
    """Why a parsed request head is refused, or None. This runs for every request: the fields are looked up in a
    dict (built in C), and walked only when a name repeats. `measure`: the head's bytes were not counted as they
    arrived (a pipelined head that came with the previous request's bytes)."""
    if len(headers) > HEAD_FIELDS:
        return HeadTooLarge(f"The request has more than {HEAD_FIELDS} header fields.")
    if measure and len(url) + sum(len(name) + len(value) for name, value in headers) > HEAD_BYTES:
        return HeadTooLarge(f"The request head is over {HEAD_BYTES // 1024} KiB.")
    fields = dict(headers)
    if len(fields) < len(headers):  # a repeated name: Host and Transfer-Encoding may not repeat
        names = [name for name, _ in headers]
        if names.count(b"host") > 1:
            return InvalidRequest(HOST_PROBLEM)
        if names.count(b"transfer-encoding") > 1:
            return InvalidRequest(CODING_PROBLEM)
    if http_version == "1.1" and b"host" not in fields:
        return InvalidRequest(HOST_PROBLEM)
    coding = fields.get(b"transfer-encoding")
    if coding is not None and (http_version != "1.1" or coding.strip().lower() != b"chunked"):
        return InvalidRequest(CODING_PROBLEM)
    content_type = fields.get(b"content-type")
    problem = _charset_problem(content_type) if content_type is not None else None
    return InvalidRequest(problem, param="content-type") if problem is not None else None
