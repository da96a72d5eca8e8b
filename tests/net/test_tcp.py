"""The TCP check against loopback listeners."""

from __future__ import annotations

import asyncio

from servers import SERVER, LoopbackServers

from probe.model import Failure, TCPObservation
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.tcp import connect


def _connect(dialer: Dialer, port: int, timeout: float = 1.0) -> TCPObservation:
    return asyncio.run(connect(SERVER, port, dialer, Clock(), timeout))


def test_connect_succeeds(loopback: LoopbackServers, dialer: Dialer) -> None:
    observation = _connect(dialer, loopback.ports["hold"])
    assert observation.failure is None
    assert (observation.address, observation.port) == (SERVER, loopback.ports["hold"])
    assert 0 <= observation.t0 <= observation.t < 1.0
    # Our own address is remembered, for the HTTP check to scrub.
    assert dialer.local_addresses == {"127.0.0.1"}


def test_a_closed_port_is_refused(loopback: LoopbackServers, dialer: Dialer) -> None:
    assert _connect(dialer, loopback.ports["closed"]).failure is Failure.CONNECTION_REFUSED


def test_a_reset_after_accept_still_connected(loopback: LoopbackServers, dialer: Dialer) -> None:
    # The RST comes when the client speaks: the connect itself succeeded.
    assert _connect(dialer, loopback.ports["reset"]).failure is None


def test_dropped_syns_time_out(loopback: LoopbackServers, dialer: Dialer) -> None:
    # The listener's accept queue is full, so the kernel drops our SYN
    # (see servers.LoopbackServers._full_backlog): a connect timeout on loopback.
    observation = _connect(dialer, loopback.ports["backlog"], timeout=0.3)
    assert observation.failure is Failure.GENERIC_TIMEOUT
    assert 0.25 <= observation.t - observation.t0 < 1.0
