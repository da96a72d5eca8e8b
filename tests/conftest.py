"""Fixtures shared by every test directory: the loopback servers and their CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Certs, Lab, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="session")
def lab(certs: Certs) -> Iterator[Lab]:
    lab = Lab(certs).start()
    yield lab
    lab.stop()
