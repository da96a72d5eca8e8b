"""Fixtures for the live-check tests: loopback servers and a loopback-only dialer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Certs, Lab, make_certs

from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.guard import AllowList
from probe.net.trust import TrustStore

# Whatever PROBE_ALLOW_NETWORKS says, these tests only ever dial loopback.
LOOPBACK = AllowList.parse("127.0.0.0/8,::1/128")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="session")
def lab(certs: Certs) -> Iterator[Lab]:
    lab = Lab(certs).start()
    yield lab
    lab.stop()


@pytest.fixture
def dialer() -> Dialer:
    return Dialer(LOOPBACK)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def trust(certs: Certs) -> TrustStore:
    return TrustStore.from_bundle(str(certs.ca))
