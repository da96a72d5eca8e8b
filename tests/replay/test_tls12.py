"""TLS 1.2 with a key log, and a client that hangs up without saying why.

Real handshakes between Python's own TLS client and server (in memory,
no sockets), the client writing its key log as ``SSLKEYLOGFILE`` makes it
write: the tracker must read the HTTP inside as the client sent and got
it. Then the certificate judge, which explains a client that left after
the server's certificate without an alert.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st
from servers import Certs, server_context

from probe.errors import InputError
from probe.model import Failure
from probe.replay.http import HTTPTracker
from probe.replay.observe import handshake_outcome
from probe.replay.records import TCPConnection, TLSFacts
from probe.replay.tls import TLSTracker
from probe.replay.tlskeys import DecryptError, KeyLog, decryptors12
from probe.replay.trust import CertificateJudge

REQUEST = b"GET /page HTTP/1.1\r\nHost: good.test\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 31\r\n\r\n<title>inside TLS 1.2</title>.."

# What each side sent, in order: (from_client, bytes).
Flight = list[tuple[bool, bytes]]


def _handshake(certs: Certs, ciphers: str, keylog: Path) -> Flight:
    """A TLS 1.2 handshake and one HTTP exchange over memory BIOs."""
    client_context = ssl.create_default_context(cafile=str(certs.ca))
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    client_context.set_ciphers(ciphers)
    client_context.keylog_filename = str(keylog)
    # (incoming, outgoing) of each side
    cbio, sbio = (ssl.MemoryBIO(), ssl.MemoryBIO()), (ssl.MemoryBIO(), ssl.MemoryBIO())
    server = server_context(certs.good).wrap_bio(*sbio, server_side=True)
    client = client_context.wrap_bio(*cbio, server_hostname="good.test")
    flight: Flight = []

    def pump() -> None:
        for sender, receiver, from_client in ((cbio, sbio, True), (sbio, cbio, False)):
            data = sender[1].read()
            if data:
                flight.append((from_client, data))
                receiver[0].write(data)

    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        pump()
    client.write(REQUEST)
    pump()
    assert server.read(1024) == REQUEST
    server.write(RESPONSE)
    pump()
    assert client.read(1024) == RESPONSE
    assert client.version() == "TLSv1.2"
    return flight


def _track(flight: Flight, keys: KeyLog | None) -> TLSTracker:
    tracker = TLSTracker(keys, lambda _client, _first: HTTPTracker("127.0.0.2", 1 << 20, ("inside",)))
    for t, (from_client, data) in enumerate(flight):
        tracker.data(from_client, float(t), data, 64, None)
    return tracker


@pytest.mark.parametrize("ciphers", [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
])
def test_a_tls12_key_log_opens_the_http_inside(certs: Certs, tmp_path: Path, ciphers: str) -> None:
    keylog = tmp_path / "keys.log"
    flight = _handshake(certs, ciphers, keylog)
    facts, exchanges, _ = _track(flight, KeyLog.parse(keylog.read_bytes().splitlines())).outcome()
    assert facts.decrypted and facts.t_done is not None and facts.error is None
    (exchange,) = exchanges
    assert (exchange.method, exchange.target, exchange.host) == ("GET", "/page", "good.test")
    assert (exchange.status, exchange.title, exchange.complete) == (200, "inside TLS 1.2", True)
    assert exchange.needles == (("inside", True),)
    assert facts.app_bytes_client == len(REQUEST) and facts.app_bytes_server == len(RESPONSE)


def test_without_the_key_or_with_another_the_sizes_are_all_there_is(
    certs: Certs, tmp_path: Path
) -> None:
    keylog = tmp_path / "keys.log"
    flight = _handshake(certs, "ECDHE-ECDSA-AES128-GCM-SHA256", keylog)
    (label, random, secret) = keylog.read_bytes().split(b"\n")[-2].split()
    wrong = KeyLog.parse([b" ".join((label, random, bytes(reversed(secret))))])
    for keys in (None, wrong):
        facts, exchanges, _ = _track(flight, keys).outcome()
        # The handshake is still judged; the HTTP inside stays unread.
        assert facts.t_done is not None and not facts.decrypted and exchanges == ()
        assert facts.app_bytes_client > len(REQUEST)  # record sizes: nonce and tag included


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_hostile_records_raise_only_decrypt_error(header: bytes, body: bytes) -> None:
    for decryptor in decryptors12(0xC02B, bytes(48), bytes(32), bytes(32)) + decryptors12(
        0xCCA9, bytes(48), bytes(32), bytes(32)
    ):
        with pytest.raises(DecryptError):
            decryptor.open(header.ljust(5, b"\x17"), body)


# --------------------------------------------------------------------------
# A client that hung up after the certificate, without an alert


def _der(pem: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)


NOW = datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize(("leaf", "name", "at", "failure"), [
    ("good", "good.test", NOW, None),
    ("self_signed", "good.test", NOW, Failure.SSL_UNKNOWN_AUTHORITY),
    ("wrong", "good.test", NOW, Failure.SSL_INVALID_HOSTNAME),
    ("expired", "good.test", NOW, Failure.SSL_INVALID_CERTIFICATE),
    ("good", "good.test", NOW + datetime.timedelta(days=30), Failure.SSL_INVALID_CERTIFICATE),
    ("good", "127.0.0.2", NOW, None),
])
def test_the_judge_fails_a_chain_as_openssl_does(
    certs: Certs, leaf: str, name: str, at: datetime.datetime, failure: Failure | None
) -> None:
    chain = (_der(getattr(certs, leaf)[0]),)
    assert CertificateJudge.from_bundle(certs.ca).failure(chain, name, at) is failure
    # Without the CA that signed it, nothing is trusted.
    assert CertificateJudge.from_bundle(certs.self_signed[0]).failure(
        (_der(certs.good[0]),), "good.test", NOW) is Failure.SSL_UNKNOWN_AUTHORITY


@given(edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
       extra=st.binary(max_size=64), name=st.text(max_size=20))
def test_damaged_chains_are_judged_never_raise(
    certs: Certs, edits: list[tuple[int, int]], extra: bytes, name: str
) -> None:
    """cryptography parses certificates lazily: damage may surface late."""
    der = bytearray(_der(certs.good[0]))
    for at, value in edits:
        der[at % len(der)] = value
    failure = CertificateJudge.from_bundle(certs.ca).failure((bytes(der), extra), name, NOW)
    assert failure is None or isinstance(failure, Failure)


def test_a_bundle_without_certificates_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("no certificates here\n")
    with pytest.raises(InputError, match="no readable PEM certificate"):
        CertificateJudge.from_bundle(tmp_path / "empty.pem")


def _hung_up(certificates: tuple[bytes, ...]) -> TCPConnection:
    """Connected at 0, ServerHello at 0.01, the client's FIN at 0.02, no alert."""
    tls = TLSFacts(
        client_hello=None, t_client_hello=0.005, server_hello=None, t_server_hello=0.01,
        hello_retry=False, certificates=certificates, alpn=None, alerts=(), t_done=None,
        app_bytes_client=0, app_bytes_server=0, decrypted=False, error=None,
    )
    return TCPConnection(
        client="127.0.0.1", client_port=40000, server="127.0.0.2", server_port=443,
        t_first=0.0, t_syn=0.0, syn_count=1, t_synack=0.001, t_established=0.001,
        t_last=0.03, resets=(), icmp=None, t_fin_client=0.02, t_fin_server=0.03,
        server_ttls=(64,), bytes_client=300, bytes_server=1200, t_client_data=0.005,
        t_server_data=0.01, tls=tls, http=(), gap=False,
    )


