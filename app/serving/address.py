"""One gateway per address. The listeners share their port with SO_REUSEPORT (app/serving/server.py), and the
kernel lets any process of the same user join such a port: a second `serve` started while the first runs would
take a share of the connections (an old process without a keys file answering every other request). Before it
binds, a gateway claims the address and checks that nothing listens there yet.

The claim is an abstract Unix socket named after the port (Linux): binding one is atomic, it lives exactly as long
as the process holding it, and like a TCP port it belongs to the network namespace. Two gateways starting at once
cannot both pass the check: the second fails to claim. Elsewhere only the probe runs.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from collections.abc import Iterator


class PortInUse(Exception):
    """The address is served already (by another gateway or another program): said in one line."""


def _claim(port: int) -> socket.socket | None:
    if not sys.platform.startswith("linux"):
        return None
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0acedata-proxy:port:{port}")
    except OSError:
        claim.close()
        raise
    return claim  # not inheritable: the process that binds the listeners holds it, its workers need not


def _probe(host: str, port: int) -> None:
    """Raises OSError when anything listens on (host, port): a bind without SO_REUSEPORT cannot join it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections (TIME_WAIT) do not count
        probe.bind((host, port))


@contextlib.contextmanager
def claimed(host: str, port: int, probe: bool = True) -> Iterator[None]:
    """host:port claimed for this process while the block runs (PortInUse if it cannot be). `probe=False`: the
    port is this process's own already (bound to port 0), only the claim is taken."""
    claim = claim_address(host, port, probe)
    try:
        yield
    finally:
        if claim is not None:
            claim.close()


def claim_address(host: str, port: int, probe: bool = True) -> socket.socket | None:
    """Claim host:port for this process, or raise PortInUse. Keep the returned socket open while serving."""
    if port == 0:  # the kernel picks a free port: nobody else serves it
        return None
    try:
        claim = _claim(port)
    except OSError:
        raise PortInUse(
            f"Cannot listen on {host}:{port}: another acedata-proxy (gateway or demo) already serves port {port}. "
            f"Stop it, or use another port: --port {port + 1}"
        ) from None
    try:
        if probe:
            _probe(host, port)
    except OSError as exc:
        if claim is not None:
            claim.close()
        reason = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise PortInUse(f"Cannot listen on {host}:{port}: {reason}. Stop what uses it, or use another port: "
                        f"--port {port + 1}") from None  # fmt: skip
    return claim
