"""Reading streamed answers the way a client would."""

from __future__ import annotations


def sse_events(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name, data) of each server-sent event in `raw`."""
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        name = None
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data += line[6:]
        events.append((name, data))
    return events
