"""The inspector's decisions and the packets it builds, without any network."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_censor_fingerprint import FIRST, client_hello

from probe.wire import WireError
from probe.wire.packets import (
    ACK,
    PSH,
    RST,
    SYN,
    UDP,
    TCPSegment,
    build_tcp,
    build_udp,
    parse_ip,
    parse_tcp,
    parse_udp,
)
from probe.wire.pptp import start_control_connection_request
from probe_lab.censor.config import BLOCKPAGE_TITLE, parse_censor
from probe_lab.censor.inspect import Inspector, Note, Residual, Send

CLIENT, SERVER = "198.51.100.2", "203.0.113.10"
CLIENT6, SERVER6 = "2001:db8:c::2", "2001:db8:5::10"


def segment(payload: bytes, *, seq: int = 1000, sport: int = 40000, dport: int = 443,
            src: str = CLIENT, dst: str = SERVER, flags: int = ACK | PSH) -> bytes:  # fmt: skip
    return build_tcp(src, dst, TCPSegment(sport, dport, seq, 5000, flags, 502, b"", payload))


def inspector(censor: dict[str, Any], dice: Iterator[float] | None = None) -> Inspector:
    rolls = dice or iter(lambda: 0.0, None)  # 0.0: every trigger is acted on
    return Inspector(parse_censor(censor, "t"), lambda: next(rolls))


def sent(actions: list[Any]) -> list[tuple[str, str, TCPSegment]]:
    out = []
    for action in actions:
        if isinstance(action, Send):
            packet = parse_ip(action.packet)
            assert packet.dst == action.dst
            out.append((packet.src, packet.dst, parse_tcp(packet)))
    return out


def notes(actions: list[Any]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Note)]


SNI = {"sni_reset": {"sni": ["blocked.example"], "residual": 60}}


# ------------------------------------------------------------------- SNI


def test_a_blocked_client_hello_split_over_segments_is_held_then_reset_both_ways() -> None:
    censor = inspector(SNI)
    hello = client_hello("blocked.example")
    assert censor.feed(segment(hello[:100]), 1.0) == []  # held, undecided
    actions = censor.feed(segment(hello[100:], seq=1100), 1.0)
    assert actions[0] == Residual(4, CLIENT, SERVER, 443, 60.0)  # before any reset leaves
    assert sent(actions) == [
        # RFC 5961: sequence numbers exactly the receivers' next expected ones.
        (SERVER, CLIENT, TCPSegment(443, 40000, 5000, 1000 + len(hello), RST | ACK)),
        (CLIENT, SERVER, TCPSegment(40000, 443, 1000, 5000, RST | ACK)),
    ]
    assert notes(actions) == [
        "sni_reset: 198.51.100.2:40000 -> 203.0.113.10:443 sni=blocked.example: rst"
    ]
    # Nothing of the flow is ever re-sent, retransmissions included.
    assert censor.feed(segment(hello), 1.5) == []


def test_an_allowed_client_hello_and_the_rest_of_its_flow_are_resent_intact() -> None:
    censor = inspector(SNI)
    hello = client_hello("open.example")
    assert censor.feed(segment(hello[:50], src=CLIENT6, dst=SERVER6), 1.0) == []
    resent = sent(censor.feed(segment(hello[50:], seq=1050, src=CLIENT6, dst=SERVER6), 1.0))
    assert [(s.seq, s.payload) for _, _, s in resent] == [(1000, hello[:50]), (1050, hello[50:])]
    assert {(src, dst) for src, dst, _ in resent} == {(CLIENT6, SERVER6)}
    finished = segment(b"finished", seq=1000 + len(hello), src=CLIENT6, dst=SERVER6)
    later = sent(censor.feed(finished, 2.0))
    assert [s.payload for _, _, s in later] == [b"finished"]


def test_a_gso_super_packet_is_resent_in_mtu_sized_pieces() -> None:
    censor = inspector(SNI)
    censor.feed(segment(client_hello("open.example")), 1.0)
    big = bytes(range(256)) * 20  # 5120 bytes, as a GSO packet crossing the veth whole
    pieces = sent(censor.feed(segment(big, seq=9000), 1.0))
    assert [len(s.payload) for _, _, s in pieces] == [1460, 1460, 1460, 740]
    assert [s.seq for _, _, s in pieces] == [9000, 10460, 11920, 13380]
    assert [bool(s.flags & PSH) for _, _, s in pieces] == [False, False, False, True]
    assert b"".join(s.payload for _, _, s in pieces) == big


def test_residual_penalises_new_flows_of_the_three_tuple_until_it_expires() -> None:
    censor = inspector(SNI)
    censor.feed(segment(client_hello("blocked.example")), 10.0)
    allowed_hello = client_hello("open.example")
    assert censor.feed(segment(allowed_hello, sport=40001), 30.0) == []  # penalised
    assert sent(censor.feed(segment(allowed_hello, sport=40002), 71.0))  # expired after 60 s


def test_a_syn_on_a_reused_four_tuple_starts_a_fresh_inspection() -> None:
    censor = inspector({"sni_reset": {"sni": ["blocked.example"]}})
    censor.feed(segment(client_hello("open.example")), 1.0)
    censor.feed(segment(b"", seq=77, flags=SYN), 2.0)
    again = sent(censor.feed(segment(client_hello("blocked.example"), seq=78), 2.0))
    assert again[0][2].flags == RST | ACK


def test_probability_decides_per_trigger() -> None:
    censor = inspector({"sni_reset": {"sni": ["blocked.example"], "probability": 0.75}},
                       iter([0.8, 0.7]))  # fmt: skip
    hello = client_hello("blocked.example")
    let_through = censor.feed(segment(hello, sport=1), 1.0)
    acted = censor.feed(segment(hello, sport=2), 1.0)
    assert notes(let_through) == [
        "sni_reset: 198.51.100.2:1 -> 203.0.113.10:443 sni=blocked.example:"
        " let through (probability)"
    ]
    assert sent(let_through)[0][2].payload == hello
    assert [s.flags for _, _, s in sent(acted)] == [RST | ACK, RST | ACK]


def test_rules_apply_only_to_their_ports_and_addresses() -> None:
    censor = inspector({"sni_reset": {"sni": ["blocked.example"], "ports": [8443],
                                      "addresses": ["203.0.113.0/28"]}})  # fmt: skip
    hello = client_hello("blocked.example")
    assert censor.feed(segment(hello, dport=443), 1.0) == []  # not an inspected port
    elsewhere = sent(censor.feed(segment(hello, dport=8443, dst="203.0.113.99"), 1.0))
    assert elsewhere[0][2].payload == hello
    assert sent(censor.feed(segment(hello, dport=8443), 1.0))[0][2].flags == RST | ACK


def test_not_tls_on_an_inspected_port_is_let_through() -> None:
    censor = inspector(SNI)
    banner = b"SSH-2.0-OpenSSH_9.2\r\n"
    assert sent(censor.feed(segment(banner), 1.0))[0][2].payload == banner
    broken = b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"  # a handshake record, not a ClientHello
    assert sent(censor.feed(segment(broken, sport=2), 1.0))[0][2].payload == broken


# ------------------------------------------------------------------ HTTP


def request(host: str) -> bytes:
    return f"GET /x HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()


def test_http_blockpage_acknowledges_the_request_and_resets_the_server() -> None:
    censor = inspector({"http_host": {"hosts": ["*.blocked.example"], "action": "blockpage"}})
    head = request("www.blocked.example:80")
    assert censor.feed(segment(head[:10], dport=80), 1.0) == []
    out = sent(censor.feed(segment(head[10:], seq=1010, dport=80), 1.0))
    (_, _, page), (_, _, reset) = out
    assert page.ack == 1000 + len(head) and page.seq == 5000
    assert page.payload.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert f"<title>{BLOCKPAGE_TITLE}</title>".encode() in page.payload
    assert (reset.seq, reset.flags) == (1000, RST | ACK)


def test_http_drop_sends_nothing_and_other_hosts_pass() -> None:
    censor = inspector({"http_host": {"hosts": ["blocked.example"], "action": "drop"}})
    dropped = censor.feed(segment(request("blocked.example"), dport=80), 1.0)
    assert sent(dropped) == [] and notes(dropped)[-1].endswith(": drop")
    passed = sent(censor.feed(segment(request("[2001:db8::1]:80"), sport=2, dport=80), 1.0))
    assert passed[0][2].payload == request("[2001:db8::1]:80")


# ------------------------------------------------------------------- DNS


def query(name: str, rtype: str) -> tuple[dns.message.Message, bytes]:
    message = dns.message.make_query(name, rtype)
    return message, build_udp(CLIENT, "203.0.113.53", 33333, 53, message.to_wire())


def test_dns_injection_sends_one_forged_response_per_entry_of_the_asked_family() -> None:
    entries = ["10.10.34.35", ["203.0.113.77", "2001:db8:66::1"]]
    censor = inspector({"dns_inject": {"names": ["*.facebook.com"], "answers": entries, "ttl": 30}})
    message, wire = query("www.facebook.com", "A")
    forged = [a for a in censor.feed(wire, 1.0) if isinstance(a, Send)]
    assert len(forged) == 2
    answers: list[list[tuple[str, int]]] = []
    for action in forged:
        packet = parse_ip(action.packet)
        datagram = parse_udp(packet)
        assert (packet.src, datagram.sport, packet.dst, datagram.dport) == (
            "203.0.113.53", 53, CLIENT, 33333)  # fmt: skip
        response = dns.message.from_wire(datagram.payload)
        assert response.id == message.id and message.is_response(response)
        answers.append([(r.address, rrset.ttl) for rrset in response.answer for r in rrset])
    assert answers == [[("10.10.34.35", 30)], [("203.0.113.77", 30)]]
    _, aaaa = query("www.facebook.com", "AAAA")
    assert len([a for a in censor.feed(aaaa, 1.0) if isinstance(a, Send)]) == 1


def test_dns_injection_ignores_other_names_types_and_responses() -> None:
    censor = inspector({"dns_inject": {"names": ["facebook.com"], "answers": ["10.0.0.1"]}})
    assert censor.feed(query("www.facebook.com", "A")[1], 1.0) == []
    assert censor.feed(query("facebook.com", "MX")[1], 1.0) == []
    message, _ = query("facebook.com", "A")
    response = dns.message.make_response(message).to_wire()
    assert censor.feed(build_udp(CLIENT, "203.0.113.53", 33333, 53, response), 1.0) == []


# --------------------------------------------------------------- OpenVPN


def datagram(payload: bytes, *, dport: int = 1194, sport: int = 50000, src: str = CLIENT,
             dst: str = SERVER) -> bytes:  # fmt: skip
    return build_udp(src, dst, sport, dport, payload)


def relayed(actions: list[Any]) -> list[bytes]:
    """The UDP payloads the inspector passes on in the client's name."""
    out = []
    for action in actions:
        if isinstance(action, Send):
            packet = parse_ip(action.packet)
            assert action.relay and _checksum_ok(action.packet)  # rebuilt, not copied
            out.append(parse_udp(packet).payload)
    return out


