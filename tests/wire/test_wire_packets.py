"""probe.wire.packets: every link type to the same header fields; the censor's
parser reads the IP layer as the decoder does; hostile bytes raise only WireError."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
from scapy.packet import Raw

from probe.wire import WireError, packets
from probe.wire.packets import (
    ICMP_ERROR,
    SYN,
    TCPSegment,
    build_tcp,
    build_udp,
    decoder_for,
    parse_ip,
    parse_tcp,
    parse_udp,
)

V4 = IP(src="203.0.113.7", dst="198.51.100.1", ttl=51, id=777) / TCP(
    sport=40000, dport=443, flags="S", seq=123) / Raw(b"hi")
PACKED = (socket.inet_aton("203.0.113.7"), socket.inet_aton("198.51.100.1"))


def sll2(packet: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 1, 1, 0, 6, b"\x02" * 8) + packet


@pytest.mark.parametrize(("linktype", "frame"), [
    (packets.LINKTYPE_ETHERNET, bytes(Ether() / V4)),
    (packets.LINKTYPE_ETHERNET, bytes(Ether() / Dot1Q(vlan=5) / Dot1Q(vlan=6) / V4)),
    (packets.LINKTYPE_ETHERNET, bytes(Ether() / V4) + b"\x00" * 20),  # trailing padding
    (packets.LINKTYPE_LINUX_SLL, bytes(CookedLinux(proto=0x0800) / V4)),
    (packets.LINKTYPE_LINUX_SLL2, sll2(bytes(V4))),
    (packets.LINKTYPE_RAW, bytes(V4)),
    (packets.LINKTYPE_IPV4, bytes(V4)),
    (packets.LINKTYPE_NULL, struct.pack("<I", 2) + bytes(V4)),
    (packets.LINKTYPE_NULL, struct.pack(">I", 2) + bytes(V4)),
    (packets.LINKTYPE_LOOP, struct.pack(">I", 2) + bytes(V4)),
])
def test_ipv4_tcp_through_every_link_type(linktype: int, frame: bytes) -> None:
    decoded = decoder_for(linktype)(frame)
    assert decoded is not None
    proto, src, dst, sport, dport, ttl, ip_id, flags, seq, _ack, payload = decoded
    assert (proto, (src, dst), sport, dport, ttl, ip_id, flags, seq, payload) == (
        6, PACKED, 40000, 443, 51, 777, SYN, 123, b"hi")


def test_ipv6_with_extension_headers_and_udp() -> None:
    packet = IPv6(src="2001:db8::7", dst="2001:db8::53", hlim=60) / IPv6ExtHdrHopByHop() / UDP(
        sport=5000, dport=53) / Raw(b"q")
    for linktype, frame in [(packets.LINKTYPE_IPV6, bytes(packet)),
                            (packets.LINKTYPE_NULL, struct.pack("<I", 30) + bytes(packet))]:
        decoded = decoder_for(linktype)(frame)
        assert decoded is not None
        assert decoded[0] == 17 and decoded[3:7] == (5000, 53, 60, None) and decoded[10] == b"q"


def test_fragments_and_other_protocols_are_skipped() -> None:
    fragment = IP(src="1.2.3.4", dst="5.6.7.8", flags="MF") / UDP() / Raw(b"x" * 20)
    later = IP(src="1.2.3.4", dst="5.6.7.8", frag=100, proto=17) / Raw(b"x" * 20)
    v6 = IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(m=1) / UDP() / Raw(b"x")
    raw = decoder_for(packets.LINKTYPE_RAW)
    assert raw(bytes(fragment)) is None and raw(bytes(later)) is None and raw(bytes(v6)) is None
    assert decoder_for(packets.LINKTYPE_ETHERNET)(bytes(Ether(type=0x0806) / Raw(b"arp" * 10))) is None
    assert raw(bytes(IP(proto=47) / Raw(b"gre"))) is None


def test_icmp_errors_quote_their_flow() -> None:
    error = IP(src="203.0.113.1", dst="203.0.113.7") / ICMP(type=3, code=3) / IPerror(
        src="203.0.113.7", dst="198.51.100.53") / UDPerror(sport=4000, dport=53)
    decoded = decoder_for(packets.LINKTYPE_RAW)(bytes(error)[:28 + 28])  # RFC 792: 8 bytes quoted
    assert decoded is not None and decoded[0] == ICMP_ERROR and decoded[3:5] == (3, 3)
    assert decoded[10] == (17, socket.inet_aton("203.0.113.7"), socket.inet_aton("198.51.100.53"),
                           4000, 53)
    echo = IP() / ICMP(type=8)
    assert decoder_for(packets.LINKTYPE_RAW)(bytes(echo)) is None


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(packets.SUPPORTED_LINKTYPES)), st.binary(max_size=120))
def test_hostile_frames_never_raise(linktype: int, frame: bytes) -> None:
    decoder_for(linktype)(frame)


# ------------------------------------------ the censor's parser, the same reading

CLIENT, SERVER = "198.51.100.2", "203.0.113.10"
CLIENT6, SERVER6 = "2001:db8:c::2", "2001:db8:5::10"
ADDRESSES = st.sampled_from([(CLIENT, SERVER), (CLIENT6, SERVER6)])
ETHERTYPE = {4: 0x0800, 6: 0x86DD}


@st.composite
def built_packets(draw: st.DrawFn) -> bytes:
    """A TCP segment or UDP datagram as the censor builds them."""
    src, dst = draw(ADDRESSES)
    payload = draw(st.binary(max_size=300))
    if draw(st.booleans()):
        return build_udp(src, dst, draw(st.integers(0, 65535)), draw(st.integers(0, 65535)), payload)
    options = draw(st.sampled_from([b"", b"\x01\x01\x08\x0a" + bytes(8)]))
    segment = TCPSegment(draw(st.integers(0, 65535)), draw(st.integers(0, 65535)),
                         draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                         draw(st.integers(0, 0x1FF)), draw(st.integers(0, 65535)), options, payload)
    return build_tcp(src, dst, segment)


@st.composite
def damaged_packets(draw: st.DrawFn) -> bytes:
    """Built packets cut short, padded, or with a header byte overwritten:
    the shapes that reach the length and offset checks."""
    data = bytearray(draw(built_packets()))
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, min(len(data), 80) - 1))
        data[index] = draw(st.integers(0, 255))
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    return bytes(data) + draw(st.binary(max_size=8))


def _facts(data: bytes) -> tuple[object, ...] | None:
    """What the censor's parser reads of a packet, in the decoder's terms."""
    try:
        packet = parse_ip(data)
        if packet.protocol == 6:
            segment = parse_tcp(packet)
            return (6, packet.src, packet.dst, segment.sport, segment.dport,
                    segment.flags & 0xFF, segment.seq, segment.ack, segment.payload)
        datagram = parse_udp(packet)
    except WireError:
        return None
    if datagram.payload != packet.transport[8:]:
        return None  # a UDP length short of the IP length: the decoder goes by IP
    return (17, packet.src, packet.dst, datagram.sport, datagram.dport, 0, 0, 0, datagram.payload)


def _decoded_facts(data: bytes) -> tuple[object, ...] | None:
    decoded = decoder_for(packets.LINKTYPE_RAW)(data)
    if decoded is None:
        return None
    proto, src, dst, sport, dport, _ttl, _id, flags, seq, ack, payload = decoded
    text = str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst))
    return (proto, *text, sport, dport, flags, seq, ack, payload)


@given(built_packets())
def test_the_censor_and_the_replay_read_a_packet_alike(data: bytes) -> None:
    """One codec: the packet the censor builds is what a replay of its capture sees."""
    assert _facts(data) is not None and _facts(data) == _decoded_facts(data)
    ethernet = bytes(12) + struct.pack("!H", ETHERTYPE[data[0] >> 4]) + data + bytes(6)
    decoded = decoder_for(packets.LINKTYPE_ETHERNET)(ethernet)
    assert decoded == decoder_for(packets.LINKTYPE_RAW)(data)


@settings(max_examples=500)
@given(damaged_packets() | st.binary(max_size=120))
def test_damaged_packets_read_alike_or_not_at_all(data: bytes) -> None:
    """Where the parser reads a damaged packet, the decoder reads the same;
    where the IP layer refuses it, both do (they share it). Only WireError."""
    facts = _facts(data)
    if facts is not None:
        assert facts == _decoded_facts(data)
    try:
        parse_ip(data)
    except WireError:
        assert decoder_for(packets.LINKTYPE_RAW)(data) is None


@settings(max_examples=500)
@given(damaged_packets(), st.sampled_from(sorted(packets.SUPPORTED_LINKTYPES)))
def test_damaged_frames_never_raise(data: bytes, linktype: int) -> None:
    ethertype = struct.pack("!H", ETHERTYPE.get(data[0] >> 4 if data else 0, 0))
    family = 2 if data[:1] < b"\x50" else 30
    link = {packets.LINKTYPE_ETHERNET: bytes(12) + ethertype,
            packets.LINKTYPE_NULL: struct.pack("<I", family),
            packets.LINKTYPE_LOOP: struct.pack(">I", family if family == 2 else 24),
            packets.LINKTYPE_LINUX_SLL: bytes(14) + ethertype,
            packets.LINKTYPE_LINUX_SLL2: sll2(b"", int.from_bytes(ethertype, "big"))}
    decoder_for(linktype)(link.get(linktype, b"") + data)
