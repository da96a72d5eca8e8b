"""What every lab test needs: root and the lab's commands, or a clear reason why not.

Outside CI a machine without them skips the lab tests with a one-line
reason. In CI (CI=true) a lab test that cannot start FAILS: the verdict
matrix must never pass by being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from environment import missing, require

# Debian packages: iproute2 (ip, ss, tc), procps (sysctl), nftables, tcpdump, nginx.
LAB_COMMANDS = ("ip", "ss", "nft", "tc", "tcpdump", "nginx", "sysctl")


@pytest.fixture(scope="session")
def lab_host() -> None:
    """Use in every test that builds a lab."""
    require(root=True, tools=LAB_COMMANDS)


@pytest.fixture(scope="session", autouse=True)
def no_lab_left_behind() -> Iterator[None]:
    """A safety net: labs this session created and did not remove go at its end.

    Labs that existed before the session (someone else's) are left alone.
    """
    if missing(root=True, tools=LAB_COMMANDS) is not None:
        yield
        return
    from probe.lab import topology

    before = set(topology.lab_prefixes())
    yield
    for prefix in set(topology.lab_prefixes()) - before:
        topology.destroy(prefix)
