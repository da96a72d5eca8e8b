"""probe.replay.decode: every link type to the same header fields."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
from scapy.packet import Raw

from probe.replay import capfile
from probe.replay.decode import ICMP_ERROR, SYN, decoder_for

V4 = IP(src="203.0.113.7", dst="198.51.100.1", ttl=51, id=777) / TCP(
    sport=40000, dport=443, flags="S", seq=123) / Raw(b"hi")
PACKED = (socket.inet_aton("203.0.113.7"), socket.inet_aton("198.51.100.1"))


def sll2(packet: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 1, 1, 0, 6, b"\x02" * 8) + packet


@pytest.mark.parametrize(("linktype", "frame"), [
    (capfile.LINKTYPE_ETHERNET, bytes(Ether() / V4)),
    (capfile.LINKTYPE_ETHERNET, bytes(Ether() / Dot1Q(vlan=5) / Dot1Q(vlan=6) / V4)),
    (capfile.LINKTYPE_ETHERNET, bytes(Ether() / V4) + b"\x00" * 20),  # trailing padding
    (capfile.LINKTYPE_LINUX_SLL, bytes(CookedLinux(proto=0x0800) / V4)),
    (capfile.LINKTYPE_LINUX_SLL2, sll2(bytes(V4))),
    (capfile.LINKTYPE_RAW, bytes(V4)),
    (capfile.LINKTYPE_IPV4, bytes(V4)),
    (capfile.LINKTYPE_NULL, struct.pack("<I", 2) + bytes(V4)),
    (capfile.LINKTYPE_NULL, struct.pack(">I", 2) + bytes(V4)),
    (capfile.LINKTYPE_LOOP, struct.pack(">I", 2) + bytes(V4)),
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
    for linktype, frame in [(capfile.LINKTYPE_IPV6, bytes(packet)),
                            (capfile.LINKTYPE_NULL, struct.pack("<I", 30) + bytes(packet))]:
        decoded = decoder_for(linktype)(frame)
        assert decoded is not None
        assert decoded[0] == 17 and decoded[3:7] == (5000, 53, 60, None) and decoded[10] == b"q"


def test_fragments_and_other_protocols_are_skipped() -> None:
    fragment = IP(src="1.2.3.4", dst="5.6.7.8", flags="MF") / UDP() / Raw(b"x" * 20)
    later = IP(src="1.2.3.4", dst="5.6.7.8", frag=100, proto=17) / Raw(b"x" * 20)
    v6 = IPv6(src="::1", dst="::2") / IPv6ExtHdrFragment(m=1) / UDP() / Raw(b"x")
    raw = decoder_for(capfile.LINKTYPE_RAW)
    assert raw(bytes(fragment)) is None and raw(bytes(later)) is None and raw(bytes(v6)) is None
    assert decoder_for(capfile.LINKTYPE_ETHERNET)(bytes(Ether(type=0x0806) / Raw(b"arp" * 10))) is None
    assert raw(bytes(IP(proto=47) / Raw(b"gre"))) is None


def test_icmp_errors_quote_their_flow() -> None:
    error = IP(src="203.0.113.1", dst="203.0.113.7") / ICMP(type=3, code=3) / IPerror(
        src="203.0.113.7", dst="198.51.100.53") / UDPerror(sport=4000, dport=53)
    decoded = decoder_for(capfile.LINKTYPE_RAW)(bytes(error)[:28 + 28])  # RFC 792: 8 bytes quoted
    assert decoded is not None and decoded[0] == ICMP_ERROR and decoded[3:5] == (3, 3)
    assert decoded[10] == (17, socket.inet_aton("203.0.113.7"), socket.inet_aton("198.51.100.53"),
                           4000, 53)
    echo = IP() / ICMP(type=8)
    assert decoder_for(capfile.LINKTYPE_RAW)(bytes(echo)) is None


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(capfile.SUPPORTED_LINKTYPES)), st.binary(max_size=120))
def test_hostile_frames_never_raise(linktype: int, frame: bytes) -> None:
    decoder_for(linktype)(frame)
