"""The old import path of the shared test servers, kept for test modules written against it: new tests import
from tests.helpers."""

from tests.helpers.raw import RawResponse, raw_exchange, read_response
from tests.helpers.servers import ROOT, GatewayProcess, ThreadServer, rss_bytes, wait_healthy

__all__ = ["ROOT", "GatewayProcess", "RawResponse", "ThreadServer", "raw_exchange", "read_response", "rss_bytes",
           "wait_healthy"]  # fmt: skip
