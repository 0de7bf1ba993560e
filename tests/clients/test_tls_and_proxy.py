"""An https upstream reached through an egress proxy (HTTPS_PROXY: a CONNECT tunnel), with each client through
the real gateway: a private CA trusted through SSL_CERT_FILE, SNI, and every certificate that must be refused
(another CA's, another host's, an expired one) refused at once with a 502 that says so."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Iterator

import pytest
import trustme

from tests.helpers import GatewayProcess
from tests.helpers.conformance import CLIENTS, exchange, start_gateways, stop_gateways
from tests.helpers.egress_proxy import EgressProxy
from tests.helpers.raw_upstream import JSON_ANSWER, RawUpstream, Request

TRUSTED, OTHER = trustme.CA(), trustme.CA()
PAST = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


def server_context(
    authority: trustme.CA,
    *names: str,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*names, not_before=not_before, not_after=not_after).configure_cert(context)
    return context


CERTIFICATES = {
    "good": server_context(TRUSTED, "localhost"),
    "other-ca": server_context(OTHER, "localhost"),
    "wrong-host": server_context(TRUSTED, "upstream.example"),
    "expired": server_context(TRUSTED, "localhost", not_before=PAST, not_after=PAST + datetime.timedelta(days=30)),
}


class TlsUpstream(RawUpstream):
    """Presents the certificate `self.certificate` names, chosen per handshake; records the SNI it was sent."""

    def __init__(self) -> None:
        self.certificate = "good"
        self.server_names: list[str | None] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        TRUSTED.issue_cert("localhost").configure_cert(context)
        context.sni_callback = self._choose
        super().__init__(tls=context)

    def _choose(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        self.server_names.append(server_name)
        connection.context = CERTIFICATES[self.certificate]


@pytest.fixture(scope="module")
def tls_upstream() -> Iterator[TlsUpstream]:
    server = TlsUpstream().start()

    async def closing(request: Request, writer: asyncio.StreamWriter) -> bool:
        await request.read_body()
        writer.write(JSON_ANSWER.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1))
        await writer.drain()
        return False

    server.cases["new-connection"] = closing
    yield server
    server.stop()


@pytest.fixture(scope="module")
def egress() -> Iterator[EgressProxy]:
    proxy = EgressProxy().start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, tls_upstream: TlsUpstream, egress: EgressProxy):
    tmp = tmp_path_factory.mktemp("tls")
    bundle = tmp / "ca.pem"
    TRUSTED.cert_pem.write_to_path(str(bundle))
    running = start_gateways(
        tmp, tls_upstream.url, SSL_CERT_FILE=str(bundle), HTTPS_PROXY=egress.url, NO_PROXY="",
        PROXY_CONNECT_RETRIES="2",
    )  # fmt: skip
    yield running
    stop_gateways(running)


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_private_ca_through_the_tunnel_with_sni(gateways, tls_upstream: TlsUpstream, egress: EgressProxy, kind):
    tls_upstream.certificate = "good"
    tunnels, names = len(egress.tunnels), len(tls_upstream.server_names)
    outcome = exchange(gateways[kind], "new-connection")
    assert outcome.status == 200, outcome
    assert egress.tunnels[tunnels:] == [f"localhost:{tls_upstream.port}"]
    assert tls_upstream.server_names[names:] == ["localhost"]


@pytest.mark.parametrize("certificate", ["other-ca", "wrong-host", "expired"])
@pytest.mark.parametrize("kind", CLIENTS)
def test_a_certificate_that_must_be_refused(
    gateways, tls_upstream: TlsUpstream, egress: EgressProxy, kind, certificate
):
    tls_upstream.certificate = certificate
    gateway: GatewayProcess = gateways[kind]
    mark = len(gateway.log())
    try:
        handshakes = len(tls_upstream.server_names)
        outcome = exchange(gateway, "new-connection")
        assert outcome.status == 502, outcome
        assert outcome.error_code == "upstream_unavailable"
        assert b"TLS certificate was refused" in outcome.body
        assert len(tls_upstream.server_names) - handshakes == 1, "a refused certificate is not tried again"
    finally:
        tls_upstream.certificate = "good"
    assert "Traceback" not in gateway.log()[mark:]
