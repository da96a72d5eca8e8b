"""The per-target plan: which observations, in which order."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from servers import FORGED, SERVER, LoopbackServers

from probe.model import (
    DNSObservation,
    Expectations,
    Failure,
    HTTPObservation,
    Observation,
    Target,
    TargetKind,
    TCPObservation,
    TLSObservation,
)
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.plan import Measurer
from probe.net.trust import TrustStore
from probe.plan import CheckSettings
from probe.resolver import parse_resolver


@pytest.fixture
def settings(loopback: LoopbackServers) -> CheckSettings:
    return CheckSettings(
        resolver=parse_resolver(f"udp://{SERVER}:{loopback.ports['dns']}"),
        dns_timeout=0.5, dns_window=0.1, tcp_timeout=0.5, tls_timeout=0.5, http_timeout=2.0,
    )


def _measure(settings: CheckSettings, dialer: Dialer, trust: TrustStore,
             target: Target) -> tuple[Observation, ...]:
    measurer = Measurer(settings, dialer, Clock(), trust)
    return asyncio.run(measurer.measure(target))


def _shape(observations: tuple[Observation, ...]) -> list[tuple[str, ...]]:
    """Kind, subject and failure of each observation, for compact asserts."""
    shape: list[tuple[str, ...]] = []
    for o in observations:
        failure = str(o.failure) if o.failure else "ok"
        if isinstance(o, DNSObservation):
            shape.append(("dns", o.query, o.rtype, failure))
        elif isinstance(o, (TCPObservation, TLSObservation)):
            shape.append((o.kind, o.address, failure))
        else:
            shape.append(("http", str(o.address), failure))
    return shape


def _target(kind: TargetKind, host: str, **fields: object) -> Target:
    return Target(id=f"{kind}-{host}", kind=kind, host=host, **fields)  # type: ignore[arg-type]


def test_a_dns_target_is_one_lookup(settings: CheckSettings, dialer: Dialer,
                                    trust: TrustStore) -> None:
    observations = _measure(settings, dialer, trust, _target(TargetKind.DNS, "twice.test"))
    assert _shape(observations) == [("dns", "twice.test", "A", "ok")]
    (lookup,) = observations
    assert isinstance(lookup, DNSObservation)
    assert lookup.addresses() == (FORGED,) and len(lookup.responses) == 2


def test_a_dns_target_asks_its_record_type(settings: CheckSettings, dialer: Dialer,
                                           trust: TrustStore) -> None:
    target = _target(TargetKind.DNS, "dual.test", rtype="AAAA")
    assert _shape(_measure(settings, dialer, trust, target)) == [
        ("dns", "dual.test", "AAAA", "ok")]


def test_tcp_connects_to_every_address_in_family_order(
    loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer, trust: TrustStore
) -> None:
    target = _target(TargetKind.TCP, "dual.test", port=loopback.ports["hold"])
    assert _shape(_measure(settings, dialer, trust, target)) == [
        ("dns", "dual.test", "A", "ok"),
        ("dns", "dual.test", "AAAA", "ok"),
        ("tcp", SERVER, "ok"),
        ("tcp", "::1", "connection_refused"),  # nobody listens on ::1
    ]


def test_max_addresses_caps_the_connects(loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer,
                                         trust: TrustStore) -> None:
    target = _target(TargetKind.TCP, "dual.test", port=loopback.ports["hold"])
    capped = dataclasses.replace(settings, max_addresses=1)
    assert [o.kind for o in _measure(capped, dialer, trust, target)] == ["dns", "dns", "tcp"]


def test_a_name_without_aaaa_still_connects(loopback: LoopbackServers, settings: CheckSettings,
                                            dialer: Dialer, trust: TrustStore) -> None:
    target = _target(TargetKind.TCP, "ok.test", port=loopback.ports["hold"])
    assert _shape(_measure(settings, dialer, trust, target)) == [
        ("dns", "ok.test", "A", "ok"),
        ("dns", "ok.test", "AAAA", "dns_no_answer"),
        ("tcp", SERVER, "ok"),
    ]


@pytest.mark.parametrize(
    ("host", "failure"),
    [("nx.test", "dns_nxdomain_error"), ("silent.test", "generic_timeout_error")],
)
def test_a_failed_lookup_stops_the_plan(loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer,
                                        trust: TrustStore, host: str, failure: str) -> None:
    for kind, port in ((TargetKind.TCP, loopback.ports["hold"]), (TargetKind.TLS, None),
                       (TargetKind.HTTP, None)):
        target = _target(kind, host, port=port)
        # AAAA is not asked either: it would only repeat the failure.
        assert _shape(_measure(settings, dialer, trust, target)) == [
            ("dns", host, "A", failure)]


def test_an_ip_literal_skips_dns(loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer,
                                 trust: TrustStore) -> None:
    target = _target(TargetKind.TCP, SERVER, port=loopback.ports["closed"])
    assert _shape(_measure(settings, dialer, trust, target)) == [
        ("tcp", SERVER, "connection_refused")]


def test_tls_records_the_connect_and_the_handshake(loopback: LoopbackServers, settings: CheckSettings,
                                                   dialer: Dialer, trust: TrustStore) -> None:
    target = _target(TargetKind.TLS, "good.test", port=loopback.ports["tls-good"],
                     alpn=("h2",))
    observations = _measure(settings, dialer, trust, target)
    assert _shape(observations) == [
        ("dns", "good.test", "A", "ok"),
        ("dns", "good.test", "AAAA", "dns_no_answer"),
        ("tcp", SERVER, "ok"),
        ("tls", SERVER, "ok"),
    ]
    handshake = observations[-1]
    assert isinstance(handshake, TLSObservation)
    assert handshake.sni == "good.test" and handshake.alpn == "h2" and handshake.verified
    assert [o.t0 for o in observations] == sorted(o.t0 for o in observations)


def test_tls_uses_the_targets_sni(loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer,
                                  trust: TrustStore) -> None:
    target = _target(TargetKind.TLS, SERVER, port=loopback.ports["tls-good"], sni="blocked.test")
    observations = _measure(settings, dialer, trust, target)
    assert _shape(observations) == [("tcp", SERVER, "ok"),
                                    ("tls", SERVER, "ssl_invalid_hostname")]


def test_tls_timeout_after_a_good_connect(loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer,
                                          trust: TrustStore) -> None:
    target = _target(TargetKind.TLS, SERVER, port=loopback.ports["hold"])
    assert _shape(_measure(settings, dialer, trust, target)) == [
        ("tcp", SERVER, "ok"), ("tls", SERVER, "generic_timeout_error")]


def test_http_follows_a_redirect_and_records_its_lookups(
    loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer, trust: TrustStore
) -> None:
    url = f"http://good.test:{loopback.ports['http']}/redirect-other"
    target = _target(TargetKind.HTTP, "good.test", url=url,
                     expect=Expectations(body_contains="your address"))
    observations = _measure(settings, dialer, trust, target)
    assert _shape(observations) == [
        ("dns", "good.test", "A", "ok"),
        ("dns", "good.test", "AAAA", "dns_no_answer"),
        ("dns", "other.test", "A", "ok"),
        ("dns", "other.test", "AAAA", "dns_no_answer"),
        ("http", SERVER, "ok"),
    ]
    fetch = observations[-1]
    assert isinstance(fetch, HTTPObservation)
    assert fetch.url == url and fetch.status == 200 and len(fetch.redirects) == 1
    assert fetch.body_contains_found is True


def test_a_redirect_host_failing_to_resolve_fails_the_fetch(
    loopback: LoopbackServers, settings: CheckSettings, dialer: Dialer, trust: TrustStore
) -> None:
    url = f"https://good.test:{loopback.ports['https']}/redirect-nx"
    target = _target(TargetKind.HTTPS, "good.test", url=url)
    assert _shape(_measure(settings, dialer, trust, target))[-2:] == [
        ("dns", "nx.test", "A", "dns_nxdomain_error"),
        ("http", SERVER, "dns_nxdomain_error"),
    ]


def test_http_without_a_url_fetches_the_root(settings: CheckSettings, dialer: Dialer,
                                             trust: TrustStore) -> None:
    # Port 80 on 127.0.0.2: nobody listens there.
    observations = _measure(settings, dialer, trust, _target(TargetKind.HTTP, SERVER))
    (fetch,) = observations
    assert isinstance(fetch, HTTPObservation)
    assert fetch.url == f"http://{SERVER}/" and fetch.failure is Failure.CONNECTION_REFUSED


def test_a_tcp_target_needs_a_port(settings: CheckSettings, dialer: Dialer,
                                   trust: TrustStore) -> None:
    with pytest.raises(ValueError, match="needs a port"):
        _measure(settings, dialer, trust, _target(TargetKind.TCP, SERVER))
