"""The lab zone and the DNS server's answers, without any network."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.errors import InputError
from probe_lab import addressing
from probe_lab.servers.dns import answer
from probe_lab.zone import Answer, Zone, ZoneEntry

ZONE = Zone({
    "e1.whatsapp.net": ZoneEntry(Answer.ADDRESSES, ("203.0.113.20", "203.0.113.201",
                                                    "2001:db8:5::20")),
    "v4only.test": ZoneEntry(Answer.ADDRESSES, ("203.0.113.21",)),
    "nx.test": ZoneEntry(Answer.NXDOMAIN),
    "fail.test": ZoneEntry(Answer.SERVFAIL),
    "empty.test": ZoneEntry(Answer.NO_ANSWER),
    "silent.test": ZoneEntry(Answer.DROP),
})


def ask(name: str, rtype: str = "A") -> dns.message.Message | None:
    wire = answer(ZONE, dns.message.make_query(name, rtype, id=4242).to_wire())
    return None if wire is None else dns.message.from_wire(wire)


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer for r in rrset)


def test_names_answer_with_their_addresses_per_family() -> None:
    a, aaaa = ask("e1.whatsapp.net"), ask("E1.WhatsApp.Net.", "AAAA")
    assert a is not None and aaaa is not None
    assert addresses(a) == ["203.0.113.20", "203.0.113.201"]
    assert addresses(aaaa) == ["2001:db8:5::20"]
    assert a.id == 4242 and a.flags & dns.flags.QR and a.flags & dns.flags.RA
    assert a.rcode() == dns.rcode.NOERROR


def test_a_name_without_records_of_a_type_is_nodata() -> None:
    response = ask("v4only.test", "AAAA")
    assert response is not None and response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == []


@pytest.mark.parametrize(("name", "rcode"), [
    ("nx.test", dns.rcode.NXDOMAIN),
    ("unknown.example", dns.rcode.NXDOMAIN),
    ("fail.test", dns.rcode.SERVFAIL),
    ("empty.test", dns.rcode.NOERROR),
])
def test_per_name_failures(name: str, rcode: int) -> None:
    response = ask(name)
    assert response is not None and response.rcode() == rcode
    assert addresses(response) == []


def test_a_dropped_name_gets_no_response() -> None:
    assert ask("silent.test") is None


@given(st.binary(max_size=600))
def test_garbage_never_raises(data: bytes) -> None:
    reply = answer(ZONE, data)
    assert reply is None or isinstance(reply, bytes)


def test_responses_are_not_answered() -> None:
    query = dns.message.make_query("e1.whatsapp.net", "A")
    response = dns.message.make_response(query)
    assert answer(ZONE, response.to_wire()) is None


def test_zone_json_round_trip_and_address_order() -> None:
    zone = Zone({"a.test": ZoneEntry(Answer.ADDRESSES, ("2001:db8:5::9", "203.0.113.9")),
                 "b.test": ZoneEntry(Answer.SERVFAIL)}, delay=0.05)
    again = Zone.from_json(zone.to_json())
    assert again.delay == 0.05
    assert again.lookup("A.TEST.") == ZoneEntry(Answer.ADDRESSES, ("203.0.113.9", "2001:db8:5::9"))
    # Only names that answer with addresses are the censor's to resolve.
    assert again.addresses() == {"a.test": ("203.0.113.9", "2001:db8:5::9")}
    with pytest.raises(ValueError, match="not a lab zone file"):
        Zone.from_json('{"names": 3}')
    with pytest.raises(ValueError, match="outside"):
        Zone.from_json('{"delay": 99, "names": {}}')


def test_the_address_plan_keeps_the_spare_range_free() -> None:
    names = addressing.lab_names()
    plan = addressing.address_plan(names)
    assert "e16.whatsapp.net" in plan and "www.baidu.com" in plan  # lists and controls
    hosts = [int(v4.rsplit(".", 1)[1]) for v4, _ in plan.values()]
    assert len(set(hosts)) == len(hosts)
    assert all(10 <= h < 200 and h != 53 for h in hosts)
    v4, v6 = plan["e1.whatsapp.net"]
    assert v6 == "2001:db8:5::" + v4.rsplit(".", 1)[1]  # the same digits in both families
    with pytest.raises(InputError, match="addresses for"):
        addressing.address_plan(f"n{i}.test" for i in range(500))
