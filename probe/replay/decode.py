"""Frame bytes to the few header fields the replay needs, with ``struct``.

Per-packet dissection with scapy costs tens of microseconds; this costs
one or two ``unpack_from`` calls per layer, which is what lets replay keep
up with tshark on large captures. Link layers: Ethernet (with 802.1Q /
802.1ad VLAN tags), Linux cooked v1 and v2, raw IP, BSD loopback (NULL and
LOOP). Network: IPv4 and IPv6 (skipping extension headers). Transport:
TCP and UDP, and ICMP/ICMPv6 errors, whose quoted header says which flow
they are about.

A decoded packet is a plain tuple, for speed::

    (proto, src, dst, sport, dport, ttl, ip_id, tcp_flags, seq, ack, payload)

``src``/``dst`` are packed addresses (4 or 16 bytes), ``ip_id`` is None for
IPv6. For an ICMP error, ``proto`` is :data:`ICMP_ERROR`, ``sport`` and
``dport`` are the ICMP type and code, and ``payload`` is the quoted
packet as ``(proto, src, dst, sport, dport)``. Anything else (ARP, IP
fragments after the first, other protocols, truncated headers) is None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from probe.replay import capfile

TCP = 6
UDP = 17
ICMP_ERROR = 256  # not an IP protocol number: a tag for ICMP errors

Decoded = tuple[int, bytes, bytes, int, int, int, int | None, int, int, int, object]
Decoder = Callable[[bytes], Decoded | None]

# TCP flags (RFC 9293 section 3.1).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
# BSD AF_INET6 differs by system (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30;
# Linux 10 when a NULL header is written there).
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})

_IPV4 = struct.Struct("!BxHHHBB2x4s4s")
_IPV6 = struct.Struct("!4xHBB16s16s")
_TCP = struct.Struct("!HHIIBB")
_UDP = struct.Struct("!HH")
_PORTS = struct.Struct("!HH")

# IPv6 extension headers that may come before the transport header
# (RFC 8200 section 4): hop-by-hop, routing, destination options. A
# fragment header (44) is handled on its own.
_IPV6_EXTENSIONS = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44

# ICMP messages that abort a connect (Linux tcp_v4_err / tcp_v6_err):
# destination unreachable and time exceeded.
_ICMP4_ERRORS = frozenset({3, 11})
_ICMP6_ERRORS = frozenset({1, 3})


def decoder_for(linktype: int) -> Decoder:
    """The decoder of one link type (one of ``capfile.SUPPORTED_LINKTYPES``)."""
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


def _raw(frame: bytes) -> Decoded | None:
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4:
        return _ipv4(frame, 0)
    if version == 6:
        return _ipv6(frame, 0)
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


def _ipv4(frame: bytes, offset: int) -> Decoded | None:
    if len(frame) < offset + 20:
        return None
    vihl, total, ip_id, fragment, ttl, proto, src, dst = _IPV4.unpack_from(frame, offset)
    header = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or header < 20:
        return None
    if fragment & 0x3FFF:
        # A fragment (more-fragments set, or a non-zero offset): its
        # transport header or payload is incomplete. Not reassembled.
        return None
    # Ethernet pads short frames: the IP total length says where IP ends.
    end = offset + total if total else len(frame)
    return _transport(frame, offset + header, min(end, len(frame)), proto, src, dst, ttl, ip_id, 4)


def _ipv6(frame: bytes, offset: int) -> Decoded | None:
    if len(frame) < offset + 40:
        return None
    length, proto, hops, src, dst = _IPV6.unpack_from(frame, offset)
    if frame[offset] >> 4 != 6:
        return None
    start = offset + 40
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
    return _transport(frame, start, end, proto, src, dst, hops, None, 6)


def _transport(
    frame: bytes, start: int, end: int, proto: int, src: bytes, dst: bytes,
    ttl: int, ip_id: int | None, version: int,
) -> Decoded | None:
    if proto == TCP:
        if end - start < 20:
            return None
        sport, dport, seq, ack, offset_byte, flags = _TCP.unpack_from(frame, start)
        data = start + (offset_byte >> 4) * 4
        return (TCP, src, dst, sport, dport, ttl, ip_id, flags, seq, ack,
                frame[data:end] if data < end else b"")
    if proto == UDP:
        if end - start < 8:
            return None
        sport, dport = _UDP.unpack_from(frame, start)
        return (UDP, src, dst, sport, dport, ttl, ip_id, 0, 0, 0, frame[start + 8 : end])
    if (proto == 1 and version == 4) or (proto == 58 and version == 6):
        return _icmp(frame, start, end, src, dst, ttl, ip_id, version)
    return None


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
        if len(quoted) < 20:
            return None
        header = (quoted[0] & 0x0F) * 4
        proto, src, dst = quoted[9], quoted[12:16], quoted[16:20]
    else:
        header = 40
        if len(quoted) < 40:
            return None
        proto, src, dst = quoted[6], quoted[8:24], quoted[24:40]
    if len(quoted) < header + 4:
        return None
    sport, dport = _PORTS.unpack_from(quoted, header)
    return (proto, src, dst, sport, dport, 0, None, 0, 0, 0, b"")


_DECODERS: dict[int, Decoder] = {
    capfile.LINKTYPE_NULL: _null,
    capfile.LINKTYPE_ETHERNET: _ethernet,
    capfile.LINKTYPE_RAW: _raw,
    capfile.LINKTYPE_LOOP: _loop,
    capfile.LINKTYPE_LINUX_SLL: _sll,
    capfile.LINKTYPE_IPV4: _raw,
    capfile.LINKTYPE_IPV6: _raw,
    capfile.LINKTYPE_LINUX_SLL2: _sll2,
    **{linktype: _raw for linktype in capfile.LINKTYPE_RAW_BSD},
}