OPENVPN = {"openvpn_fingerprint": {"residual": 60}}


@pytest.mark.parametrize("name", [n for n in FIRST if n.startswith("openvpn udp")])
def test_an_openvpn_reset_over_udp_is_dropped_and_penalised(name: str) -> None:
    censor = inspector(OPENVPN)
    actions = censor.feed(datagram(FIRST[name]), 1.0)
    assert not relayed(actions)
    assert actions[0] == Residual(4, CLIENT, SERVER, 1194, 60.0, UDP)
    (note,) = notes(actions)
    assert note.startswith("openvpn_fingerprint: 198.51.100.2:50000 -> 203.0.113.10:1194 udp ")
    assert note.endswith(": drop")
    # The 3-tuple stays closed to what nftables hands over, resets or not, until it expires.
    wireguard = FIRST["wireguard initiation"]
    probe = datagram(b"\x38" + wireguard[1:], sport=50001)
    assert censor.feed(probe, 30.0) == []
    assert relayed(censor.feed(probe, 61.5)) == [b"\x38" + wireguard[1:]]


def test_other_udp_on_the_same_port_passes_and_only_what_nftables_withheld_is_relayed() -> None:
    censor = inspector(OPENVPN)
    # Not a reset's first byte: nftables let it through, nothing to do.
    assert censor.feed(datagram(FIRST["wireguard initiation"]), 1.0) == []
    assert censor.feed(datagram(FIRST["l2tp sccrq"], dport=1701), 1.0) == []
    # A reset's first byte but not a reset (an IKE SPI, a DNS id): relayed once, intact.
    ike = b"\x50" + FIRST["ikev2 ike_sa_init"][1:]
    query = dns.message.make_query("vpn.example.net", "A")
    query.id = 0x3801
    for payload, port in ((ike, 500), (query.to_wire(), 53)):
        actions = censor.feed(datagram(payload, dport=port, src=CLIENT6, dst=SERVER6), 1.0)
        assert relayed(actions) == [payload] and notes(actions) == []
    assert censor.residual == {}


