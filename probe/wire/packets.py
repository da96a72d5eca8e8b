"""IPv4/IPv6 packets with TCP or UDP, both ways: read what a capture or a
sniffer saw, build what the lab's censor injects.

Sans-I/O and stdlib only. One reading of each header serves two callers:

* **Decoding** (the replay's hot path): ``decoder_for(linktype)(frame)``
  turns a captured frame into a flat tuple with one or two ``unpack_from``
  calls per layer; per-packet dissection with scapy would cost tens of
  microseconds, this is what lets replay keep up with tshark. Anything it
  does not follow (ARP, IP fragments, other protocols, truncated headers)
  is None: a capture holds such packets, they are not errors.
* **Parsing** (the lab's censor): :func:`parse_ip`, :func:`parse_tcp` and
  :func:`parse_udp` give frozen dataclasses with what re-sending a packet
  needs (the TCP window and options too), and raise only :class:`WireError`.
  They read the IP layer with the decoder's own functions, so the censor
  and the replay of its capture agree on which packets there are.

Link layers: Ethernet (with 802.1Q / 802.1ad VLAN tags), Linux cooked v1
and v2, raw IP, BSD loopback (NULL and LOOP). Network: IPv4 (RFC 791) and
IPv6 (RFC 8200, skipping extension headers). Transport: TCP (RFC 9293),
UDP (RFC 768), and ICMP/ICMPv6 errors (RFC 792, RFC 4443), whose quoted
header says which flow they are about.

A decoded packet is a plain tuple, for speed::

    (proto, src, dst, sport, dport, ttl, ip_id, tcp_flags, seq, ack, payload)

``src``/``dst`` are packed addresses (4 or 16 bytes), ``ip_id`` is None for
IPv6. For an ICMP error, ``proto`` is :data:`ICMP_ERROR`, ``sport`` and
``dport`` are the ICMP type and code, and ``payload`` is the quoted
packet as ``(proto, src, dst, sport, dport)``.

Building always recomputes checksums: packets sniffed on a veth carry a
partial checksum (the sender offloaded it), so a copied header's checksum
field cannot be trusted.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from probe.wire.cursor import WireError

__all__ = [
    "ACK",
    "FIN",
    "ICMP_ERROR",
    "PSH",
    "RST",
    "SUPPORTED_LINKTYPES",
    "SYN",
    "TCP",
    "UDP",
    "Decoded",
    "Decoder",
    "IPPacket",
    "TCPSegment",
    "UDPDatagram",
    "build_tcp",
    "build_udp",
    "decoder_for",
    "max_tcp_payload",
    "parse_ip",
    "parse_tcp",
    "parse_udp",
    "split_segment",
]

TCP = 6
UDP = 17
ICMP_ERROR = 256  # not an IP protocol number: a tag for ICMP errors

Decoded = tuple[int, bytes, bytes, int, int, int, int | None, int, int, int, object]
Decoder = Callable[[bytes], Decoded | None]

# TCP control bits (RFC 9293 section 3.1).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10

# Link types (https://www.tcpdump.org/linktypes.html) the decoder reads.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW as some BSDs wrote it into files before LINKTYPE_RAW existed.
LINKTYPE_RAW_BSD = (12, 14)

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
# BSD AF_INET6 differs by system (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30;
# Linux 10 when a NULL header is written there).
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})

_IPV4 = struct.Struct("!BxHHHBB2x4s4s")
_IPV6 = struct.Struct("!4xHBB16s16s")
# RFC 9293 section 3.1: ports, sequence and acknowledgment numbers, data
# offset (4 bits) with the control bits, window. The decoder reads only up
# to the control bits' byte, and each as a byte (measurably faster).
_TCP = struct.Struct("!HHIIHH")
_TCP_DECODED = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HHH")  # RFC 768: ports, length
_PORTS = struct.Struct("!HH")
_IPV4_HEADER = 20
_IPV6_HEADER = 40
_TCP_HEADER = 20
_UDP_HEADER = 8
_TTL = 64

# IPv6 extension headers that may come before the transport header
# (RFC 8200 section 4): hop-by-hop, routing, destination options. A
# fragment header (44) is handled on its own.
_IPV6_EXTENSIONS = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44

# ICMP messages that abort a connect (Linux tcp_v4_err / tcp_v6_err):
# destination unreachable and time exceeded.
_ICMP4_ERRORS = frozenset({3, 11})
_ICMP6_ERRORS = frozenset({1, 3})

# What the IP layer hands on: the frame, where the transport starts and
# ends in it, the protocol, the packed addresses, the TTL (hop limit), the
# IPv4 identification (None for IPv6) and the IP version. The IP functions
# return what it returns, or None.
_Then = Callable[[bytes, int, int, int, bytes, bytes, int, "int | None", int], Any]


# --------------------------------------------------------------------------
# Decoding: frames of a capture to tuples


def decoder_for(linktype: int) -> Decoder:
    """The decoder of one link type (one of :data:`SUPPORTED_LINKTYPES`)."""
    return _DECODERS[linktype]


def _ethernet(frame: bytes) -> Decoded | None:
    if len(frame) < 14:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == _ETH_IPV4:  # the common case, without the detour
        return _ipv4(frame, 14)
    offset = 14
    while ethertype in _ETH_VLAN and len(frame) >= offset + 4:
        ethertype = (frame[offset + 2] << 8) | frame[offset + 3]
        offset += 4
    return _network(frame, offset, ethertype)


def _sll(frame: bytes) -> Decoded | None:
    # Linux cooked v1: 16 bytes, protocol (an ethertype) last.
    if len(frame) < 16:
        return None
    return _network(frame, 16, (frame[14] << 8) | frame[15])


def _sll2(frame: bytes) -> Decoded | None:
    # Linux cooked v2: 20 bytes, protocol first.
    if len(frame) < 20:
        return None
    return _network(frame, 20, (frame[0] << 8) | frame[1])


def _network(frame: bytes, offset: int, ethertype: int) -> Decoded | None:
    if ethertype == _ETH_IPV4:
        return _ipv4(frame, offset)
    if ethertype == _ETH_IPV6:
        return _ipv6(frame, offset)
    return None


def _null(frame: bytes) -> Decoded | None:
    # The address family in the host byte order of the capturing machine.
    if len(frame) < 4:
        return None
    family = int.from_bytes(frame[:4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(frame[:4], "big")
    return _family(frame, family)


def _loop(frame: bytes) -> Decoded | None:
    # OpenBSD's loopback: the family in network byte order.
    if len(frame) < 4:
        return None
    return _family(frame, int.from_bytes(frame[:4], "big"))


def _family(frame: bytes, family: int) -> Decoded | None:
    if family == _AF_INET:
        return _ipv4(frame, 4)
    if family in _AF_INET6:
        return _ipv6(frame, 4)
    return None


def _transport(
    frame: bytes, start: int, end: int, proto: int, src: bytes, dst: bytes,
    ttl: int, ip_id: int | None, version: int,
) -> Decoded | None:
    """The decoder's transport layer: the tuple of the module docstring."""
    if proto == TCP:
        if end - start < _TCP_HEADER:
            return None
        sport, dport, seq, ack, offset_byte, flags = _TCP_DECODED.unpack_from(frame, start)
        data = start + (offset_byte >> 4) * 4
        return (TCP, src, dst, sport, dport, ttl, ip_id, flags, seq, ack,
                frame[data:end] if data < end else b"")
    if proto == UDP:
        if end - start < _UDP_HEADER:
            return None
        sport, dport = _PORTS.unpack_from(frame, start)
        return (UDP, src, dst, sport, dport, ttl, ip_id, 0, 0, 0, frame[start + 8 : end])
    if (proto == 1 and version == 4) or (proto == 58 and version == 6):
        return _icmp(frame, start, end, src, dst, ttl, ip_id, version)
    return None


