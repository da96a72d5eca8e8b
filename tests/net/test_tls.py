"""The TLS check against loopback TLS servers with a test CA."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import SERVER, Certs, LoopbackServers

from probe.errors import InputError
from probe.model import Failure, TCPObservation, TLSObservation
from probe.net import tls
from probe.net.certs import certificate_from_der
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.trust import TrustStore


def _handshake(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, server: str,
               sni: str = "good.test", alpn: Sequence[str] = (),
               timeout: float = 1.0) -> tuple[TCPObservation, TLSObservation]:
    return asyncio.run(tls.connect_and_handshake(
        SERVER, loopback.ports[server], sni, alpn, dialer, Clock(), timeout, trust))


def test_a_good_handshake(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, certs: Certs) -> None:
    connect, observation = _handshake(loopback, dialer, trust, "tls-good",
                                      alpn=("h2", "http/1.1"))
    assert connect.failure is None and connect.t <= observation.t
    assert observation.failure is None and observation.verified
    assert observation.version == "TLSv1.3"
    assert observation.cipher is not None and observation.cipher.startswith("TLS_")
    assert observation.alpn == "h2"
    assert observation.alpn_offered == ("h2", "http/1.1")
    assert (observation.address, observation.port, observation.sni) == (
        SERVER, loopback.ports["tls-good"], "good.test")
    (leaf,) = observation.certificates
    assert leaf.sha256 == hashlib.sha256(certs.good_der).hexdigest()
    assert leaf.subject == "CN=good.test" and leaf.issuer == "CN=Probe Test CA"
    assert leaf.names == ("good.test", "other.test")
    assert leaf.not_before < leaf.not_after and leaf.not_after.endswith("Z")


@pytest.mark.parametrize(
    ("server", "sni", "failure", "subject", "issuer"),
    [
        ("tls-good", "wrong.test", Failure.SSL_INVALID_HOSTNAME, "CN=good.test",
         "CN=Probe Test CA"),
        ("tls-wrong", "good.test", Failure.SSL_INVALID_HOSTNAME, "CN=wrong.example",
         "CN=Probe Test CA"),
        ("tls-self", "good.test", Failure.SSL_UNKNOWN_AUTHORITY, "CN=good.test", "CN=good.test"),
        ("tls-expired", "good.test", Failure.SSL_INVALID_CERTIFICATE, "CN=good.test",
         "CN=Probe Test CA"),
    ],
)
def test_verification_failures_keep_the_presented_certificate(
    loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, server: str, sni: str, failure: Failure,
    subject: str, issuer: str,
) -> None:
    connect, observation = _handshake(loopback, dialer, trust, server, sni=sni)
    assert connect.failure is None
    assert observation.failure is failure and not observation.verified
    (leaf,) = observation.certificates
    assert (leaf.subject, leaf.issuer) == (subject, issuer)


def test_the_system_store_does_not_know_the_test_ca(loopback: LoopbackServers, dialer: Dialer) -> None:
    _, observation = _handshake(loopback, dialer, TrustStore(), "tls-good")
    assert observation.failure is Failure.SSL_UNKNOWN_AUTHORITY
    assert len(observation.certificates) == 1


def test_without_the_chain_a_second_unverified_handshake_gets_it(
    loopback: LoopbackServers, dialer: Dialer, trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on OpenSSL 1.1.1, which forgets the chain of a failed verification.
    real = tls._presented_chain
    calls: list[int] = []

    def forgetful(sslobj: object) -> list[bytes]:
        calls.append(1)
        return [] if len(calls) == 1 else real(sslobj)  # type: ignore[arg-type]

    monkeypatch.setattr(tls, "_presented_chain", forgetful)
    _, observation = _handshake(loopback, dialer, trust, "tls-self")
    assert observation.failure is Failure.SSL_UNKNOWN_AUTHORITY
    assert len(calls) == 2
    assert [c.subject for c in observation.certificates] == ["CN=good.test"]


@pytest.mark.parametrize(
    ("server", "failure"),
    [
        ("hold", Failure.GENERIC_TIMEOUT),  # accepts, never sends a ServerHello
        ("reset", Failure.CONNECTION_RESET),
        ("close", Failure.EOF),
        ("not-tls", Failure.SSL_FAILED_HANDSHAKE),
    ],
)
def test_handshake_failures_after_a_good_connect(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore,
                                                 server: str, failure: Failure) -> None:
    connect, observation = _handshake(loopback, dialer, trust, server, timeout=0.4)
    assert connect.failure is None
    assert observation.failure is failure
    assert observation.version is None and observation.certificates == ()
    assert not observation.verified


def test_the_handshake_timeout_is_bounded(loopback: LoopbackServers, dialer: Dialer, trust: TrustStore) -> None:
    _, observation = _handshake(loopback, dialer, trust, "hold", timeout=0.3)
    assert 0.25 <= observation.t - observation.t0 < 1.0


@pytest.mark.parametrize(
    ("server", "failure"),
    [("closed", Failure.CONNECTION_REFUSED), ("backlog", Failure.GENERIC_TIMEOUT)],
)
def test_connect_failures_are_the_handshakes_failure(loopback: LoopbackServers, dialer: Dialer,
                                                     trust: TrustStore, server: str,
                                                     failure: Failure) -> None:
    connect, observation = _handshake(loopback, dialer, trust, server, timeout=0.3)
    assert connect.failure is failure and observation.failure is failure
    assert (connect.t0, connect.t) == (observation.t0, observation.t)
    assert observation.certificates == () and not observation.verified


@given(st.binary(max_size=300))
def test_unparsable_certificates_keep_their_fingerprint(der: bytes) -> None:
    certificate = certificate_from_der(der)
    assert certificate.sha256 == hashlib.sha256(der).hexdigest()


def test_a_bad_ca_bundle_is_a_one_line_error(tmp_path: object) -> None:
    with pytest.raises(InputError, match="--ca-bundle /nonexistent/ca.pem: cannot load") as info:
        TrustStore.from_bundle("/nonexistent/ca.pem")
    assert "\n" not in str(info.value)
