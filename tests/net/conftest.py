"""Fixtures for the live-check tests: a loopback-only dialer, a clock, the test CA."""

from __future__ import annotations

import pytest
from servers import Certs

from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.guard import AllowList
from probe.net.trust import TrustStore

# Whatever PROBE_ALLOW_NETWORKS says, these tests only ever dial loopback.
LOOPBACK = AllowList.parse("127.0.0.0/8,::1/128")


@pytest.fixture
def dialer() -> Dialer:
    return Dialer(LOOPBACK)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def trust(certs: Certs) -> TrustStore:
    return TrustStore.from_bundle(str(certs.ca))
