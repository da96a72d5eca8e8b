"""The extraction loop: packets in, finished flow records out, streaming.

One pass over the capture. Each packet is decoded with ``struct``
(``probe.wire.packets``) and handed to the DNS tracker, the TCP
connection it belongs to, or a UDP flow. Flows that are over (reset, both
sides closed, or idle for long) are turned into records and handed to
``emit`` at once, then forgotten, so memory follows the number of flows
open at the same time, never the size of the capture. Times are seconds
since the capture's first packet.
"""

from __future__ import annotations

import functools
import gc
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from probe.plan import BODY_CAP, DNS_TIMEOUT
from probe.replay import dns as replay_dns
from probe.replay.capfile import CaptureReader
from probe.replay.chunks import ChunkLog
from probe.replay.connection import Analyzer, Connection
from probe.replay.http import HTTPTracker
from probe.replay.records import ICMPError, Record, UDPFlow
from probe.replay.tls import Inner, TLSTracker
from probe.replay.tlskeys import KeyLog
from probe.wire import sstp
from probe.wire.http1 import looks_like_request
from probe.wire.packets import ACK, ICMP_ERROR, SYN, TCP, UDP, Decoder, decoder_for

# What an SSTP client sends first inside TLS ([MS-SSTP] section 3.2.5):
# a request line that HTTP/1.x readers refuse (its Content-Length is 20 digits).
_SSTP_REQUEST = f"{sstp.METHOD} ".encode()

# Seconds of capture time between sweeps for finished flows.
_SWEEP_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    # How long a query waits for responses, and the HTTP body bytes kept:
    # the live check's (a replay passes the run's own settings).
    dns_timeout: float = DNS_TIMEOUT
    body_cap: int = BODY_CAP
    needles: tuple[str, ...] = ()  # body_contains strings to look for
    keys: KeyLog | None = None  # TLS key log given by the user
    # A closed connection waits this long for stragglers (retransmissions,
    # a late RST) before it is finished.
    linger: float = 1.0
    # Connections that never completed their handshake and have been
    # silent this long are over (longer than any SYN retransmission gap
    # within the live timeouts).
    handshake_idle: float = 30.0
    idle: float = 300.0  # any other flow silent this long is over


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    format: str  # "pcap" or "pcapng"
    packets: int
    undecoded: int  # not IPv4/IPv6 TCP, UDP or ICMP error (ARP, fragments ...)
    first_ns: int | None  # time of the first packet, ns since the epoch
    duration: float  # seconds from the first to the last packet
    warnings: tuple[str, ...]


@dataclass(slots=True)
class _UDP:
    client: str
    server: str
    key: tuple[bytes, int, bytes, int]
    t_first: float
    t_last: float
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # packets c/s, bytes c/s
    icmp: ICMPError | None = None
    datagrams: ChunkLog = field(default_factory=ChunkLog)


