"""The container health check finds the port the gateway actually serves, whatever told it which."""

from __future__ import annotations

import subprocess

from app.serving import healthcheck
from tests.helpers import GatewayProcess


def test_finds_the_served_port_and_asks_healthz(gateway: GatewayProcess):
    # the gateway fixture is started with --port, not PROXY_PORT
    assert ("127.0.0.1", gateway.port) in healthcheck.listening(gateway.proc.pid)
    assert healthcheck.main([str(gateway.proc.pid)]) == 0


def test_a_process_listening_nowhere_is_unhealthy(capsys):
    with subprocess.Popen(["sleep", "30"]) as idle:
        try:
            assert healthcheck.main([str(idle.pid)]) == 1
        finally:
            idle.kill()
    assert "listens on no TCP port" in capsys.readouterr().err


def test_wildcard_binds_are_asked_on_loopback():
    assert healthcheck._address("00000000:1F40") == ("0.0.0.0", 8000)
    assert healthcheck._address("0100007F:1F71") == ("127.0.0.1", 8049)
    assert healthcheck._address("00000000000000000000000001000000:1F40") == ("::1", 8000)
    assert not healthcheck.healthy("0.0.0.0", 1)
