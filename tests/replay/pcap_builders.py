"""Captures built packet by packet with scapy, for what a loopback run cannot
show: forged DNS answers with their own TTL, blackholed SYNs, ICMP errors,
RSTs injected on path, TLS 1.2 certificates in clear, segments out of order,
IPv6, DNS over TCP. Addresses are documentation ranges (never sent anywhere:
these packets only ever live in a file).
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scapy.layers.dns import DNS  # noqa: F401  (registers the DNS layer)
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

CLIENT = "203.0.113.7"
CLIENT6 = "2001:db8::7"
RESOLVER = "198.51.100.53"
ROUTER = "203.0.113.1"
BASE = 1_800_000_000.0  # a fixed capture start, so files are reproducible


@dataclass
class Capture:
    """Packets with their times (seconds after BASE)."""

    packets: list[tuple[float, Packet]] = field(default_factory=list)
    _port: int = 40000

    def add(self, t: float, packet: Packet) -> None:
        self.packets.append((t, packet))

    def port(self) -> int:
        self._port += 1
        return self._port

    def write(self, path: Path, link: str = "ether") -> Path:
        frames = []
        for t, packet in sorted(self.packets, key=lambda item: item[0]):
            frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / packet
            frame.time = BASE + t
            frames.append(frame)
        wrpcap(str(path), frames)
        return path


def list_yaml(name: str, rest: str) -> str:
    """A test list: its head (the prefix table ``lab``: 198.51.100.0/24), then ``rest``."""
    return (f'name: {name}\nversion: "1"\ndescription: Built packet by packet.\n'
            "updated: 2026-11-23\nprefixes:\n  lab: {cidrs: [198.51.100.0/24]}\n" + rest)


def ip(src: str, dst: str, ttl: int = 64, ident: int = 1) -> Packet:
    if ":" in src:
        return IPv6(src=src, dst=dst, hlim=ttl)
    return IP(src=src, dst=dst, ttl=ttl, id=ident)


# --------------------------------------------------------------------------
# DNS


def dns_exchange(
    cap: Capture, t: float, name: str, rtype: str, answers: Iterable[tuple[float, list[str], int]],
    rcode: int = 0, tcp: bool = False, server: str = RESOLVER,
) -> None:
    """A query at ``t`` and responses (delay, addresses, IP TTL)."""
    query = dns.message.make_query(name, rtype, use_edns=0, payload=1232)
    port = cap.port()
    replies: list[tuple[float, bytes, int]] = []
    for delay, addresses, ttl in answers:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        for address in addresses:
            kind = "AAAA" if ":" in address else "A"
            response.answer.append(dns.rrset.from_text(name + ".", 300, "IN", kind, address))
        replies.append((delay, response.to_wire(), ttl))
    if not tcp:
        cap.add(t, ip(CLIENT, server) / UDP(sport=port, dport=53) / Raw(query.to_wire()))
        for i, (delay, wire, ttl) in enumerate(replies):
            cap.add(t + delay, ip(server, CLIENT, ttl, 1000 + i) / UDP(sport=53, dport=port) / Raw(wire))
        return
    conn = Conversation(cap, CLIENT, server, 53, port)
    conn.handshake(t)
    wire = query.to_wire()
    conn.send(t + 0.002, struct.pack("!H", len(wire)) + wire)
    for delay, reply, _ttl in replies:
        conn.receive(t + delay, struct.pack("!H", len(reply)) + reply)
    conn.close(t + 0.05)


# --------------------------------------------------------------------------
# TCP


class Conversation:
    """A TCP connection with consistent sequence numbers."""

    def __init__(self, cap: Capture, client: str, server: str, port: int, cport: int | None = None,
                 server_ttl: int = 64) -> None:
        self.cap, self.client, self.server, self.dport = cap, client, server, port
        self.sport = cport or cap.port()
        self.cseq, self.sseq = 1000, 5000
        self.server_ttl = server_ttl

    def _c(self, flags: str, payload: bytes = b"", seq: int | None = None) -> Packet:
        packet = ip(self.client, self.server) / TCP(
            sport=self.sport, dport=self.dport, flags=flags,
            seq=self.cseq if seq is None else seq, ack=self.sseq)
        return packet / Raw(payload) if payload else packet

    def _s(self, flags: str, payload: bytes = b"", ttl: int | None = None) -> Packet:
        packet = ip(self.server, self.client, ttl or self.server_ttl) / TCP(
            sport=self.dport, dport=self.sport, flags=flags, seq=self.sseq, ack=self.cseq)
        return packet / Raw(payload) if payload else packet

    def syn(self, t: float) -> None:
        self.cap.add(t, self._c("S", seq=self.cseq - 1))

    def handshake(self, t: float) -> None:
        self.syn(t)
        self.cap.add(t + 0.001, ip(self.server, self.client, self.server_ttl) / TCP(
            sport=self.dport, dport=self.sport, flags="SA", seq=self.sseq - 1, ack=self.cseq))
        self.cap.add(t + 0.002, self._c("A"))

    def send(self, t: float, payload: bytes, pieces: int = 1, reverse: bool = False) -> None:
        """Client data, cut into ``pieces`` segments, optionally sent last first."""
        size = -(-len(payload) // pieces)
        segments = [(self.cseq + i, payload[i : i + size]) for i in range(0, len(payload), size)]
        if reverse:
            segments.reverse()
        for n, (seq, chunk) in enumerate(segments):
            self.cap.add(t + n * 0.0001, self._c("PA", chunk, seq=seq))
        self.cseq += len(payload)

    def receive(self, t: float, payload: bytes) -> None:
        self.cap.add(t, self._s("PA", payload))
        self.sseq += len(payload)

    def server_reset(self, t: float, ttl: int | None = None) -> None:
        self.cap.add(t, self._s("RA", ttl=ttl))

    def refuse(self, t: float) -> None:
        self.syn(t)
        self.cap.add(t + 0.001, ip(self.server, self.client) / TCP(
            sport=self.dport, dport=self.sport, flags="RA", seq=0, ack=self.cseq))

    def close(self, t: float) -> None:
        self.cap.add(t, self._c("FA"))
        self.cseq += 1
        self.cap.add(t + 0.001, self._s("FA"))
        self.sseq += 1
        self.cap.add(t + 0.002, self._c("A"))


def icmp_unreachable(cap: Capture, t: float, conn: Conversation, code: int = 1) -> None:
    cap.add(t, IP(src=ROUTER, dst=conn.client, ttl=60) / ICMP(type=3, code=code)
            / IPerror(src=conn.client, dst=conn.server)
            / TCPerror(sport=conn.sport, dport=conn.dport, seq=conn.cseq - 1))


# --------------------------------------------------------------------------
# UDP


class Datagrams:
    """A UDP flow between one client port and a server."""

    def __init__(self, cap: Capture, client: str, server: str, port: int) -> None:
        self.cap, self.client, self.server, self.dport = cap, client, server, port
        self.sport = cap.port()

    def send(self, t: float, payload: bytes) -> None:
        self.cap.add(t, ip(self.client, self.server) / UDP(sport=self.sport, dport=self.dport)
                     / Raw(payload))

    def receive(self, t: float, payload: bytes) -> None:
        self.cap.add(t, ip(self.server, self.client) / UDP(sport=self.dport, dport=self.sport)
                     / Raw(payload))

    def unreachable(self, t: float, code: int = 3) -> None:
        """ICMP destination unreachable about our datagram (3: port unreachable)."""
        self.cap.add(t, IP(src=self.server, dst=self.client) / ICMP(type=3, code=code)
                     / IPerror(src=self.client, dst=self.server)
                     / UDPerror(sport=self.sport, dport=self.dport))


# --------------------------------------------------------------------------
# TLS


def record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(body)) + body


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def client_hello(sni: str | None, alpn: Iterable[str] = (), versions: Iterable[int] = (),
                 random: bytes = b"\x11" * 32, padding: int = 0) -> bytes:
    extensions = b""
    if sni is not None:
        name = b"\x00" + _vec(sni.encode(), 2)
        extensions += struct.pack("!H", 0) + _vec(_vec(name, 2), 2)
    protocols = b"".join(_vec(p.encode(), 1) for p in alpn)
    if protocols:
        extensions += struct.pack("!H", 16) + _vec(_vec(protocols, 2), 2)
    listed = b"".join(struct.pack("!H", v) for v in versions)
    if listed:
        extensions += struct.pack("!H", 43) + _vec(_vec(listed, 1), 2)
    if padding:
        extensions += struct.pack("!H", 21) + _vec(b"\x00" * padding, 2)
    body = (struct.pack("!H", 0x0303) + random + _vec(b"", 1)
            + _vec(struct.pack("!HH", 0xC02F, 0x1301), 2) + _vec(b"\x00", 1) + _vec(extensions, 2))
    return handshake(1, body)


def server_hello(suite: int = 0xC02F, version: int | None = None, alpn: str | None = None) -> bytes:
    extensions = b""
    if version is not None:
        extensions += struct.pack("!H", 43) + _vec(struct.pack("!H", version), 2)
    if alpn is not None:
        extensions += struct.pack("!H", 16) + _vec(_vec(_vec(alpn.encode(), 1), 2), 2)
    body = struct.pack("!H", 0x0303) + b"\x22" * 32 + _vec(b"", 1) + struct.pack("!HB", suite, 0)
    if extensions:
        body += _vec(extensions, 2)
    return handshake(2, body)


def certificate12(ders: Iterable[bytes]) -> bytes:
    return handshake(11, _vec(b"".join(_vec(d, 3) for d in ders), 3))


def self_signed(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def alert(level: int, description: int) -> bytes:
    return record(21, bytes([level, description]))


def write_pcap(path: Path, packets: Iterable[tuple[int, bytes]], linktype: int = 1,
               nanoseconds: bool = True, endian: str = "<") -> Path:
    """A classic pcap file from (time in ns, frame) pairs, written by hand."""
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    with path.open("wb") as out:
        out.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for ns, frame in packets:
            fraction = ns % 1_000_000_000 if nanoseconds else ns % 1_000_000_000 // 1000
            out.write(struct.pack(endian + "IIII", ns // 1_000_000_000, fraction,
                                  len(frame), len(frame)))
            out.write(frame)
    return path
