"""Fixtures shared by every test directory: the loopback servers and their CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Certs, LoopbackServers, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="session")
def loopback(certs: Certs) -> Iterator[LoopbackServers]:
    loopback = LoopbackServers(certs).start()
    yield loopback
    loopback.stop()
