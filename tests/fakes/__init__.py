"""Strict fake Skalin and Hull HTTP servers on 127.0.0.1: one module per API, plus the
shared server (faults, latency, rate limit, contract checks) they build on."""

from tests.fakes.hull import FakeHull
from tests.fakes.server import FakeServer, Fault, Received
from tests.fakes.skalin import FakeSkalin

__all__ = ["FakeHull", "FakeServer", "FakeSkalin", "Fault", "Received"]