def test_a_silent_hang_up_is_judged_by_the_certificate(certs: Certs) -> None:
    judge = CertificateJudge.from_bundle(certs.ca)
    seen: list[tuple[tuple[bytes, ...], str, float]] = []

    def judged(chain: tuple[bytes, ...], name: str, t: float) -> Failure | None:
        seen.append((chain, name, t))
        return judge.failure(chain, name, NOW)

    intercepted = _hung_up((_der(certs.self_signed[0]),))
    outcome = handshake_outcome(intercepted, 8.0, 1.0, judged)
    # The client's FIN, not the server's later one, ends the handshake.
    assert (outcome.failure, outcome.t) == (Failure.SSL_UNKNOWN_AUTHORITY, 0.02)
    assert seen == [((_der(certs.self_signed[0]),), "127.0.0.2", 0.02)]
    # A chain that verifies: the client left for another reason.
    fine = _hung_up((_der(certs.good[0]),))
    assert handshake_outcome(fine, 8.0, 1.0, judged).failure is Failure.SSL_FAILED_HANDSHAKE
    # Nothing to judge (no certificate seen, or no judge): a failed handshake, not EOF.
    assert handshake_outcome(_hung_up(()), 8.0, 1.0, judged).failure is Failure.SSL_FAILED_HANDSHAKE
    assert handshake_outcome(intercepted, 8.0, 1.0).failure is Failure.SSL_FAILED_HANDSHAKE
    # A client that hangs up before the server's hello is not refusing it.
    early = replace(intercepted, t_fin_client=0.008)
    assert handshake_outcome(early, 8.0, 1.0, judged).failure is Failure.EOF
