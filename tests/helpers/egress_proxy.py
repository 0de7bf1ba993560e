"""An egress proxy on loopback, as a corporate one behaves: CONNECT tunnels (for https upstreams) and
absolute-form requests (for http ones), each piped to its target. It records what it was asked for."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit

from app.serving.server import loopback_socket


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()


class EgressProxy:
    def __init__(self) -> None:
        self.sock = loopback_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.tunnels: list[str] = []  # CONNECT authorities
        self.forwarded: list[str] = []  # absolute-form targets
        self.authorizations: list[str | None] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> EgressProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, sock=self.sock)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            auth = next((line.split(":", 1)[1].strip() for line in head.decode().split("\r\n")
                         if line.lower().startswith("proxy-authorization:")), None)  # fmt: skip
            self.authorizations.append(auth)
            if method == "CONNECT":
                self.tunnels.append(target)
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                self.forwarded.append(target)
                url = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
                up_writer.write(head.replace(target.encode(), (url.path or "/").encode(), 1))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()
