"""The VPN handshake driver against small loopback responders.

The codecs' interop with real servers (openvpn, wireguard-go, strongSwan,
pptpd, xl2tpd) is tested in tests/wire and, end to end, in the lab; here
the driver's own behaviour: resends, silence, refusals, resets, bytes of
another protocol, and the address guard.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from probe.model import (
    Failure,
    HandshakeObservation,
    Target,
    TargetKind,
    TCPObservation,
    VPNOptions,
)
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.guard import AllowList
from probe.net.vpn import handshake
from probe.wire import openvpn, pptp

HOST = "127.0.0.2"
OPENVPN_UDP = Target("ovpn", TargetKind.OPENVPN, "vpn.test", 1194, transport="udp", vpn=VPNOptions())
PPTP = Target("pptp", TargetKind.PPTP, "vpn.test", 1723, transport="tcp", vpn=VPNOptions())


def server_reset(client_packet: bytes) -> bytes:
    """What an OpenVPN server sends back: its reset, acking our message 0 of our session."""
    ours = openvpn.parse_packet(client_packet, from_client=True).session_id
    return (bytes([openvpn.P_CONTROL_HARD_RESET_SERVER_V2 << 3]) + b"S" * 8
            + b"\x01" + struct.pack("!I", 0) + ours + struct.pack("!I", 0))


class _UDPResponder(asyncio.DatagramProtocol):
    """Ignores the first ``ignore`` datagrams, then answers with ``answer(datagram)``."""

    def __init__(self, ignore: int, answer: Callable[[bytes], bytes] | None) -> None:
        self.ignore = ignore
        self.answer = answer
        self.seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen += 1
        if self.seen > self.ignore and self.answer is not None:
            self.transport.sendto(self.answer(data), addr)  # type: ignore[attr-defined]


def run_udp(ignore: int, answer: Callable[[bytes], bytes] | None,
            timeout: float = 4.0) -> tuple[HandshakeObservation, int]:
    async def main() -> tuple[HandshakeObservation, int]:
        loop = asyncio.get_running_loop()
        transport, responder = await loop.create_datagram_endpoint(
            lambda: _UDPResponder(ignore, answer), local_addr=(HOST, 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            (observation,) = await handshake(OPENVPN_UDP, HOST, port, {}, Dialer(LOOPBACK),
                                             Clock(), timeout)
        finally:
            transport.close()
        assert isinstance(observation, HandshakeObservation)
        return observation, responder.seen
    return asyncio.run(main())


LOOPBACK = AllowList.parse("127.0.0.0/8")


def test_an_answer_ends_the_handshake() -> None:
    observation, seen = run_udp(0, server_reset)
    assert observation.failure is None and seen == 1
    assert (observation.protocol, observation.transport, observation.attempts) == ("openvpn", "udp", 1)
    assert observation.reply == "P_CONTROL_HARD_RESET_SERVER_V2" and observation.answerable
    assert [(m.sent, m.name, m.size) for m in observation.messages] == [
        (True, "P_CONTROL_HARD_RESET_CLIENT_V2", 14),
        (False, "P_CONTROL_HARD_RESET_SERVER_V2", 26),
    ]


def test_an_unanswered_datagram_is_resent_and_counted() -> None:
    observation, seen = run_udp(2, server_reset)
    # Sent at 0 s, 1 s and 3 s; answered the third time.
    assert observation.failure is None and observation.attempts == 3 == seen
    assert [m.sent for m in observation.messages] == [True, True, True, False]
    assert 2.9 < observation.t - observation.t0 < 3.9


def test_silence_times_out_after_every_resend() -> None:
    observation, seen = run_udp(99, None, timeout=1.5)
    assert observation.failure is Failure.GENERIC_TIMEOUT and observation.reply is None
    assert observation.attempts == 2 == seen  # at 0 s and 1 s


def test_a_reply_to_another_session_is_waited_past() -> None:
    other = server_reset(openvpn.client_hard_reset(b"another!"))
    observation, _ = run_udp(0, lambda _: other, timeout=1.5)
    assert observation.failure is Failure.GENERIC_TIMEOUT
    assert [m.name for m in observation.messages if not m.sent] == ["P_CONTROL_HARD_RESET_SERVER_V2"] * 2


def test_bytes_of_another_protocol_are_an_unexpected_reply() -> None:
    observation, _ = run_udp(0, lambda _: b"HTTP/1.1 403 Forbidden\r\n\r\n")
    assert observation.failure is Failure.UNEXPECTED_REPLY
    assert observation.messages[-1].name == "not openvpn"


def test_a_closed_udp_port_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    observations = asyncio.run(handshake(OPENVPN_UDP, HOST, port, {}, Dialer(LOOPBACK), Clock(), 3.0))
    assert observations[-1].failure is Failure.CONNECTION_REFUSED


def test_the_guard_stops_a_handshake_before_any_packet() -> None:
    guard = AllowList.parse("198.51.100.0/24")
    (observation,) = asyncio.run(handshake(OPENVPN_UDP, HOST, 1194, {}, Dialer(guard), Clock(), 1.0))
    assert observation.failure is Failure.ADDRESS_NOT_ALLOWED and observation.messages == ()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def run_tcp(handler: Handler) -> tuple[TCPObservation, HandshakeObservation]:
    async def main() -> tuple[TCPObservation, HandshakeObservation]:
        async with tcp_server(handler) as port:
            connect, shake = await handshake(PPTP, HOST, port, {}, Dialer(LOOPBACK), Clock(), 2.0)
        assert isinstance(connect, TCPObservation) and isinstance(shake, HandshakeObservation)
        return connect, shake
    return asyncio.run(main())


async def _pptp_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.readexactly(156)
    assert pptp.parse_control_message(request).name == "Start-Control-Connection-Request"
    # The reply may come in pieces: the stream is reassembled.
    reply = pptp.start_control_connection_reply()
    for piece in (reply[:10], reply[10:]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.close()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(10)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _block_page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(10)
    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n" + bytes(200))
    await writer.drain()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


def test_a_tcp_handshake_records_its_connect_and_the_reply() -> None:
    connect, shake = run_tcp(_pptp_server)
    assert connect.failure is None and shake.failure is None
    assert shake.reply == "Start-Control-Connection-Reply" and shake.transport == "tcp"
    assert [(m.sent, m.size) for m in shake.messages] == [(True, 156), (False, 156)]


def test_a_reset_after_our_message() -> None:
    assert run_tcp(_reset)[1].failure is Failure.CONNECTION_RESET


def test_another_protocol_in_the_stream() -> None:
    assert run_tcp(_block_page)[1].failure is Failure.UNEXPECTED_REPLY


def test_tcp_silence_times_out() -> None:
    connect, shake = run_tcp(_silent)
    assert connect.failure is None and shake.failure is Failure.GENERIC_TIMEOUT