@functools.lru_cache(maxsize=1 << 16)
def address_text(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


class Extractor:
    """Run once over a capture; ``emit`` receives every finished record."""

    def __init__(self, options: ExtractOptions, emit: Callable[[Record], None]) -> None:
        self._options = options
        self._emit = emit
        self._dns = replay_dns.DNSTracker(emit, options.dns_timeout, address_text)
        self._tcp: dict[tuple[bytes, int, bytes, int], Connection] = {}
        self._connections: dict[tuple[bytes, int, bytes, int], Connection] = {}
        self._udp: dict[tuple[bytes, int, bytes, int], _UDP] = {}
        self._keys = KeyLog()
        if options.keys is not None:
            self._keys.merge(options.keys)
        self._reader: CaptureReader | None = None
        self._secrets_read = 0

    def run(self, reader: CaptureReader) -> CaptureSummary:
        # The cyclic garbage collector would walk the flow tables again and
        # again (a third of the run time); flows hold no reference cycles, so
        # reference counting frees them, and the collector can rest meanwhile.
        # tests/replay/test_engine.py checks that nothing is left for it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(reader)
        finally:
            if collecting:
                gc.enable()

    def _run(self, reader: CaptureReader) -> CaptureSummary:
        self._reader = reader
        decoder: Decoder = decoder_for(1)  # replaced at the first packet
        last_linktype = -1
        first: int | None = None
        t = 0.0
        undecoded = 0
        next_sweep = _SWEEP_EVERY
        tcp, udp, icmp = self._on_tcp, self._on_udp, self._on_icmp
        for ns, linktype, frame in reader:
            if first is None:
                first = ns
            t = (ns - first) / 1e9
            if linktype != last_linktype:  # pcapng interfaces may differ
                decoder, last_linktype = decoder_for(linktype), linktype
            packet = decoder(frame)
            if packet is None:
                undecoded += 1
            elif packet[0] == TCP:
                tcp(t, packet)
            elif packet[0] == UDP:
                udp(t, packet)
            elif packet[0] == ICMP_ERROR:
                icmp(t, packet)
            if t >= next_sweep:
                self._sweep(t)
                next_sweep = t + _SWEEP_EVERY
        self._flush()
        return CaptureSummary(
            format=reader.format,
            packets=reader.packets,
            undecoded=undecoded,
            first_ns=first,
            duration=round(t, 6),
            warnings=tuple(reader.warnings),
        )

    # -- TCP -------------------------------------------------------------------

    def _on_tcp(self, t: float, packet: tuple) -> None:  # type: ignore[type-arg]
        _, src, dst, sport, dport, ttl, ip_id, flags, seq, _ack, payload = packet
        key = (src, sport, dst, dport)
        connection = self._tcp.get(key)
        opening = flags & SYN and not flags & ACK
        if connection is not None and opening and connection.key == key and (
            connection.closed is not None or connection.t_synack is not None
        ):
            # The same ports again after the old connection ended (or a
            # SYN after an established one): a new connection.
            self._finish(connection)
            connection = None
        if connection is None:
            if flags & SYN and flags & ACK:
                key = (dst, dport, src, sport)  # the SYN-ACK comes from the server
            elif not opening and sport < dport:
                key = (dst, dport, src, sport)  # mid-connection: the lower port serves
            connection = Connection(
                key, address_text(key[0]), address_text(key[2]), t, self._choose
            )
            self._tcp[key] = self._tcp[(key[2], key[3], key[0], key[1])] = connection
            self._connections[key] = connection
        connection.packet(t, src == connection.key[0] and sport == connection.key[1],
                          ttl, ip_id, flags, seq, payload)

    def _choose(self, connection: Connection, first: bytes) -> Analyzer:
        """The analyser for a connection, from the client's first bytes."""
        server = (connection.key[2], connection.server_port)
        if connection.server_port == replay_dns.DNS_PORT or server in self._dns.servers:
            return replay_dns.DNSStream(self._dns, connection.key)
        if first[:1] == b"\x16" and first[1:2] == b"\x03":
            # The factory gets the address, not the connection: a reference
            # back to the connection would make a cycle (see run()).
            return TLSTracker(self._keylog(), functools.partial(self._inner, connection.server))
        if looks_like_request(first):
            return self._http(connection.server)
        # Another protocol (OpenVPN, PPTP ...): its first bytes, for later.
        return ChunkLog()

    def _inner(self, server: str, from_client: bool, first: bytes) -> Inner:
        """What reads the application data of a TLS connection."""
        if from_client and first.startswith(_SSTP_REQUEST):
            return ChunkLog()
        return self._http(server)

    def _http(self, server: str) -> HTTPTracker:
        return HTTPTracker(server, self._options.body_cap, self._options.needles)

    def _keylog(self) -> KeyLog | None:
        """The user's key log plus any the capture carries (pcapng DSBs)."""
        secrets = self._reader.secrets if self._reader is not None else []
        if len(secrets) > self._secrets_read:
            self._keys.merge(KeyLog.parse(secrets[self._secrets_read :]))
            self._secrets_read = len(secrets)
        return self._keys if len(self._keys) else None

    def _finish(self, connection: Connection) -> None:
        key = connection.key
        self._connections.pop(key, None)
        for k in (key, (key[2], key[3], key[0], key[1])):
            if self._tcp.get(k) is connection:
                del self._tcp[k]
        self._emit(connection.record())

    # -- UDP ---------------------------------------------------------------------

    def _on_udp(self, t: float, packet: tuple) -> None:  # type: ignore[type-arg]
        _, src, dst, sport, dport, ttl, ip_id, _, _, _, payload = packet
        forward = (src, sport, dst, dport)
        backward = (dst, dport, src, sport)
        tracker = self._dns
        if (
            sport == replay_dns.DNS_PORT or dport == replay_dns.DNS_PORT
            or tracker.expects(backward) or replay_dns.looks_like_query(payload)
        ):
            message = replay_dns.decode(payload)
            if message is not None and not message.response:
                tracker.query(t, forward, "udp", message)
                return
            if tracker.expects(backward):
                tracker.response(t, backward, message, ttl, ip_id)
                return
        self._udp_flow(t, forward, backward, payload)

    def _udp_flow(
        self, t: float, forward: tuple[bytes, int, bytes, int],
        backward: tuple[bytes, int, bytes, int], payload: bytes,
    ) -> None:
        flow = self._udp.get(forward)
        if flow is None:
            flow = _UDP(address_text(forward[0]), address_text(forward[2]), forward, t, t)
            self._udp[forward] = self._udp[backward] = flow
        side = 0 if flow.key == forward else 1
        flow.counts[side] += 1
        flow.counts[2 + side] += len(payload)
        flow.t_last = t
        flow.datagrams.add(t, side == 0, payload)

    def _finish_udp(self, flow: _UDP) -> None:
        key = flow.key
        self._udp.pop(key, None)
        self._udp.pop((key[2], key[3], key[0], key[1]), None)
        packets_c, packets_s, bytes_c, bytes_s = flow.counts
        self._emit(UDPFlow(
            client=flow.client, client_port=key[1], server=flow.server, server_port=key[3],
            t_first=round(flow.t_first, 6), t_last=round(flow.t_last, 6),
            packets_client=packets_c, packets_server=packets_s,
            bytes_client=bytes_c, bytes_server=bytes_s, icmp=flow.icmp,
            datagrams=flow.datagrams.chunks,
        ))

    # -- ICMP --------------------------------------------------------------------

    def _on_icmp(self, t: float, packet: tuple) -> None:  # type: ignore[type-arg]
        _, sender, _dst, kind, code, _ttl, _ip_id, _, _, _, quoted = packet
        proto, src, dst, sport, dport = quoted
        error = ICMPError(round(t, 6), address_text(sender), 4 if len(sender) == 4 else 6,
                          kind, code)
        key = (src, sport, dst, dport)
        if proto == TCP:
            connection = self._tcp.get(key)
            if connection is not None and connection.icmp is None:
                connection.icmp = error
                connection.t_last = t
        else:
            self._dns.icmp(key, error)
            flow = self._udp.get(key)
            if flow is not None and flow.icmp is None:
                flow.icmp = error

    # -- housekeeping --------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        options = self._options
        self._dns.expire(now)
        for connection in list(self._connections.values()):
            silent = now - connection.t_last
            if (
                (connection.closed is not None and now - connection.closed > options.linger)
                or (connection.t_established is None and silent > options.handshake_idle)
                or silent > options.idle
            ):
                self._finish(connection)
        for key, flow in list(self._udp.items()):
            if key == flow.key and now - flow.t_last > options.idle:
                self._finish_udp(flow)

    def _flush(self) -> None:
        self._dns.flush()
        for connection in list(self._connections.values()):
            self._finish(connection)
        for key, flow in list(self._udp.items()):
            if key == flow.key:
                self._finish_udp(flow)
