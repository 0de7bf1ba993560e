"""The container health check: `python -m app.serving.healthcheck [PID]` exits 0 when the gateway answers /healthz.

It asks the address the gateway process (PID 1 in a container) actually listens on, read from /proc, so the check
follows `--port 8031` and `PROXY_PORT` alike, and any bind address. Standard library only: it runs every few
seconds and must start fast.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.request
from pathlib import Path

LISTEN = "0A"  # the TCP state column's value for a listening socket
WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    """/proc/net/tcp{,6} writes addresses as hex words in host (little-endian) byte order, then the port."""
    hex_host, hex_port = hex_address.split(":")
    raw = b"".join(bytes.fromhex(hex_host[i : i + 8])[::-1] for i in range(0, len(hex_host), 8))
    return str(ipaddress.ip_address(raw)), int(hex_port, 16)


def listening(pid: int) -> list[tuple[str, int]]:
    """The (host, port) pairs `pid` listens on over TCP."""
    inodes = _socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                found.append(_address(fields[1]))
    return found


def healthy(host: str, port: int, timeout: float = 2.0) -> bool:
    host = WILDCARD.get(host, host)
    url = f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except OSError:
        return False


def main(argv: list[str]) -> int:
    pid = int(argv[0]) if argv else 1
    try:
        addresses = listening(pid)
    except OSError as exc:
        print(f"unhealthy: cannot read process {pid}'s sockets: {exc}", file=sys.stderr)
        return 1
    if not addresses:
        print(f"unhealthy: process {pid} listens on no TCP port", file=sys.stderr)
        return 1
    # the demo listens twice (gateway and fake upstream): any one answering /healthz is the gateway
    if any(healthy(host, port) for host, port in addresses):
        return 0
    print(f"unhealthy: no /healthz answered 200 on {addresses}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
