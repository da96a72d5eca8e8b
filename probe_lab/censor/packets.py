"""IPv4/IPv6 + TCP/UDP packets as bytes: parse what the censor sniffs, build what it injects.

Sans-I/O and stdlib only. The parser meets whatever crosses the wire, so
it raises only :class:`PacketError`. It knows exactly what the lab needs:
IPv4 without fragments (RFC 791), IPv6 whose next header is the transport
(RFC 8200; extension headers are refused, the lab's stacks send none).

Checksums are always recomputed when building: packets sniffed on a veth
carry a partial checksum (the sender offloaded it), so a copied header's
checksum field cannot be trusted.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, replace

__all__ = [
    "FIN",
    "PSH",
    "ACK",
    "RST",
    "SYN",
    "IPPacket",
    "PacketError",
    "TCPSegment",
    "UDPDatagram",
    "build_tcp",
    "build_udp",
    "max_tcp_payload",
    "parse_ip",
    "parse_tcp",
    "parse_udp",
    "split_segment",
]

TCP = 6
UDP = 17
# RFC 9293 section 3.1: the control bits.
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_IPV4_HEADER = 20
_IPV6_HEADER = 40
_TCP_HEADER = 20
_UDP_HEADER = 8
_TTL = 64


class PacketError(ValueError):
    """These bytes are not a packet the censor understands."""


@dataclass(frozen=True, slots=True)
class IPPacket:
    version: int  # 4 or 6
    src: str
    dst: str
    protocol: int  # the transport: 6 TCP, 17 UDP ...
    transport: bytes  # the transport header and its payload


@dataclass(frozen=True, slots=True)
class TCPSegment:
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int = 0
    options: bytes = b""
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class UDPDatagram:
    sport: int
    dport: int
    payload: bytes


def parse_ip(data: bytes) -> IPPacket:
    """One IP packet (no link-layer header); trailing link padding is cut off."""
    if not data:
        raise PacketError("empty packet")
    version = data[0] >> 4
    if version == 4:
        return _parse_ipv4(data)
    if version == 6:
        return _parse_ipv6(data)
    raise PacketError(f"IP version {version}")


def _parse_ipv4(data: bytes) -> IPPacket:
    # RFC 791 section 3.1.
    if len(data) < _IPV4_HEADER:
        raise PacketError("short IPv4 header")
    header_length = (data[0] & 0x0F) * 4
    total_length, flags_fragment = struct.unpack_from("!H2xH", data, 2)
    if header_length < _IPV4_HEADER or total_length < header_length or total_length > len(data):
        raise PacketError("bad IPv4 lengths")
    if flags_fragment & 0x3FFF:  # MF set or a non-zero offset
        raise PacketError("IPv4 fragment")
    return IPPacket(
        4,
        str(ipaddress.IPv4Address(data[12:16])),
        str(ipaddress.IPv4Address(data[16:20])),
        data[9],
        data[header_length:total_length],
    )


def _parse_ipv6(data: bytes) -> IPPacket:
    # RFC 8200 section 3.
    if len(data) < _IPV6_HEADER:
        raise PacketError("short IPv6 header")
    (payload_length,) = struct.unpack_from("!H", data, 4)
    next_header = data[6]
    if next_header not in (TCP, UDP):
        raise PacketError(f"IPv6 next header {next_header}")
    if _IPV6_HEADER + payload_length > len(data):
        raise PacketError("bad IPv6 payload length")
    return IPPacket(
        6,
        str(ipaddress.IPv6Address(data[8:24])),
        str(ipaddress.IPv6Address(data[24:40])),
        next_header,
        data[_IPV6_HEADER : _IPV6_HEADER + payload_length],
    )


def parse_tcp(packet: IPPacket) -> TCPSegment:
    data = packet.transport
    if packet.protocol != TCP or len(data) < _TCP_HEADER:
        raise PacketError("not a TCP segment")
    sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", data)
    header_length = (offset_flags >> 12) * 4
    if header_length < _TCP_HEADER or header_length > len(data):
        raise PacketError("bad TCP data offset")
    return TCPSegment(
        sport,
        dport,
        seq,
        ack,
        offset_flags & 0x01FF,
        window,
        data[_TCP_HEADER:header_length],
        data[header_length:],
    )


def parse_udp(packet: IPPacket) -> UDPDatagram:
    data = packet.transport
    if packet.protocol != UDP or len(data) < _UDP_HEADER:
        raise PacketError("not a UDP datagram")
    sport, dport, length = struct.unpack_from("!HHH", data)
    if length < _UDP_HEADER or length > len(data):
        raise PacketError("bad UDP length")
    return UDPDatagram(sport, dport, data[_UDP_HEADER:length])


def build_tcp(src: str, dst: str, segment: TCPSegment) -> bytes:
    if len(segment.options) % 4:
        raise ValueError("TCP options must be padded to 32 bits")
    offset = (_TCP_HEADER + len(segment.options)) // 4
    header = struct.pack(
        "!HHIIHHHH",
        segment.sport,
        segment.dport,
        segment.seq & 0xFFFFFFFF,
        segment.ack & 0xFFFFFFFF,
        offset << 12 | segment.flags,
        segment.window,
        0,
        0,
    )
    return _build_ip(src, dst, TCP, header + segment.options + segment.payload, checksum_at=16)


def build_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    header = struct.pack("!HHHH", sport, dport, _UDP_HEADER + len(payload), 0)
    return _build_ip(src, dst, UDP, header + payload, checksum_at=6)


def split_segment(segment: TCPSegment, max_payload: int) -> list[TCPSegment]:
    """Cut a segment's payload into pieces of at most ``max_payload`` bytes.

    A sniffed packet may be a GSO super-packet far larger than the MTU
    (veth passes them whole); re-sent as one, it would not fit the wire.
    PSH and FIN belong to the last piece only (RFC 9293 section 3.9.1).
    """
    if len(segment.payload) <= max_payload:
        return [segment]
    last_flags = segment.flags
    flags = last_flags & ~(PSH | FIN)
    pieces = []
    for start in range(0, len(segment.payload), max_payload):
        chunk = segment.payload[start : start + max_payload]
        final = start + max_payload >= len(segment.payload)
        pieces.append(
            replace(
                segment,
                seq=(segment.seq + start) & 0xFFFFFFFF,
                flags=last_flags if final else flags,
                payload=chunk,
            )
        )
    return pieces


def max_tcp_payload(version: int, segment: TCPSegment, mtu: int) -> int:
    """The most payload ``segment`` (with its options) can carry in one packet of ``mtu`` bytes."""
    ip_header = _IPV4_HEADER if version == 4 else _IPV6_HEADER
    return mtu - ip_header - _TCP_HEADER - len(segment.options)


def _build_ip(src: str, dst: str, protocol: int, transport: bytes, checksum_at: int) -> bytes:
    source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if source.version != destination.version:
        raise ValueError(f"{src} and {dst} are of different IP versions")
    # RFC 9293 section 3.1 / RFC 768 / RFC 8200 section 8.1: the checksum
    # covers a pseudo-header of the addresses, protocol and length.
    if source.version == 4:
        pseudo = source.packed + destination.packed + struct.pack("!xBH", protocol, len(transport))
    else:
        pseudo = source.packed + destination.packed + struct.pack("!I3xB", len(transport), protocol)
    checksum = _checksum(pseudo + transport)
    if protocol == UDP and checksum == 0:
        checksum = 0xFFFF  # RFC 768: zero means "no checksum"
    transport = transport[:checksum_at] + struct.pack("!H", checksum) + transport[checksum_at + 2 :]
    if source.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            _IPV4_HEADER + len(transport),
            0,
            0x4000,  # DF
            _TTL,
            protocol,
            0,
            source.packed,
            destination.packed,
        )
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    else:
        header = struct.pack("!IHBB", 6 << 28, len(transport), protocol, _TTL)
        header += source.packed + destination.packed
    return header + transport


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