# --------------------------------------------------------------------------
# The IP layer, shared: ``then`` says what to make of the transport


def _raw(frame: bytes, then: _Then = _transport) -> Any:
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4:
        return _ipv4(frame, 0, then)
    if version == 6:
        return _ipv6(frame, 0, then)
    return None


def _ipv4(frame: bytes, offset: int, then: _Then = _transport) -> Any:
    if len(frame) < offset + _IPV4_HEADER:
        return None
    vihl, total, ip_id, fragment, ttl, proto, src, dst = _IPV4.unpack_from(frame, offset)
    header = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or header < _IPV4_HEADER:
        return None
    if fragment & 0x3FFF:
        # A fragment (more-fragments set, or a non-zero offset): its
        # transport header or payload is incomplete. Not reassembled.
        return None
    # Ethernet pads short frames: the IP total length says where IP ends.
    # A total of 0 is a segmentation offload's super-packet (or a capture
    # of one): it ends with the frame.
    end = offset + total if total else len(frame)
    return then(frame, offset + header, min(end, len(frame)), proto, src, dst, ttl, ip_id, 4)


def _ipv6(frame: bytes, offset: int, then: _Then = _transport) -> Any:
    if len(frame) < offset + _IPV6_HEADER:
        return None
    length, proto, hops, src, dst = _IPV6.unpack_from(frame, offset)
    if frame[offset] >> 4 != 6:
        return None
    start = offset + _IPV6_HEADER
    end = min(start + length, len(frame)) if length else len(frame)
    while proto in _IPV6_EXTENSIONS or proto == _IPV6_FRAGMENT:
        if start + 8 > end:
            return None
        if proto == _IPV6_FRAGMENT:
            offset_flags = (frame[start + 2] << 8) | frame[start + 3]
            if offset_flags & 0xFFF9:  # a real fragment, not an atomic one
                return None
            proto, start = frame[start], start + 8
        else:
            proto, start = frame[start], start + 8 + frame[start + 1] * 8
    return then(frame, start, end, proto, src, dst, hops, None, 6)


