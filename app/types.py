"""ASGI type aliases, as starlette names them, plus the header list shape the gateway passes around."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]
Body = bytes | bytearray  # a request body: one received chunk as is, or several grown in one buffer

__all__ = ["ASGIApp", "Body", "Headers", "Message", "Receive", "Scope", "Send"]
