"""probe.wire.dns: the fast decoder agrees with dnspython where it answers."""

from __future__ import annotations

import dns.message
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.replay import dns as replay_dns
from probe.wire import WireError
from probe.wire.dns import parse_message

labels = st.text(alphabet="abcXYZ0129-_", min_size=1, max_size=8)
names = st.lists(labels, min_size=1, max_size=3).map(lambda parts: ".".join(parts) + ".")
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    qname = draw(names)
    rtype = draw(st.sampled_from(["A", "AAAA"]))
    query = dns.message.make_query(qname, rtype, use_edns=draw(st.sampled_from([None, 0])))
    response = dns.message.make_response(query)
    response.set_rcode(draw(st.sampled_from([0, 2, 3, 5])))
    owner = qname
    # Records of a CNAME chain, duplicates and case changes, in any order.
    records: list[tuple[str, int, str, str]] = []
    for _ in range(draw(st.integers(0, 2))):
        target = draw(names)
        records.append((owner, draw(st.integers(0, 900)), "CNAME", target))
        owner = target
    for _ in range(draw(st.integers(0, 4))):
        data = draw(ipv4 if rtype == "A" else ipv6)
        records.append((draw(st.sampled_from([owner, owner.upper()])), draw(st.integers(0, 900)),
                        rtype, data))
    for owner_name, ttl, kind, data in draw(st.permutations(records)):
        response.answer.append(dns.rrset.from_text(owner_name, ttl, "IN", kind, data))
    return response.to_wire(max_size=65535)


@settings(max_examples=300, deadline=None)
@given(responses())
def test_fast_decoder_agrees_with_dnspython(wire: bytes) -> None:
    fast = replay_dns._fast(parse_message(wire))
    slow = replay_dns._slow(dns.message.from_wire(wire))
    assert fast == slow


def test_unusual_messages_go_to_dnspython() -> None:
    query = dns.message.make_query("example.com.", "TXT")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "TXT", '"hello"'))
    wire = response.to_wire()
    with pytest.raises(WireError):
        parse_message(wire)
    decoded = replay_dns.decode(wire)
    assert decoded is not None and decoded.answers[0].data == '"hello"'


@pytest.mark.parametrize("wire", [
    b"\x00" * 11,  # short header
    bytes.fromhex("1234 0100 0001 0000 0000 0000 c00c 0001 0001"),  # pointer to itself
    bytes.fromhex("1234 0100 0001 0000 0000 0000 03 616263 00 0001 0001 ff"),  # trailing byte
    bytes.fromhex("1234 0100 0001 0000 0000 0000 40 00 0001 0001"),  # label type 0x40
])
def test_malformed_messages(wire: bytes) -> None:
    with pytest.raises(WireError):
        parse_message(wire)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes(data: bytes) -> None:
    try:
        parse_message(data)
    except WireError:
        pass
    replay_dns.decode(data)  # dnspython's refusals are contained too


@settings(max_examples=300, deadline=None)
@given(responses(), st.binary(min_size=1, max_size=8), st.integers(0, 10_000))
def test_mutated_responses(wire: bytes, noise: bytes, where: int) -> None:
    data = bytearray(wire)
    at = where % len(data)
    data[at : at + len(noise)] = noise
    try:
        parse_message(bytes(data))
    except WireError:
        pass
    replay_dns.decode(bytes(data))
