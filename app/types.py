"""ASGI type aliases, as starlette names them, plus the header list shape the gateway passes around."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

__all__ = ["ASGIApp", "Headers", "Message", "Receive", "Scope", "Send"]
