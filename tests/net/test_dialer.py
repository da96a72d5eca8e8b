"""The dialer's streams and datagram endpoints, on loopback."""

from __future__ import annotations

import asyncio

import pytest
from servers import SERVER, LoopbackServers

from probe.net.dialer import Dialer, send


class _ClosingTransport:
    def is_closing(self) -> bool:
        return True


class _GoneWriter:
    """A writer whose peer answered and closed before we drained."""

    def __init__(self) -> None:
        self.transport = _ClosingTransport()
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        raise ConnectionResetError("Connection lost")


def test_send_leaves_a_closed_peer_to_the_next_read() -> None:
    writer = _GoneWriter()
    asyncio.run(send(writer, b"GET / HTTP/1.1\r\n\r\n"))  # type: ignore[arg-type]
    assert writer.written == b"GET / HTTP/1.1\r\n\r\n"


def test_tcp_streams_carry_bytes_and_remember_our_address(loopback: LoopbackServers, dialer: Dialer) -> None:
    async def run() -> bytes:
        reader, writer = await dialer.open_tcp(SERVER, loopback.ports["not-tls"], 1.0)
        await send(writer, b"hello")
        data = await reader.readexactly(12)
        writer.close()
        return data

    assert asyncio.run(run()) == b"HTTP/1.1 400"
    assert dialer.local_addresses == {"127.0.0.1"}


def test_udp_endpoints_send_and_time_out(loopback: LoopbackServers, dialer: Dialer) -> None:
    async def run() -> None:
        endpoint = await dialer.open_udp(SERVER, loopback.ports["closed"])
        try:
            with pytest.raises(TimeoutError):
                await endpoint.recv(0.05)
        finally:
            endpoint.close()

    asyncio.run(run())
    assert dialer.local_addresses == {"127.0.0.1"}