def test_dns_injection_and_the_fingerprint_on_one_query() -> None:
    censor = inspector({**OPENVPN, "dns_inject": {"names": ["vpn.example.net"],
                                                  "answers": ["198.51.100.66"]}})  # fmt: skip
    query = dns.message.make_query("vpn.example.net", "A")
    query.id = 0x3802
    actions = censor.feed(datagram(query.to_wire(), dport=53), 1.0)
    forged, relay = [a for a in actions if isinstance(a, Send)]
    assert not forged.relay and parse_ip(forged.packet).src == SERVER  # the resolver's answer
    assert relay.relay and parse_udp(parse_ip(relay.packet)).payload == query.to_wire()


def test_an_openvpn_reset_over_tcp_on_any_port_is_reset_both_ways() -> None:
    censor = inspector({"openvpn_fingerprint": {"protocol": "tcp"}})
    stream = FIRST["openvpn tcp tls-auth"]
    assert censor.feed(segment(stream[:20], dport=443), 1.0) == []  # held: 44 bytes announced
    actions = censor.feed(segment(stream[20:], seq=1020, dport=443), 1.0)
    assert [(src, s.flags) for src, _, s in sent(actions)] == [(SERVER, RST | ACK),
                                                              (CLIENT, RST | ACK)]  # fmt: skip
    assert notes(actions) == [
        (
            "openvpn_fingerprint: 198.51.100.2:40000 -> 203.0.113.10:443 tcp"
            " P_CONTROL_HARD_RESET_CLIENT_V2 (tls-auth): rst"
        )
    ]
    # UDP is not this rule's business: nothing withheld, nothing relayed.
    assert censor.feed(datagram(FIRST["openvpn udp"]), 1.0) == []


