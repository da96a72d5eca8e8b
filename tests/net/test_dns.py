"""The DNS check against a loopback server, and resolver strings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.message
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import BOGON, FORGED, SERVER, LoopbackServers

from probe.errors import InputError
from probe.model import DNSAnswer, DNSObservation, Failure
from probe.net import dns as probe_dns
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.dns import resolve
from probe.net.guard import AllowList
from probe.net.trust import TrustStore
from probe.resolver import ResolverError, ResolverSpec, parse_resolver

# --------------------------------------------------------------------------
# Resolver strings


@pytest.mark.parametrize(
    ("text", "spec", "canonical"),
    [
        ("system", ResolverSpec("system"), "system"),
        ("udp://127.0.0.1", ResolverSpec("udp", "127.0.0.1", 53), "udp://127.0.0.1:53"),
        ("tcp://127.0.0.1:5353", ResolverSpec("tcp", "127.0.0.1", 5353),
         "tcp://127.0.0.1:5353"),
        ("udp://[::1]:5353", ResolverSpec("udp", "::1", 5353), "udp://[::1]:5353"),
        ("udp://::1", ResolverSpec("udp", "::1", 53), "udp://[::1]:53"),
        ("https://198.51.100.53/dns-query",
         ResolverSpec("https", "198.51.100.53", 443, host="198.51.100.53"),
         "https://198.51.100.53/dns-query"),
        ("https://dns.test/dns-query@198.51.100.53",
         ResolverSpec("https", "198.51.100.53", 443, host="dns.test"),
         "https://dns.test/dns-query@198.51.100.53"),
        ("https://dns.test:8443/q@[2001:db8::53]",
         ResolverSpec("https", "2001:db8::53", 8443, host="dns.test", path="/q"),
         "https://dns.test:8443/q@[2001:db8::53]"),
    ],
)
def test_parse_resolver(text: str, spec: ResolverSpec, canonical: str) -> None:
    assert parse_resolver(text) == spec
    assert spec.text == canonical
    assert parse_resolver(canonical) == spec


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "expected system"),
        ("8.8.8.8", "expected system"),
        ("dot://127.0.0.1", "expected system"),
        ("udp://dns.test", "not an IP address"),
        ("udp://127.0.0.1:0", "not 1-65535"),
        ("tcp://127.0.0.1:99999", "not 1-65535"),
        ("udp://[::1", "expected [IPv6 address]"),
        ("udp://[::1]53", "expected [IPv6 address]"),
        ("https://dns.test", "needs a path"),
        ("https://dns.test/dns-query", "add @ADDR"),
        ("https://dns.test/dns-query@dns2.test", "not an IP address"),
        ("https://bad_name/dns-query@127.0.0.1", "not a host name"),
    ],
)
def test_parse_resolver_errors_are_one_line(text: str, why: str) -> None:
    with pytest.raises(ResolverError) as info:
        parse_resolver(text)
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert message.startswith(f"invalid resolver {text!r}: ") and why in message
    assert "\n" not in message


@given(st.text(max_size=50))
def test_parse_resolver_raises_only_resolver_error(text: str) -> None:
    try:
        spec = parse_resolver(text)
    except ResolverError as exc:
        assert "\n" not in str(exc)
    else:
        assert parse_resolver(spec.text) == spec


_QUERY = dns.message.make_query("ok.test", "A")
_ANSWER = dns.message.make_response(_QUERY).to_wire()


@given(st.one_of(
    st.binary(max_size=600),
    # A valid response with bytes overwritten: gets past the header checks.
    st.lists(st.tuples(st.integers(0, len(_ANSWER) - 1), st.integers(0, 255)), max_size=6)
    .map(lambda edits: bytes(_edit(_ANSWER, edits))),
))
def test_hostile_datagrams_are_ignored_not_raised(data: bytes) -> None:
    message = probe_dns._parse(data, _QUERY)
    assert message is None or _QUERY.is_response(message)


def _edit(data: bytes, edits: list[tuple[int, int]]) -> bytearray:
    out = bytearray(data)
    for index, value in edits:
        out[index] = value
    return out


def test_the_system_resolver_is_read_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 198.51.100.53\nnameserver 127.0.0.1\n")
    # The guard proves which address would have been asked without asking it.
    observation = _run(resolve("ok.test", "A", ResolverSpec("system", resolv_conf=str(conf)),
                               Dialer(AllowList.parse("127.0.0.0/8")), Clock(), 1.0, 0.1))
    assert observation.resolver == "system"
    assert observation.failure is Failure.ADDRESS_NOT_ALLOWED
    assert probe_dns._udp_server(ResolverSpec("system", resolv_conf=str(conf))) == (
        "198.51.100.53", 53)


def test_no_nameserver_is_dns_no_resolver(tmp_path: Path, dialer: Dialer) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# nothing here\n")
    for path in (conf, tmp_path / "missing.conf"):
        observation = _run(resolve("ok.test", "A", ResolverSpec("system", resolv_conf=str(path)),
                                   dialer, Clock(), 1.0, 0.1))
        assert observation.failure is Failure.DNS_NO_RESOLVER
        assert observation.responses == ()


def test_names_that_cannot_be_queried_are_a_caller_error(dialer: Dialer) -> None:
    with pytest.raises(InputError, match="cannot query"):
        _run(resolve("a..b", "A", ResolverSpec("udp", "127.0.0.1"), dialer, Clock(), 1.0, 0.1))


# --------------------------------------------------------------------------
# Against the loopback server


def _run(coroutine: object) -> DNSObservation:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def _query(loopback: LoopbackServers, dialer: Dialer, name: str, rtype: str = "A", protocol: str = "udp",
           timeout: float = 1.0, window: float = 0.2) -> DNSObservation:
    spec = parse_resolver(f"{protocol}://{SERVER}:{loopback.ports['dns']}")
    return _run(resolve(name, rtype, spec, dialer, Clock(), timeout, window))


def _data(observation: DNSObservation, index: int = 0) -> list[tuple[str, str]]:
    return [(a.rtype, a.data) for a in observation.responses[index].answers]


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_normal_answer(loopback: LoopbackServers, dialer: Dialer, protocol: str) -> None:
    observation = _query(loopback, dialer, "ok.test", protocol=protocol)
    assert observation.failure is None
    assert observation.query == "ok.test" and observation.rtype == "A"
    assert observation.resolver == f"{protocol}://{SERVER}:{loopback.ports['dns']}"
    assert len(observation.responses) == 1
    response = observation.responses[0]
    assert response.rcode == "NOERROR"
    assert response.answers == (DNSAnswer("A", SERVER, 300),)
    assert observation.addresses() == (SERVER,)
    assert 0 <= observation.t0 <= response.t <= observation.t


def test_udp_keeps_listening_and_records_the_window(loopback: LoopbackServers, dialer: Dialer) -> None:
    observation = _query(loopback, dialer, "ok.test", window=0.3)
    # One answer only, but the check waited the window out after it.
    assert observation.t - observation.responses[0].t >= 0.25


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_cname_chains_are_followed(loopback: LoopbackServers, dialer: Dialer, protocol: str) -> None:
    observation = _query(loopback, dialer, "cname.test", protocol=protocol)
    assert observation.failure is None
    assert _data(observation) == [("CNAME", "ok.test."), ("A", SERVER)]
    assert observation.addresses() == (SERVER,)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_nxdomain_is_a_failure_with_its_response(loopback: LoopbackServers, dialer: Dialer,
                                                 protocol: str) -> None:
    observation = _query(loopback, dialer, "nx.test", protocol=protocol)
    assert observation.failure is Failure.DNS_NXDOMAIN
    assert [r.rcode for r in observation.responses] == ["NXDOMAIN"]


def test_bogon_answers_are_recorded_as_given(loopback: LoopbackServers, dialer: Dialer) -> None:
    observation = _query(loopback, dialer, "bogon.test")
    assert observation.failure is None
    assert observation.addresses() == (BOGON,)


def test_two_answers_to_one_query_are_both_recorded(loopback: LoopbackServers, dialer: Dialer) -> None:
    observation = _query(loopback, dialer, "twice.test", window=0.5)
    assert observation.failure is None
    assert [_data(observation, i) for i in range(len(observation.responses))] == [
        [("A", FORGED)], [("A", SERVER)]]
    first, second = observation.responses
    assert 0.03 <= second.t - first.t < 0.5
    # A stub resolver takes the first: that is what later checks dial.
    assert observation.addresses() == (FORGED,)


def test_tcp_takes_one_response(loopback: LoopbackServers, dialer: Dialer) -> None:
    observation = _query(loopback, dialer, "twice.test", protocol="tcp")
    assert [_data(observation, i) for i in range(len(observation.responses))] == [
        [("A", FORGED)]]


@pytest.mark.parametrize(
    ("name", "rtype", "failure", "rcode"),
    [
        ("ok.test", "AAAA", Failure.DNS_NO_ANSWER, "NOERROR"),
        ("servfail.test", "A", Failure.DNS_SERVFAIL, "SERVFAIL"),
        ("refused.test", "A", Failure.DNS_REFUSED, "REFUSED"),
    ],
)
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_rcode_failures(loopback: LoopbackServers, dialer: Dialer, protocol: str, name: str, rtype: str,
                        failure: Failure, rcode: str) -> None:
    observation = _query(loopback, dialer, name, rtype, protocol=protocol)
    assert observation.failure is failure
    assert [r.rcode for r in observation.responses] == [rcode]
    assert observation.responses[0].answers == ()


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
@pytest.mark.parametrize("name", ["garbage.test", "wrongid.test"])
def test_garbage_is_server_misbehaving(loopback: LoopbackServers, dialer: Dialer, protocol: str,
                                       name: str) -> None:
    observation = _query(loopback, dialer, name, protocol=protocol, timeout=0.5)
    assert observation.failure is Failure.DNS_SERVER_MISBEHAVING
    assert observation.responses == ()


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_silence_is_a_timeout(loopback: LoopbackServers, dialer: Dialer, protocol: str) -> None:
    observation = _query(loopback, dialer, "silent.test", protocol=protocol, timeout=0.4)
    assert observation.failure is Failure.GENERIC_TIMEOUT
    assert observation.responses == ()
    assert 0.35 <= observation.t - observation.t0 < 1.5


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_a_closed_port_is_refused(loopback: LoopbackServers, dialer: Dialer, protocol: str) -> None:
    # Over UDP, the kernel's ICMP port unreachable reaches the connected socket.
    spec = parse_resolver(f"{protocol}://{SERVER}:{loopback.ports['closed']}")
    observation = _run(resolve("ok.test", "A", spec, dialer, Clock(), 1.0, 0.1))
    assert observation.failure is Failure.CONNECTION_REFUSED


# --------------------------------------------------------------------------
# DNS over HTTPS


def _doh(loopback: LoopbackServers, dialer: Dialer, name: str, trust: TrustStore,
         host: str = "good.test") -> DNSObservation:
    spec = parse_resolver(f"https://{host}:{loopback.ports['https']}/dns-query@{SERVER}")
    return _run(resolve(name, "A", spec, dialer, Clock(), 2.0, 0.1, trust=trust))


def test_doh_answers(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore) -> None:
    observation = _doh(loopback, dialer, "cname.test", trust)
    assert observation.failure is None
    assert observation.resolver == f"https://good.test:{loopback.ports['https']}/dns-query@{SERVER}"
    assert _data(observation) == [("CNAME", "ok.test."), ("A", SERVER)]


def test_doh_nxdomain(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore) -> None:
    observation = _doh(loopback, dialer, "nx.test", trust)
    assert observation.failure is Failure.DNS_NXDOMAIN
    assert [r.rcode for r in observation.responses] == ["NXDOMAIN"]


def test_doh_checks_the_certificate_against_the_name(loopback: LoopbackServers, dialer: Dialer,
                                                     trust: TrustStore) -> None:
    assert _doh(loopback, dialer, "ok.test", trust, host="dns.wrong").failure is (
        Failure.SSL_INVALID_HOSTNAME)
    assert _doh(loopback, dialer, "ok.test", TrustStore()).failure is Failure.SSL_UNKNOWN_AUTHORITY


def test_an_unanswered_query_is_resent(loopback: LoopbackServers, dialer: Dialer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # A lost datagram on a noisy network must not read as a DNS failure.
    monkeypatch.setattr(probe_dns, "FIRST_RESEND", 0.2)
    observation = _query(loopback, dialer, "lossy.test", timeout=2.0)
    assert observation.failure is None
    assert observation.addresses() == (SERVER,)
    assert 0.2 <= observation.t - observation.t0 < 1.0
