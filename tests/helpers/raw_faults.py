"""An upstream that breaks HTTP below what an ASGI app can do: connections reset once the request arrives, or
answered with bytes that are not HTTP."""

from __future__ import annotations

import asyncio
from typing import Literal


class RawFaultServer:
    """A TCP listener that breaks HTTP on purpose: `reset` closes each connection once the request arrives,
    `garbage` answers it with bytes that are not HTTP."""

    def __init__(self, mode: Literal["reset", "garbage"]):
        self.mode = mode
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._handle, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read(65536)
        if self.mode == "garbage":
            writer.write(b"\x00\x01 this is not HTTP \xff\r\n\r\n")
            await writer.drain()
        writer.transport.abort()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