def test_other_tcp_streams_on_a_watched_port_pass_at_once() -> None:
    censor = inspector({"openvpn_fingerprint": {"ports": [1194, 443]}})
    query = dns.message.make_query("vpn.example.net", "A")
    query.id = 0x3803
    dns_over_tcp = struct.pack("!H", len(query.to_wire())) + query.to_wire()
    firsts = [client_hello("vpn.example.net"), request("vpn.example.net"),
              start_control_connection_request(hostname="client"),
              dns_over_tcp, b"\x00\x0e\x38"]  # fmt: skip
    for sport, payload in enumerate(firsts[:-1], start=1):
        actions = censor.feed(segment(payload, sport=sport, dport=1194), 1.0)
        assert [s.payload for _, _, s in sent(actions)] == [payload]
        assert all(isinstance(a, Send) and a.relay for a in actions)
    # Three bytes that may open a 14-byte reset: held for the rest.
    assert censor.feed(segment(firsts[-1], sport=9, dport=443), 1.0) == []
    assert censor.feed(segment(FIRST["openvpn tcp"], dport=5222), 1.0) == []  # not watched


def test_openvpn_rules_apply_to_their_addresses_protocol_and_probability() -> None:
    censor = inspector({"openvpn_fingerprint": [
        {"addresses": ["203.0.113.0/28"], "protocol": "udp", "probability": 0.5}]},
        iter([0.7, 0.2]))  # fmt: skip
    reset = FIRST["openvpn udp tls-crypt"]
    assert censor.feed(datagram(reset, dst="203.0.113.99"), 1.0) == []  # not watched
    spared = censor.feed(datagram(reset), 1.0)
    assert relayed(spared) == [reset] and notes(spared)[0].endswith("let through (probability)")
    dropped = censor.feed(datagram(reset, sport=2), 1.0)
    assert relayed(dropped) == [] and notes(dropped)[0].endswith(": drop")
    assert not any(isinstance(a, Residual) for a in dropped)  # no residual asked for


