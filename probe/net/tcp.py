"""The TCP check: does a three-way handshake complete?"""

from __future__ import annotations

from probe.model import TCPObservation
from probe.net.clock import Clock
from probe.net.dialer import Dialer, close_stream
from probe.net.errors import failure_from_exception


async def connect(
    address: str, port: int, dialer: Dialer, clock: Clock, timeout: float
) -> TCPObservation:
    """Connect and close; never raises for network trouble."""
    t0 = clock.now()
    try:
        _, writer = await dialer.open_tcp(address, port, timeout)
    except Exception as exc:
        return TCPObservation(address, port, t0, clock.now(), failure_from_exception(exc))
    t = clock.now()
    await close_stream(writer)
    return TCPObservation(address, port, t0, t, None)
