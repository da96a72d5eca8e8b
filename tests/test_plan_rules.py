"""probe.plan: the plan's rules, and the two drivers that follow them.

The live plan (probe.net.plan.Measurer) and replay (probe.replay.match)
must make the same lookups and try the same addresses in the same order;
the last tests give both the same DNS answers and compare what they did.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from probe.model import (
    DNSAnswer,
    DNSObservation,
    DNSResponse,
    Failure,
    Observation,
    Target,
    TargetKind,
)
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.guard import AllowList
from probe.net.plan import Measurer
from probe.net.trust import TrustStore
from probe.plan import (
    CheckSettings,
    addresses_to_try,
    next_lookup,
    target_port,
    target_url,
)
from probe.replay.match import FlowIndex, addresses_for
from probe.replay.records import DNSExchange
from probe.resolver import parse_resolver

SETTINGS = CheckSettings(resolver=parse_resolver("udp://198.51.100.53"))
V4 = [f"198.51.100.{i}" for i in range(1, 7)]
V6 = [f"2001:db8::{i}" for i in range(1, 7)]


def lookup(rtype: str, failure: Failure | None, *addresses: str) -> DNSObservation:
    answers = tuple(DNSAnswer(rtype, a, 300) for a in addresses)
    return DNSObservation("name.test", rtype, "udp://198.51.100.53:53", 0.0, 0.1, failure,
                          (DNSResponse(0.05, "NOERROR", answers),))


def test_the_lookups_are_a_then_aaaa() -> None:
    assert next_lookup([]) == "A"
    assert next_lookup([lookup("A", None, V4[0])]) == "AAAA"
    assert next_lookup([lookup("A", None), lookup("AAAA", None)]) is None


def test_no_data_goes_on_and_any_other_failure_stops() -> None:
    assert next_lookup([lookup("A", Failure.DNS_NO_ANSWER)]) == "AAAA"
    for failure in (Failure.DNS_NXDOMAIN, Failure.GENERIC_TIMEOUT, Failure.DNS_SERVFAIL):
        assert next_lookup([lookup("A", failure)]) is None


def test_addresses_interleave_and_are_capped() -> None:
    lookups = [lookup("A", None, *V4[:3]), lookup("AAAA", None, *V6[:2])]
    assert addresses_to_try(lookups, 4) == (V4[0], V6[0], V4[1], V6[1])
    assert addresses_to_try(lookups, 10) == (V4[0], V6[0], V4[1], V6[1], V4[2])


def test_a_failed_lookup_gives_no_address() -> None:
    # A failure field wins over whatever the response carried.
    lookups = [lookup("A", Failure.DNS_NO_ANSWER, V4[0]), lookup("AAAA", None, V6[0])]
    assert addresses_to_try(lookups, 4) == (V6[0],)


def test_an_address_is_tried_once() -> None:
    assert addresses_to_try([lookup("A", None, V4[0], V4[0], V4[1])], 4) == (V4[0], V4[1])


def test_default_port_and_url() -> None:
    assert target_port(Target("t", TargetKind.TLS, "h.test")) == 443
    assert target_port(Target("t", TargetKind.TLS, "h.test", port=8443)) == 8443
    assert target_port(Target("t", TargetKind.TCP, "h.test")) is None
    assert target_url(Target("t", TargetKind.HTTPS, "h.test")) == "https://h.test/"
    assert target_url(Target("t", TargetKind.HTTP, "2001:db8::1")) == "http://[2001:db8::1]/"
    assert target_url(Target("t", TargetKind.HTTP, "h.test", url="http://h.test/x")) == (
        "http://h.test/x"
    )


# --------------------------------------------------------------------------
# Live and replay, same answers

# What the resolver says to each lookup: (rcode, addresses), or None for silence.
Reply = tuple[str, list[str]] | None


def _response(rtype: str, reply: Reply, t: float) -> tuple[DNSResponse, ...]:
    if reply is None:
        return ()
    rcode, addresses = reply
    return (DNSResponse(t, rcode, tuple(DNSAnswer(rtype, a, 300) for a in addresses)),)


class _ScriptedMeasurer(Measurer):
    """The live plan with a resolver that answers from a script."""

    def __init__(self, settings: CheckSettings, replies: dict[str, Reply]) -> None:
        super().__init__(settings, Dialer(AllowList.parse("127.0.0.0/8")), Clock(), TrustStore())
        self._replies = replies

    async def _lookup(self, name: str, rtype: str) -> DNSObservation:
        responses = _response(rtype, self._replies[rtype], 0.01)
        # What probe.net.dns.resolve records for these responses.
        failure = responses[0].stub_failure(rtype) if responses else Failure.GENERIC_TIMEOUT
        return DNSObservation(name, rtype, "udp://198.51.100.53:53", 0.0, 0.5, failure, responses)


def _live(settings: CheckSettings, host: str,
          replies: dict[str, Reply]) -> tuple[list[Observation], tuple[str, ...]]:
    out: list[Observation] = []
    addresses = asyncio.run(_ScriptedMeasurer(settings, replies)._addresses(host, out))
    return out, addresses


def _replayed(settings: CheckSettings, host: str,
              replies: dict[str, Reply]) -> tuple[list[Observation], tuple[str, ...]]:
    # Every lookup is in the capture, also those the plan should not make.
    exchanges = [
        DNSExchange("udp", "198.51.100.9", 40000 + i, "198.51.100.53", 53, i, host, rtype,
                    float(i), _response(rtype, reply, i + 0.01))
        for i, (rtype, reply) in enumerate(replies.items())
    ]
    out: list[Observation] = []
    addresses = addresses_for(FlowIndex(exchanges, [], settings, 100.0), host, None, out)
    return out, addresses


def _lookups(out: list[Observation]) -> list[tuple[str, str, Failure | None]]:
    return [(o.query, o.rtype, o.failure) for o in out if isinstance(o, DNSObservation)]


SCRIPTS: dict[str, dict[str, Reply]] = {
    "both families": {"A": ("NOERROR", V4[:2]), "AAAA": ("NOERROR", V6[:2])},
    "more than the cap": {"A": ("NOERROR", V4[:5]), "AAAA": ("NOERROR", V6[:3])},
    "no A records": {"A": ("NOERROR", []), "AAAA": ("NOERROR", V6[:1])},
    "no AAAA records": {"A": ("NOERROR", V4[:2]), "AAAA": ("NOERROR", [])},
    "AAAA silent": {"A": ("NOERROR", V4[:1]), "AAAA": None},
    "AAAA refused": {"A": ("NOERROR", V4[:1]), "AAAA": ("REFUSED", [])},
    "nxdomain": {"A": ("NXDOMAIN", []), "AAAA": ("NOERROR", V6[:1])},
    "servfail": {"A": ("SERVFAIL", []), "AAAA": ("NOERROR", V6[:1])},
    "A silent": {"A": None, "AAAA": ("NOERROR", V6[:1])},
    "repeated answer": {"A": ("NOERROR", [V4[0], V4[0], V4[1]]), "AAAA": ("NOERROR", [])},
}


@pytest.mark.parametrize("max_addresses", [1, 4])
@pytest.mark.parametrize("script", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_replay_makes_the_lookups_and_tries_the_addresses_the_live_plan_does(
    script: dict[str, Reply], max_addresses: int,
) -> None:
    settings = dataclasses.replace(SETTINGS, max_addresses=max_addresses)
    live_out, live_addresses = _live(settings, "name.test", script)
    replay_out, replay_addresses = _replayed(settings, "name.test", script)
    assert replay_addresses == live_addresses
    assert _lookups(replay_out) == _lookups(live_out)


def test_both_plans_take_an_ip_literal_as_is() -> None:
    script: dict[str, Reply] = {"A": ("NOERROR", V4[:1]), "AAAA": None}
    for host in (V4[5], V6[5]):
        assert _live(SETTINGS, host, script) == ([], (host,))
        assert _replayed(SETTINGS, host, script) == ([], (host,))