def test_the_inspector_wants_addresses_not_names() -> None:
    with pytest.raises(ValueError, match="resolve names first"):
        inspector({"openvpn_fingerprint": {"names": ["vpn.example.net"]}})


# ------------------------------------------------------- packets, hostile input


def _checksum_ok(packet: bytes) -> bool:
    ip = parse_ip(packet)
    src, dst = ipaddress.ip_address(ip.src).packed, ipaddress.ip_address(ip.dst).packed
    if ip.version == 4:
        pseudo = src + dst + struct.pack("!xBH", ip.protocol, len(ip.transport))
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(ip.transport), ip.protocol)
    data = pseudo + ip.transport + b"\0" * (len(ip.transport) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


@given(st.binary(max_size=1400), st.sampled_from([(CLIENT, SERVER), (CLIENT6, SERVER6)]),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_built_packets_parse_back_with_valid_checksums(
    payload: bytes, addresses: tuple[str, str], seq: int
) -> None:
    timestamps = b"\x01\x01\x08\x0a" + bytes(8)  # NOP NOP TS: a 12-byte option block
    original = TCPSegment(1, 2, seq, 3, ACK, 4, timestamps, payload)
    tcp = build_tcp(*addresses, original)
    udp = build_udp(*addresses, 5, 6, payload)
    assert parse_tcp(parse_ip(tcp)) == original
    assert parse_udp(parse_ip(udp)).payload == payload
    assert _checksum_ok(tcp) and _checksum_ok(udp)
    assert parse_ip(tcp + bytes(6)) == parse_ip(tcp)  # Ethernet padding is cut off


@given(st.binary(max_size=200))
def test_the_packet_parser_raises_only_its_error(data: bytes) -> None:
    try:
        packet = parse_ip(data)
        parse_tcp(packet) if packet.protocol == 6 else parse_udp(packet)
    except WireError:
        pass


EVERYTHING = {
    "dns_inject": {"names": ["*.example"], "answers": ["198.51.100.66"]},
    "sni_reset": {"sni": ["*.example"], "ports": [443, 80], "residual": 5},
    "http_host": {"hosts": ["*.example"], "action": "blockpage", "ports": [80, 443]},
    "openvpn_fingerprint": {"residual": 5},
}


@given(st.lists(st.binary(max_size=300) | st.sampled_from(list(FIRST.values())), max_size=6),
       st.sampled_from([443, 80, 53, 1194]), st.booleans())  # fmt: skip
def test_the_inspector_survives_any_payload(pieces: list[bytes], port: int, udp: bool) -> None:
    censor = inspector(EVERYTHING)
    seq = 1000
    for piece in pieces:
        if udp:
            censor.feed(build_udp(CLIENT, SERVER, 4000, port, piece), 1.0)
        else:
            censor.feed(segment(piece, seq=seq, dport=port), 1.0)
        seq += len(piece)
        censor.feed(piece, 1.0)  # not even an IP packet
