"""The dialer: the only code in the probe that opens a socket.

Every check (DNS over UDP/TCP/HTTPS, TCP, TLS, HTTP) asks this class for
its sockets, so two promises hold in one place:

* nothing is sent to a destination outside PROBE_ALLOW_NETWORKS: the
  guard runs before the socket even exists;
* nothing resolves names behind our back: addresses must be IP literals
  (resolution is the DNS check's job, and it is measured).

It also remembers the local addresses its sockets were bound to, so that
the HTTP check can scrub them from what servers echo back.
"""

from __future__ import annotations

import asyncio
import socket

from probe.net.guard import AllowList
from probe.wire.url import is_ip_literal

# Seconds a closing stream may take to flush before it is aborted.
_CLOSE_GRACE = 1.0


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close a stream without waiting on a peer that stopped reading.

    A connection that already broke is not news here: the check that
    used it has recorded what it saw.
    """
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_GRACE)
    except OSError:  # including TimeoutError
        writer.transport.abort()


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write ``data`` and wait until the transport has taken it.

    A peer that answers and closes at once (a block-page injector does)
    may be gone before we drain, and asyncio's drain then raises
    "Connection lost" although the data was sent and the answer waits
    in the reader. So a closing transport is not drained: the next read
    reports what really happened (the answer, EOF, or the reset).
    """
    writer.write(data)
    if not writer.transport.is_closing():
        await writer.drain()


class DatagramEndpoint:
    """A connected UDP socket: one peer, datagrams in and out.

    Connected, so the kernel drops datagrams from other sources, while
    forged answers (which spoof the peer's address) still arrive.
    """

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: bytes) -> None:
        # A datagram fits the socket buffer: a UDP send does not block.
        self._sock.send(data)

    async def recv(self, timeout: float) -> bytes:
        """The next datagram; TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self._sock, 65535), timeout)

    def close(self) -> None:
        self._sock.close()


class Dialer:
    """Opens TCP streams and UDP endpoints to allowed IP literals."""

    __slots__ = ("_allow", "_local")

    def __init__(self, allow: AllowList) -> None:
        self._allow = allow
        self._local: set[str] = set()

    @property
    def local_addresses(self) -> frozenset[str]:
        """Local IP addresses of every socket this dialer has connected."""
        return frozenset(self._local)

    async def open_tcp(
        self, address: str, port: int, timeout: float | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connected TCP stream; ``timeout`` bounds the connect (None: no bound)."""
        sock = self._socket(address, socket.SOCK_STREAM)
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (address, port)), timeout)
            self._remember(sock)
            return await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise

    async def open_udp(self, address: str, port: int) -> DatagramEndpoint:
        """A UDP endpoint connected to ``address``; nothing is sent yet."""
        sock = self._socket(address, socket.SOCK_DGRAM)
        try:
            # connect() on UDP sends nothing; it fixes the peer and the
            # local address (RFC 768 has no handshake).
            sock.connect((address, port))
        except BaseException:
            sock.close()
            raise
        self._remember(sock)
        return DatagramEndpoint(sock)

    def _socket(self, address: str, kind: socket.SocketKind) -> socket.socket:
        if not is_ip_literal(address):
            raise ValueError(f"the dialer takes IP literals, not {address!r}")
        self._allow.check(address)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, kind)
        sock.setblocking(False)
        return sock

    def _remember(self, sock: socket.socket) -> None:
        self._local.add(str(sock.getsockname()[0]))