def _icmp(
    frame: bytes, start: int, end: int, src: bytes, dst: bytes, ttl: int,
    ip_id: int | None, version: int,
) -> Decoded | None:
    if end - start < 8:
        return None
    kind, code = frame[start], frame[start + 1]
    if kind not in (_ICMP4_ERRORS if version == 4 else _ICMP6_ERRORS):
        return None
    quoted = frame[start + 8 : end]
    inner = _ipv4(quoted, 0) if version == 4 else _ipv6(quoted, 0)
    if inner is None:
        # RFC 792 quotes only 8 bytes of the transport header: enough for
        # ports, too short for the TCP decoder. Read the ports by hand.
        inner = _quoted_ports(quoted, version)
    if inner is None or inner[0] not in (TCP, UDP):
        return None
    return (ICMP_ERROR, src, dst, kind, code, ttl, ip_id, 0, 0, 0, inner[:5])


def _quoted_ports(quoted: bytes, version: int) -> Decoded | None:
    if version == 4:
        if len(quoted) < _IPV4_HEADER:
            return None
        header = (quoted[0] & 0x0F) * 4
        proto, src, dst = quoted[9], quoted[12:16], quoted[16:20]
    else:
        header = _IPV6_HEADER
        if len(quoted) < _IPV6_HEADER:
            return None
        proto, src, dst = quoted[6], quoted[8:24], quoted[24:40]
    if len(quoted) < header + 4:
        return None
    sport, dport = _PORTS.unpack_from(quoted, header)
    return (proto, src, dst, sport, dport, 0, None, 0, 0, 0, b"")


_DECODERS: dict[int, Decoder] = {
    LINKTYPE_NULL: _null,
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_RAW: _raw,
    LINKTYPE_LOOP: _loop,
    LINKTYPE_LINUX_SLL: _sll,
    LINKTYPE_IPV4: _raw,
    LINKTYPE_IPV6: _raw,
    LINKTYPE_LINUX_SLL2: _sll2,
    **{linktype: _raw for linktype in LINKTYPE_RAW_BSD},
}
SUPPORTED_LINKTYPES = frozenset(_DECODERS)


# --------------------------------------------------------------------------
# Parsing: one IP packet to dataclasses, WireError on what is not one


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
    """One IP packet (no link-layer header), read as the decoder reads it:
    trailing link padding cut off, IPv6 extension headers skipped."""
    packet = _raw(data, _ip_packet)
    if packet is None:
        raise WireError(f"IP packet: {len(data)} bytes that are not an unfragmented IPv4 or IPv6 packet")
    return packet


def _ip_packet(
    frame: bytes, start: int, end: int, proto: int, src: bytes, dst: bytes,
    ttl: int, ip_id: int | None, version: int,
) -> IPPacket:
    address = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return IPPacket(version, str(address(src)), str(address(dst)), proto, frame[start:end])


def parse_tcp(packet: IPPacket) -> TCPSegment:
    """The segment with its window and options (what re-sending it keeps)."""
    data = packet.transport
    if packet.protocol != TCP or len(data) < _TCP_HEADER:
        raise WireError(f"TCP: not a TCP segment (protocol {packet.protocol}, {len(data)} bytes)")
    sport, dport, seq, ack, offset_flags, window = _TCP.unpack_from(data)
    header_length = (offset_flags >> 12) * 4
    if header_length < _TCP_HEADER or header_length > len(data):
        raise WireError(f"TCP: data offset {header_length} in a {len(data)}-byte segment")
    # The control bits and the one below them (NS of RFC 3540, reused by
    # AccECN): a relayed segment keeps them all.
    return TCPSegment(sport, dport, seq, ack, offset_flags & 0x01FF, window,
                      data[_TCP_HEADER:header_length], data[header_length:])


def parse_udp(packet: IPPacket) -> UDPDatagram:
    data = packet.transport
    if packet.protocol != UDP or len(data) < _UDP_HEADER:
        raise WireError(f"UDP: not a UDP datagram (protocol {packet.protocol}, {len(data)} bytes)")
    sport, dport, length = _UDP.unpack_from(data)
    if length < _UDP_HEADER or length > len(data):
        raise WireError(f"UDP: length {length} in a {len(data)}-byte datagram")
    return UDPDatagram(sport, dport, data[_UDP_HEADER:length])


# --------------------------------------------------------------------------
# Building


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
