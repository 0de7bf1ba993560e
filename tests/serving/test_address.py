"""One gateway per address: a second `serve` or `demo` on a port one already serves refuses to start in one line
naming the address, and a port another program holds is reported as a busy port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from app.serving.address import PortInUse, claim_address
from tests.helpers import START_TIMEOUT, CliProcess, listening_ports, listening_socket, run_cli, wait_for


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_second_gateway_on_a_served_port_refuses_to_start(tmp_path: Path, command: str):
    first = CliProcess(tmp_path, "serve", "--port", "0")
    try:
        wait_for(lambda: first.proc.poll() is not None or listening_ports(first.proc.pid), START_TIMEOUT, "a port")
        [port] = listening_ports(first.proc.pid)
        second = run_cli(tmp_path, command, "--port", str(port))
        output, _ = second.communicate(timeout=START_TIMEOUT)
        assert second.returncode == 1
        assert output.decode().splitlines() == [
            f"acedata-proxy: Cannot listen on 127.0.0.1:{port}: another acedata-proxy (gateway or demo) already "
            f"serves port {port}. Stop it, or use another port: --port {port + 1}"
        ]
        assert listening_ports(first.proc.pid) == {port}  # the first one still serves, alone
    finally:
        first.stop()


def test_a_port_another_program_holds_is_reported_as_busy(tmp_path: Path):
    """Not as the usage ledger failing to open, which is what an address error read as before."""
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        proc = run_cli(tmp_path, "serve", "--port", str(port))
        output, _ = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 1
    assert output.decode().splitlines() == [
        f"acedata-proxy: Cannot listen on 127.0.0.1:{port}: the address is already in use. Stop what uses it, or "
        f"use another port: --port {port + 1}"
    ]


def test_two_gateways_starting_at_once_cannot_both_claim_the_address():
    """The claim is taken before the probe and held while serving: whichever comes second fails, even when the
    first has not bound its listeners yet."""
    with socket.socket() as held:  # a number no one else claims, bound (not listening) so the probe still passes
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        first = claim_address("127.0.0.1", port)
        assert first is not None
        try:
            with pytest.raises(PortInUse, match=f"already serves port {port}"):
                claim_address("127.0.0.1", port)
        finally:
            first.close()
        claim_address("127.0.0.1", port).close()  # type: ignore[union-attr]  # released with its holder
