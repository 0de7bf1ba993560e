"""Small real media files the upload tests send: a silent WAV (the `wave` module) and an opaque PNG."""

from __future__ import annotations

import io
import struct
import wave
import zlib


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV of the given length."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(2 * int(rate * seconds)))
    return out.getvalue()


def png(size: int = 4) -> bytes:
    """A small opaque white RGBA PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff" * 4 * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
