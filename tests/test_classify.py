"""The classifier's rules, one table row per case (docs/classification.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.classify import (
    Method,
    classify_controls,
    classify_feature,
    classify_target,
    deciding_verdicts,
)
from probe.model import (
    Certificate,
    ControlStatus,
    DNSAnswer,
    DNSObservation,
    DNSResponse,
    Expectations,
    Failure,
    HandshakeMessage,
    HandshakeObservation,
    HTTPObservation,
    Observation,
    Target,
    TargetKind,
    TargetVerdict,
    TCPObservation,
    TLSObservation,
    Transfer,
    Verdict,
    VPNOptions,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "classification.md"

# Addresses are only strings in observations here: nothing is sent anywhere.
PUBLIC4 = "93.184.216.34"
PUBLIC4B = "93.184.216.35"
PUBLIC6 = "2606:2800:220:1:248:1893:25c8:1946"
LAB = "203.0.113.10"
LAB_PREFIX = ("203.0.113.0/24",)

# ---------------------------------------------------------------------------
# Builders


def dns(
    *responses: str | tuple[str, ...],
    failure: Failure | None = None,
    rtype: str = "A",
    query: str = "example.org",
) -> DNSObservation:
    """One lookup; each response is a rcode string or a tuple of addresses."""
    built = []
    for n, response in enumerate(responses):
        if isinstance(response, str):
            built.append(DNSResponse(0.01 * n, response, ()))
        else:
            answers = tuple(DNSAnswer("AAAA" if ":" in a else "A", a, 60) for a in response)
            built.append(DNSResponse(0.01 * n, "NOERROR", answers))
    return DNSObservation(query, rtype, "system", 0.0, 0.05, failure, tuple(built))


def tcp(address: str, failure: Failure | None = None, port: int = 443) -> TCPObservation:
    return TCPObservation(address, port, 0.1, 0.2, failure)


LEAF = Certificate(
    sha256="ab" * 32,
    subject="CN=example.org",
    issuer="CN=Corporate Inspection CA",
    not_before="2024-01-01T00:00:00Z",
    not_after="2034-01-01T00:00:00Z",
    names=("example.org", "www.example.org"),
)


def tls(
    address: str,
    failure: Failure | None = None,
    *,
    port: int = 443,
    certificates: tuple[Certificate, ...] = (),
) -> TLSObservation:
    ok = failure is None
    return TLSObservation(
        address,
        port,
        "example.org",
        (),
        0.1,
        0.3,
        failure,
        version="TLSv1.3" if ok else None,
        certificates=certificates,
        verified=ok,
    )


def http(
    status: int | None = 200,
    failure: Failure | None = None,
    *,
    title: str | None = None,
    found: bool | None = None,
    truncated: bool = False,
    transfer: Transfer | None = None,
) -> HTTPObservation:
    return HTTPObservation(
        "https://example.org/",
        "GET",
        PUBLIC4,
        0.3,
        0.5,
        failure,
        status=None if failure else status,
        body_length=65536 if truncated else 1200,
        body_truncated=truncated,
        title=title,
        body_contains_found=found,
        transfer=transfer,
    )


def target(kind: TargetKind, host: str = "example.org", **expect: object) -> Target:
    port = {TargetKind.DNS: None, TargetKind.HTTP: 80}.get(kind, 443)
    url = f"{kind}://{host}/" if kind in (TargetKind.HTTP, TargetKind.HTTPS) else None
    expectations = Expectations(**expect)  # type: ignore[arg-type]
    return Target(f"{kind}-{host}", kind, host, port, url=url, expect=expectations)


DNS_T = target(TargetKind.DNS)
WG_T = Target("wg", TargetKind.WIREGUARD, "example.org", 51820, transport="udp",
              vpn=VPNOptions(key="server", client_key="client"))
PPTP_T = Target("pptp", TargetKind.PPTP, "example.org", 1723, transport="tcp", vpn=VPNOptions())


def hs(failure: Failure | None = None, *, attempts: int = 1, answerable: bool = True,
       port: int = 51820) -> HandshakeObservation:
    """A VPN handshake with PUBLIC4: our message, and the answer or what came instead."""
    sent = tuple(HandshakeMessage(0.1 + i, True, "handshake initiation", 148) for i in range(attempts))
    heard: tuple[HandshakeMessage, ...] = ()
    if failure is None:
        heard = (HandshakeMessage(attempts + 0.2, False, "handshake response", 92),)
    elif failure is Failure.UNEXPECTED_REPLY:
        heard = (HandshakeMessage(0.2, False, "not wireguard", 40),)
    return HandshakeObservation(
        "pptp" if port == 1723 else "wireguard", "tcp" if port == 1723 else "udp", PUBLIC4, port,
        0.1, attempts + 0.3, failure, attempts=attempts,
        reply="handshake response" if failure is None else None, answerable=answerable,
        messages=sent + heard,
    )
BULK_T = Target("bulk", TargetKind.HTTPS, "example.org", 443, url="https://example.org/big",
                throughput=True)
TCP_T = target(TargetKind.TCP)
TLS_T = target(TargetKind.TLS)
HTTPS_T = target(TargetKind.HTTPS)
HTTP_T = target(TargetKind.HTTP)

OK = ControlStatus(True, True, "controls ok")
NO_DNS = ControlStatus(False, False, "no control name resolved: the resolver is unavailable")
NO_CONNECT = ControlStatus(True, False, "control names resolve but no control endpoint connects")
FAST = ControlStatus(True, True, "controls ok", throughput=10e6)
# 24 kB in the 3 s budget: 8 kB/s, what a 64 kbit/s throttle lets through.
CRAWL = Transfer(24_000, 3.0, cut=True)

# ---------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Case:
    name: str
    target: Target
    observations: tuple[Observation, ...]
    verdict: Verdict
    method: Method
    reason: str = ""  # a substring the reason must contain
    evidence: tuple[int, ...] | None = None
    controls: ControlStatus = OK


A2 = dns((PUBLIC4, PUBLIC4B))
CASES = [
    # -- success, per kind
    Case("dns ok", DNS_T, (A2,), Verdict.REACHABLE, Method.OK, "resolved to 2 addresses", (0,)),
    Case("tcp ok", TCP_T, (A2, tcp(PUBLIC4), tcp(PUBLIC4B)), Verdict.REACHABLE, Method.OK,
         "connected to 2/2 addresses", (0, 1, 2)),
    Case("tcp ok to an IP literal", target(TargetKind.TCP, PUBLIC4), (tcp(PUBLIC4),),
         Verdict.REACHABLE, Method.OK, "connected to 1/1 addresses", (0,)),
    Case("tcp ok with A answered and AAAA empty", TCP_T,
         (dns((PUBLIC4,)), dns(failure=Failure.DNS_NO_ANSWER, rtype="AAAA"), tcp(PUBLIC4)),
         Verdict.REACHABLE, Method.OK, "connected to 1/1"),
    Case("tls ok", TLS_T, (A2, tls(PUBLIC4), tls(PUBLIC4B)), Verdict.REACHABLE, Method.OK,
         "TLS 1.3 handshake ok with 2/2 addresses, certificate valid", (0, 1, 2)),
    Case("tls ok with TCP observations before", TLS_T,
         (dns((PUBLIC4,)), tcp(PUBLIC4), tls(PUBLIC4)), Verdict.REACHABLE, Method.OK,
         "TLS 1.3 handshake ok", (0, 1, 2)),
    Case("https refused the certificate", HTTPS_T,
         (A2, http(failure=Failure.SSL_UNKNOWN_AUTHORITY)), Verdict.BLOCKED, Method.TLS_MITM,
         "certificate"),
    Case("https ok", HTTPS_T, (dns((PUBLIC4,)), http(200)), Verdict.REACHABLE, Method.OK,
         "HTTP 200", (0, 1)),
    Case("http ok with expectations met",
         target(TargetKind.HTTP, status=(200,), body_contains="Hi"),
         (dns((PUBLIC4,)), tcp(PUBLIC4, port=80), http(200, found=True)), Verdict.REACHABLE,
         Method.OK, "HTTP 200"),
    Case("body check not recorded never blocks", target(TargetKind.HTTPS, body_contains="Hi"),
         (dns((PUBLIC4,)), http(200)), Verdict.REACHABLE, Method.OK),
    Case("success stands on a dead network", TCP_T, (A2, tcp(PUBLIC4), tcp(PUBLIC4B)),
         Verdict.REACHABLE, Method.OK, controls=NO_DNS),
    # -- not measured / incomplete
    Case("no observations", TCP_T, (), Verdict.INCONCLUSIVE, Method.NOT_MEASURED, "nothing", ()),
    Case("tls target with only DNS", TLS_T, (A2,), Verdict.INCONCLUSIVE, Method.NOT_MEASURED,
         "no TLS handshake"),
    Case("tls target with a connect but no handshake", TLS_T, (A2, tcp(PUBLIC4)),
         Verdict.INCONCLUSIVE, Method.NOT_MEASURED),
    Case("https target without a request", HTTPS_T, (A2, tls(PUBLIC4)), Verdict.INCONCLUSIVE,
         Method.NOT_MEASURED, "no HTTP request"),
    Case("address guard", TCP_T, (A2, tcp(PUBLIC4), tcp(PUBLIC4B, Failure.ADDRESS_NOT_ALLOWED)),
         Verdict.INCONCLUSIVE, Method.ADDRESS_NOT_ALLOWED, "PROBE_ALLOW_NETWORKS", (2,)),
    Case("address guard on the resolver", DNS_T, (dns(failure=Failure.ADDRESS_NOT_ALLOWED),),
         Verdict.INCONCLUSIVE, Method.ADDRESS_NOT_ALLOWED, evidence=(0,)),
    Case("run deadline", TLS_T, (A2, tls(PUBLIC4, Failure.RUN_DEADLINE)),
         Verdict.INCONCLUSIVE, Method.RUN_DEADLINE, "time budget", (1,)),
    # -- the dead-network gate
    Case("connect failure, resolver down", TCP_T,
         (A2, tcp(PUBLIC4, Failure.GENERIC_TIMEOUT), tcp(PUBLIC4B, Failure.GENERIC_TIMEOUT)),
         Verdict.INCONCLUSIVE, Method.RESOLVER_UNAVAILABLE, "would be tcp-timeout", (1, 2),
         controls=NO_DNS),
    Case("dns failure, resolver down", DNS_T, (dns(failure=Failure.GENERIC_TIMEOUT),),
         Verdict.INCONCLUSIVE, Method.RESOLVER_UNAVAILABLE, "resolver is unavailable",
         controls=NO_DNS),
    Case("connect failure, network down", TLS_T, (A2, tls(PUBLIC4, Failure.GENERIC_TIMEOUT)),
         Verdict.INCONCLUSIVE, Method.NETWORK_UNAVAILABLE, "would be tls-timeout", (1,),
         controls=NO_CONNECT),
    Case("http failure, network down", HTTPS_T, (A2, http(failure=Failure.CONNECTION_RESET)),
         Verdict.INCONCLUSIVE, Method.NETWORK_UNAVAILABLE, controls=NO_CONNECT),
    Case("dns failure needs only working control names", TCP_T,
         (dns("NXDOMAIN", failure=Failure.DNS_NXDOMAIN),), Verdict.BLOCKED, Method.DNS_NXDOMAIN,
         controls=NO_CONNECT),
    Case("partial success is positive evidence", TCP_T,
         (A2, tcp(PUBLIC4), tcp(PUBLIC4B, Failure.GENERIC_TIMEOUT)), Verdict.DEGRADED,
         Method.TCP_TIMEOUT, controls=NO_CONNECT),
    # -- DNS stage
    Case("nxdomain", TCP_T, (dns("NXDOMAIN", failure=Failure.DNS_NXDOMAIN),), Verdict.BLOCKED,
         Method.DNS_NXDOMAIN, "dns_nxdomain_error", (0,)),
    Case("nxdomain from the rcode alone", DNS_T, (dns("NXDOMAIN"),), Verdict.BLOCKED,
         Method.DNS_NXDOMAIN),
    Case("nxdomain for A and AAAA", TCP_T,
         (dns("NXDOMAIN", failure=Failure.DNS_NXDOMAIN),
          dns("NXDOMAIN", failure=Failure.DNS_NXDOMAIN, rtype="AAAA")),
         Verdict.BLOCKED, Method.DNS_NXDOMAIN, evidence=(0, 1)),
    Case("dns timeout", DNS_T, (dns(failure=Failure.GENERIC_TIMEOUT),), Verdict.BLOCKED,
         Method.DNS_FAILURE, "generic_timeout_error", (0,)),
    Case("dns servfail", TLS_T, (dns("SERVFAIL", failure=Failure.DNS_SERVFAIL),),
         Verdict.BLOCKED, Method.DNS_FAILURE, "dns_servfail_error"),
    Case("dns refused", HTTPS_T, (dns("REFUSED"),), Verdict.BLOCKED, Method.DNS_FAILURE,
         "dns_refused_error"),
    Case("dns no answer for a dns target", target(TargetKind.DNS),
         (dns((), rtype="AAAA"),), Verdict.BLOCKED, Method.DNS_FAILURE, "dns_no_answer"),
    Case("dns target needs every lookup", DNS_T,
         (dns((PUBLIC4,)), dns(failure=Failure.DNS_SERVFAIL)), Verdict.BLOCKED,
         Method.DNS_FAILURE, evidence=(1,)),
    Case("injection: two answers", DNS_T, (dns((PUBLIC4,), ("8.7.6.5",)),), Verdict.BLOCKED,
         Method.DNS_INJECTION, "[8.7.6.5] vs [93.184.216.34]", (0,)),
    Case("injection: forged answer before NXDOMAIN", TCP_T,
         (dns(("8.7.6.5",), "NXDOMAIN"), tcp("8.7.6.5")), Verdict.BLOCKED, Method.DNS_INJECTION,
         "NXDOMAIN"),
    Case("injection beats a connect to the forged address", TLS_T,
         (dns(("8.7.6.5",), (PUBLIC4,)), tls("8.7.6.5")), Verdict.BLOCKED, Method.DNS_INJECTION),
    Case("same answers twice is no injection", DNS_T, (dns((PUBLIC4,), (PUBLIC4,)),),
         Verdict.REACHABLE, Method.OK),
    Case("bogon: private", TCP_T, (dns(("10.10.34.35",)), tcp("10.10.34.35")), Verdict.BLOCKED,
         Method.DNS_BOGON, "RFC 1918", (0,)),
    Case("bogon: loopback", DNS_T, (dns(("127.0.0.1",)),), Verdict.BLOCKED, Method.DNS_BOGON,
         "loopback"),
    Case("bogon: CGNAT", DNS_T, (dns(("100.64.1.1",)),), Verdict.BLOCKED, Method.DNS_BOGON,
         "RFC 6598"),
    Case("bogon: 0/8", DNS_T, (dns(("0.0.0.0",)),), Verdict.BLOCKED, Method.DNS_BOGON),
    Case("bogon: reserved", DNS_T, (dns(("240.0.0.1",)),), Verdict.BLOCKED, Method.DNS_BOGON),
    Case("bogon: multicast", DNS_T, (dns(("224.0.0.1",)),), Verdict.BLOCKED, Method.DNS_BOGON),
    Case("bogon: link-local", DNS_T, (dns(("169.254.1.1",)),), Verdict.BLOCKED,
         Method.DNS_BOGON),
    Case("bogon: IPv6 ULA", DNS_T, (dns(("fd00::1",), rtype="AAAA"),), Verdict.BLOCKED,
         Method.DNS_BOGON, "RFC 4193"),
    Case("bogon: IPv6 unspecified", DNS_T, (dns(("::",), rtype="AAAA"),), Verdict.BLOCKED,
         Method.DNS_BOGON),
    Case("bogon: IPv4-mapped private", DNS_T, (dns(("::ffff:10.0.0.1",), rtype="AAAA"),),
         Verdict.BLOCKED, Method.DNS_BOGON, "RFC 1918"),
    Case("bogon: documentation range without prefixes", DNS_T, (dns((LAB,)),),
         Verdict.BLOCKED, Method.DNS_BOGON, "RFC 5737"),
    Case("documentation range inside prefixes is no bogon", target(TargetKind.DNS,
         prefixes=LAB_PREFIX), (dns((LAB,)),), Verdict.REACHABLE, Method.OK),
    Case("private range inside prefixes is no bogon", target(TargetKind.TCP,
         prefixes=("10.0.0.0/8",)), (dns(("10.1.2.3",)), tcp("10.1.2.3")), Verdict.REACHABLE,
         Method.OK),
    Case("bogon: IPv6 documentation", DNS_T, (dns(("2001:db8::1",), rtype="AAAA"),),
         Verdict.BLOCKED, Method.DNS_BOGON, "RFC 3849"),
    Case("unexpected answer for a dns target",
         target(TargetKind.DNS, prefixes=LAB_PREFIX, checked="2024-05-01"),
         (dns((PUBLIC4,)),), Verdict.BLOCKED, Method.DNS_UNEXPECTED_ASN,
         "93.184.216.34 outside the expected prefixes 203.0.113.0/24, checked 2024-05-01", (0,)),
    Case("unexpected answer then TLS ok is reachable", target(TargetKind.TLS, prefixes=LAB_PREFIX),
         (dns((PUBLIC4,)), tls(PUBLIC4)), Verdict.REACHABLE, Method.OK,
         "despite answers 93.184.216.34 outside the expected prefixes"),
    Case("unexpected answer then TLS reset", target(TargetKind.TLS, prefixes=LAB_PREFIX),
         (dns((PUBLIC4,)), tls(PUBLIC4, Failure.CONNECTION_RESET)), Verdict.BLOCKED,
         Method.DNS_UNEXPECTED_ASN, "then tls-reset", (0, 1)),
    Case("unexpected answer then blockpage", target(TargetKind.HTTP, prefixes=LAB_PREFIX,
         status=(200,)), (dns((PUBLIC4,)), http(403)), Verdict.BLOCKED,
         Method.DNS_UNEXPECTED_ASN, "then http-blockpage"),
    Case("expected answer then TLS ok", target(TargetKind.TLS, prefixes=LAB_PREFIX),
         (dns((LAB,)), tls(LAB)), Verdict.REACHABLE, Method.OK),
    # -- TCP stage
    Case("tcp refused", TCP_T,
         (A2, tcp(PUBLIC4, Failure.CONNECTION_REFUSED), tcp(PUBLIC4B, Failure.CONNECTION_REFUSED)),
         Verdict.BLOCKED, Method.TCP_REFUSED, "2/2 addresses failed", (1, 2)),
    Case("tcp refused seen by the TLS check", TLS_T,
         (A2, tls(PUBLIC4, Failure.CONNECTION_REFUSED)), Verdict.BLOCKED, Method.TCP_REFUSED),
    Case("tcp reset", TCP_T, (A2, tcp(PUBLIC4, Failure.CONNECTION_RESET)), Verdict.BLOCKED,
         Method.TCP_RESET, "93.184.216.34:443 connection_reset"),
    Case("tcp timeout", TCP_T, (A2, tcp(PUBLIC4, Failure.GENERIC_TIMEOUT)), Verdict.BLOCKED,
         Method.TCP_TIMEOUT),
    Case("tcp timeout before the TLS check", TLS_T,
         (A2, tcp(PUBLIC4, Failure.GENERIC_TIMEOUT), tls(PUBLIC4, Failure.GENERIC_TIMEOUT)),
         Verdict.BLOCKED, Method.TCP_TIMEOUT, evidence=(1, 2)),
    Case("tcp failure reported alone for a tls target", TLS_T,
         (A2, tcp(PUBLIC4, Failure.GENERIC_TIMEOUT)), Verdict.BLOCKED, Method.TCP_TIMEOUT),
    Case("tcp host unreachable", TCP_T, (A2, tcp(PUBLIC4, Failure.HOST_UNREACHABLE)),
         Verdict.BLOCKED, Method.TCP_UNREACHABLE),
    Case("tcp network unreachable everywhere", TCP_T,
         (dns((PUBLIC6,), rtype="AAAA"), tcp(PUBLIC6, Failure.NETWORK_UNREACHABLE)),
         Verdict.BLOCKED, Method.TCP_UNREACHABLE, "[2606:2800:220:1:248:1893:25c8:1946]:443"),
    Case("tcp other failure", TCP_T, (A2, tcp(PUBLIC4, Failure.CONNECTION_ABORTED)),
         Verdict.BLOCKED, Method.TCP_FAILURE, "connection_aborted"),
    Case("tcp partial", TCP_T, (A2, tcp(PUBLIC4), tcp(PUBLIC4B, Failure.GENERIC_TIMEOUT)),
         Verdict.DEGRADED, Method.TCP_TIMEOUT, "1/2 addresses failed", (0, 1, 2)),
    Case("no local IPv6 route is not partial blocking", TCP_T,
         (dns((PUBLIC4,)), dns((PUBLIC6,), rtype="AAAA"), tcp(PUBLIC4),
          tcp(PUBLIC6, Failure.NETWORK_UNREACHABLE)),
         Verdict.REACHABLE, Method.OK, "IPv6 addresses skipped: no local route"),
    Case("IPv6 timeout while IPv4 works is partial", TCP_T,
         (dns((PUBLIC4,)), dns((PUBLIC6,), rtype="AAAA"), tcp(PUBLIC4),
          tcp(PUBLIC6, Failure.GENERIC_TIMEOUT)),
         Verdict.DEGRADED, Method.TCP_TIMEOUT),
    Case("most common failing method wins", TCP_T,
         (dns((PUBLIC4, PUBLIC4B, "93.184.216.36")), tcp(PUBLIC4, Failure.CONNECTION_RESET),
          tcp(PUBLIC4B, Failure.GENERIC_TIMEOUT), tcp("93.184.216.36", Failure.GENERIC_TIMEOUT)),
         Verdict.BLOCKED, Method.TCP_TIMEOUT, "connection_reset"),
    Case("failing method ties break alphabetically", TCP_T,
         (A2, tcp(PUBLIC4, Failure.GENERIC_TIMEOUT), tcp(PUBLIC4B, Failure.CONNECTION_RESET)),
         Verdict.BLOCKED, Method.TCP_RESET),
    # -- TLS stage
    Case("tls reset", TLS_T, (A2, tls(PUBLIC4, Failure.CONNECTION_RESET),
                             tls(PUBLIC4B, Failure.CONNECTION_RESET)),
         Verdict.BLOCKED, Method.TLS_RESET, evidence=(1, 2)),
    Case("tls reset after a TCP connect", TLS_T,
         (A2, tcp(PUBLIC4), tls(PUBLIC4, Failure.CONNECTION_RESET)), Verdict.BLOCKED,
         Method.TLS_RESET, evidence=(1, 2)),
    Case("tls timeout", TLS_T, (A2, tls(PUBLIC4, Failure.GENERIC_TIMEOUT)), Verdict.BLOCKED,
         Method.TLS_TIMEOUT),
    Case("tls eof", TLS_T, (A2, tls(PUBLIC4, Failure.EOF)), Verdict.BLOCKED, Method.TLS_EOF),
    Case("tls mitm", TLS_T,
         (A2, tls(PUBLIC4, Failure.SSL_UNKNOWN_AUTHORITY, certificates=(LEAF,))),
         Verdict.BLOCKED, Method.TLS_MITM,
         "issuer 'CN=Corporate Inspection CA', sha256 abab", (1,)),
    Case("tls mitm naming the expected host", target(TargetKind.TLS,
         certificate_name="example.org"),
         (A2, tls(PUBLIC4, Failure.SSL_UNKNOWN_AUTHORITY, certificates=(LEAF,))),
         Verdict.BLOCKED, Method.TLS_MITM, "a changed CA is possible"),
    Case("tls mitm: wrong host name", TLS_T, (A2, tls(PUBLIC4, Failure.SSL_INVALID_HOSTNAME)),
         Verdict.BLOCKED, Method.TLS_MITM, "no certificate recorded"),
    Case("tls mitm: invalid certificate", TLS_T,
         (A2, tls(PUBLIC4, Failure.SSL_INVALID_CERTIFICATE, certificates=(LEAF,))),
         Verdict.BLOCKED, Method.TLS_MITM),
    Case("tls other failure", TLS_T, (A2, tls(PUBLIC4, Failure.SSL_FAILED_HANDSHAKE)),
         Verdict.BLOCKED, Method.TLS_FAILURE, "ssl_failed_handshake"),
    Case("tls partial", TLS_T, (A2, tls(PUBLIC4), tls(PUBLIC4B, Failure.CONNECTION_RESET)),
         Verdict.DEGRADED, Method.TLS_RESET, "1/2 addresses failed"),
    Case("https partial handshake, request ok", HTTPS_T,
         (A2, tls(PUBLIC4), tls(PUBLIC4B, Failure.EOF), http(200)), Verdict.DEGRADED,
         Method.TLS_EOF, evidence=(0, 1, 2, 3)),
    Case("https handshake fails before the request", HTTPS_T,
         (A2, tls(PUBLIC4, Failure.CONNECTION_RESET), http(failure=Failure.CONNECTION_RESET)),
         Verdict.BLOCKED, Method.TLS_RESET),
    # -- HTTP stage
    Case("http failure", HTTPS_T, (A2, http(failure=Failure.CONNECTION_RESET)), Verdict.BLOCKED,
         Method.HTTP_FAILURE, "HTTP request failed: connection_reset", (1,)),
    Case("http failure after a partial handshake", HTTPS_T,
         (A2, tls(PUBLIC4), tls(PUBLIC4B, Failure.EOF), http(failure=Failure.GENERIC_TIMEOUT)),
         Verdict.BLOCKED, Method.HTTP_FAILURE, "generic_timeout_error"),
    Case("http response without status", HTTPS_T, (A2, http(None)), Verdict.BLOCKED,
         Method.HTTP_FAILURE, "no status"),
    Case("blockpage by status", target(TargetKind.HTTPS, status=(200, 301)),
         (A2, http(403, title="Access denied")), Verdict.BLOCKED, Method.HTTP_BLOCKPAGE,
         "HTTP 403, title 'Access denied' (expected 200, 301)", (1,)),
    Case("blockpage by body", target(TargetKind.HTTP, body_contains="WhatsApp"),
         (A2, http(200, found=False)), Verdict.BLOCKED, Method.HTTP_BLOCKPAGE,
         "body lacks 'WhatsApp'"),
    Case("blockpage by truncated body", target(TargetKind.HTTP, body_contains="WhatsApp"),
         (A2, http(200, found=False, truncated=True)), Verdict.BLOCKED, Method.HTTP_BLOCKPAGE,
         "the body was truncated after 65536 bytes"),
    Case("any status without expectations", HTTPS_T, (A2, http(403)), Verdict.REACHABLE,
         Method.OK, "HTTP 403"),
    Case("download far slower than the controls'", BULK_T, (A2, http(200, transfer=CRAWL)),
         Verdict.DEGRADED, Method.THROTTLED, "body at 8 kB/s, 1250× slower than the controls' 10 MB/s",
         (0, 1), FAST),
    Case("download as fast as the controls'", BULK_T,
         (A2, http(200, transfer=Transfer(1 << 20, 0.2, cut=False))), Verdict.REACHABLE,
         Method.OK, "HTTP 200", (0, 1), FAST),
    Case("a quick complete download is never throttled", BULK_T,
         (A2, http(200, transfer=Transfer(96_000, 0.04, cut=False))), Verdict.REACHABLE,
         Method.OK, controls=FAST),
    Case("a slow complete download is", BULK_T,
         (A2, http(200, transfer=Transfer(96_000, 1.2, cut=False))), Verdict.DEGRADED,
         Method.THROTTLED, "125× slower", controls=FAST),
    Case("slow download without a control baseline", BULK_T, (A2, http(200, transfer=CRAWL)),
         Verdict.REACHABLE, Method.OK, "HTTP 200"),
    Case("a small body is not timed", BULK_T,
         (A2, http(200, transfer=Transfer(1200, 0.5, cut=False))), Verdict.REACHABLE,
         Method.OK, "HTTP 200", controls=FAST),
    Case("vpn handshake answered", WG_T, (A2, hs()), Verdict.REACHABLE, Method.HANDSHAKE_OK,
         "wireguard handshake ok with 1/1 addresses (handshake response)", (0, 1)),
    Case("vpn handshake answered after resends", WG_T, (A2, hs(attempts=3)), Verdict.DEGRADED,
         Method.HANDSHAKE_SLOW, "answered only after resending (3 sends)"),
    Case("one lost datagram is noise", WG_T, (A2, hs(attempts=2)), Verdict.REACHABLE,
         Method.HANDSHAKE_OK),
    Case("one address answering at once is not slow", WG_T, (A2, hs(attempts=3), hs()),
         Verdict.REACHABLE, Method.HANDSHAKE_OK),
    Case("vpn handshake silence", WG_T, (A2, hs(Failure.GENERIC_TIMEOUT)), Verdict.BLOCKED,
         Method.HANDSHAKE_TIMEOUT, "generic_timeout_error after 1 sent"),
    Case("vpn handshake silence on a dead network", WG_T, (A2, hs(Failure.GENERIC_TIMEOUT)),
         Verdict.INCONCLUSIVE, Method.NETWORK_UNAVAILABLE, controls=NO_CONNECT),
    Case("vpn silence without the key", WG_T, (A2, hs(Failure.GENERIC_TIMEOUT, answerable=False)),
         Verdict.INCONCLUSIVE, Method.HANDSHAKE_NEEDS_KEY, "give it with --vpn-key", (1,)),
    Case("vpn reset without the key is still evidence", PPTP_T,
         (A2, tcp(PUBLIC4, port=1723), hs(Failure.CONNECTION_RESET, answerable=False, port=1723)),
         Verdict.BLOCKED, Method.HANDSHAKE_RESET, "connection_reset"),
    Case("vpn port unreachable", WG_T, (A2, hs(Failure.CONNECTION_REFUSED)), Verdict.BLOCKED,
         Method.HANDSHAKE_REFUSED),
    Case("vpn reply from something else", WG_T, (A2, hs(Failure.UNEXPECTED_REPLY)),
         Verdict.BLOCKED, Method.HANDSHAKE_UNEXPECTED_REPLY, "heard not wireguard"),
    Case("vpn over tls failed", PPTP_T,
         (A2, tcp(PUBLIC4, port=1723), hs(Failure.SSL_FAILED_HANDSHAKE, port=1723)),
         Verdict.BLOCKED, Method.HANDSHAKE_FAILURE),
    Case("vpn tcp connect refused", PPTP_T,
         (A2, tcp(PUBLIC4, Failure.CONNECTION_REFUSED, port=1723)), Verdict.BLOCKED,
         Method.TCP_REFUSED),
    Case("vpn connect without its handshake", PPTP_T, (A2, tcp(PUBLIC4, port=1723)),
         Verdict.INCONCLUSIVE, Method.NOT_MEASURED, "no handshake was attempted"),
    Case("a target without throughput ignores a slow body", HTTPS_T,
         (A2, http(200, transfer=CRAWL)), Verdict.REACHABLE, Method.OK, controls=FAST),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_classify_target(case: Case) -> None:
    result = classify_target(case.target, case.observations, case.controls)
    assert (result.verdict, result.method) == (case.verdict, case.method), result.reason
    assert case.reason in result.reason
    assert result.reason
    if case.evidence is not None:
        assert result.evidence == case.evidence


def test_case_names_are_unique() -> None:
    assert len({c.name for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------
# Dead network: the controls fail the same way as the targets.


def _dead(failure: Failure) -> tuple[Target, tuple[Observation, ...]]:
    control = Target("control", TargetKind.TLS, "control.example", 443)
    return control, (dns(failure=failure), dns(failure=failure, rtype="AAAA"))


@pytest.mark.parametrize("failure", [Failure.GENERIC_TIMEOUT, Failure.DNS_NXDOMAIN,
                                     Failure.DNS_SERVFAIL, Failure.DNS_NO_RESOLVER])
def test_dead_resolver_is_never_blocked(failure: Failure) -> None:
    controls = classify_controls([_dead(failure), _dead(failure)])
    assert not controls.dns_ok
    assert controls.reason.startswith("no control name resolved: the resolver is unavailable")
    assert failure.value in controls.reason
    for kind in TargetKind:
        result = classify_target(target(kind), (dns(failure=failure),), controls)
        assert result.verdict is Verdict.INCONCLUSIVE
        assert result.method == Method.RESOLVER_UNAVAILABLE
        assert result.evidence == (0,)


def test_dead_route_is_never_blocked() -> None:
    control = Target("control", TargetKind.HTTPS, "control.example", 443)
    measured = (dns(("198.51.100.1",)), http(failure=Failure.NETWORK_UNREACHABLE))
    controls = classify_controls([(control, measured)])
    assert (controls.dns_ok, controls.connect_ok) == (True, False)
    assert "network is unavailable (network_unreachable)" in controls.reason
    for kind in (TargetKind.TCP, TargetKind.TLS):
        observations = (A2, tcp(PUBLIC4, Failure.NETWORK_UNREACHABLE),
                        tcp(PUBLIC4B, Failure.NETWORK_UNREACHABLE))
        result = classify_target(target(kind), observations, controls)
        assert (result.verdict, result.method) == (Verdict.INCONCLUSIVE,
                                                   Method.NETWORK_UNAVAILABLE)


def test_guarded_resolver_on_a_dead_network_reads_resolver_unavailable() -> None:
    # The machine's resolver is outside PROBE_ALLOW_NETWORKS, for the controls
    # and the targets alike: the headline is the dead resolver.
    controls = classify_controls([_dead(Failure.ADDRESS_NOT_ALLOWED)])
    result = classify_target(target(TargetKind.TLS), (dns(failure=Failure.ADDRESS_NOT_ALLOWED),),
                             controls)
    assert (result.verdict, result.method) == (Verdict.INCONCLUSIVE, Method.RESOLVER_UNAVAILABLE)
    assert "PROBE_ALLOW_NETWORKS" in result.reason
    assert "the resolver is unavailable" in result.reason


def test_a_redirect_lookup_is_not_the_targets_dns_stage() -> None:
    # https://good.example redirects to another host whose lookup fails: the
    # HTTP observation carries that failure; the target's own DNS was fine.
    https = Target("h", TargetKind.HTTPS, "example.org", 443, url="https://example.org/")
    observations = (A2, dns(failure=Failure.DNS_NXDOMAIN, query="elsewhere.example"),
                    http(failure=Failure.DNS_NXDOMAIN))
    result = classify_target(https, observations, OK)
    assert (result.verdict, result.method) == (Verdict.BLOCKED, Method.HTTP_FAILURE)


# ---------------------------------------------------------------------------
# Controls


def test_controls_ok() -> None:
    control = Target("c", TargetKind.TCP, "control.example", 443)
    measured = (dns(("198.51.100.1", "198.51.100.2")), dns(failure=Failure.DNS_NO_ANSWER,
                rtype="AAAA"), tcp("198.51.100.1", Failure.GENERIC_TIMEOUT), tcp("198.51.100.2"))
    status = classify_controls([(control, measured)])
    assert status == ControlStatus(
        True, True, "controls ok: 1/2 control lookups resolved, 1/2 control connections succeeded"
    )


def test_controls_blocked_by_the_guard_count_as_unavailable() -> None:
    control = Target("c", TargetKind.TCP, "control.example", 443)
    measured = (dns(failure=Failure.ADDRESS_NOT_ALLOWED),)
    status = classify_controls([(control, measured)])
    assert (status.dns_ok, status.connect_ok) == (False, False)
    assert "address_not_allowed" in status.reason


def test_controls_that_only_resolve_say_nothing_about_connecting() -> None:
    control = Target("c", TargetKind.DNS, "control.example")
    status = classify_controls([(control, (dns(("198.51.100.1",)),))])
    assert (status.dns_ok, status.connect_ok) == (True, False)
    assert "no control connection was attempted" in status.reason


def test_controls_not_measured() -> None:
    control = Target("c", TargetKind.TCP, "control.example", 443)
    status = classify_controls([(control, ())])
    assert (status.dns_ok, status.connect_ok) == (False, False)
    assert "no control lookup was made" in status.reason


def test_no_controls_turns_the_check_off() -> None:
    status = classify_controls([])
    assert (status.dns_ok, status.connect_ok) == (True, True)
    assert "dead-network check is off" in status.reason


# ---------------------------------------------------------------------------
# Features


def tv(verdict: Verdict, method: Method, reason: str = "r") -> TargetVerdict:
    return TargetVerdict(verdict, method, reason)


R = tv(Verdict.REACHABLE, Method.OK)
I_NET = tv(Verdict.INCONCLUSIVE, Method.NETWORK_UNAVAILABLE, "network down")
I_DL = tv(Verdict.INCONCLUSIVE, Method.RUN_DEADLINE, "deadline")
B_DNS = tv(Verdict.BLOCKED, Method.DNS_NXDOMAIN)
B_TCP = tv(Verdict.BLOCKED, Method.TCP_TIMEOUT)
D_TLS = tv(Verdict.DEGRADED, Method.TLS_RESET)
D_SLOW = tv(Verdict.DEGRADED, Method.THROTTLED)

FEATURE_CASES = [
    ("no targets", [], Verdict.INCONCLUSIVE, Method.NOT_MEASURED, 0, "no targets"),
    ("all reachable", [R, R], Verdict.REACHABLE, Method.OK, 2, "2/2 targets reachable"),
    ("reachable, inconclusive ignored", [R, I_NET], Verdict.REACHABLE, Method.OK, 1,
     "1 inconclusive set aside"),
    ("all blocked, most common method", [B_TCP, B_DNS, B_TCP], Verdict.BLOCKED,
     Method.TCP_TIMEOUT, 0, "tcp-timeout ×2, dns-nxdomain ×1"),
    ("all blocked, tie alphabetical", [B_TCP, B_DNS], Verdict.BLOCKED, Method.DNS_NXDOMAIN, 0,
     "2/2 targets blocked"),
    ("reachable and blocked", [R, B_DNS, I_DL], Verdict.DEGRADED, Method.PARTIAL, 1,
     "1/2 targets reachable"),
    ("reachable and degraded", [R, D_TLS], Verdict.DEGRADED, Method.PARTIAL, 1, "tls-reset"),
    ("all degraded", [D_TLS, D_TLS], Verdict.DEGRADED, Method.TLS_RESET, 0, "partly"),
    ("blocked and degraded", [B_TCP, D_TLS], Verdict.DEGRADED, Method.PARTIAL, 0, "partly"),
    ("handshakes fine, downloads throttled", [R, D_SLOW, R, D_SLOW], Verdict.DEGRADED,
     Method.THROTTLED, 2, "2/4 targets reachable; 2 downloads throttled"),
    ("throttled and blocked", [D_SLOW, B_TCP], Verdict.DEGRADED, Method.PARTIAL, 0, "partly"),
    ("all inconclusive", [I_NET, I_NET, I_DL], Verdict.INCONCLUSIVE, Method.NETWORK_UNAVAILABLE,
     0, "all 3 targets inconclusive: network down"),
]


@pytest.mark.parametrize(
    ("name", "verdicts", "verdict", "method", "reachable", "reason"),
    FEATURE_CASES,
    ids=[c[0] for c in FEATURE_CASES],
)
def test_classify_feature(
    name: str,
    verdicts: list[TargetVerdict],
    verdict: Verdict,
    method: Method,
    reachable: int,
    reason: str,
) -> None:
    result = classify_feature(verdicts)
    assert (result.verdict, result.method) == (verdict, method), result.reason
    assert (result.reachable, result.total) == (reachable, len(verdicts))
    assert reason in result.reason


# ---------------------------------------------------------------------------
# Docs and tests cannot drift


def _documented_methods() -> list[str]:
    section = DOC.read_text(encoding="utf-8").split("\n## Methods\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE)


def test_every_documented_method_is_tested() -> None:
    documented = _documented_methods()
    tested = {c.method for c in CASES} | {c[3] for c in FEATURE_CASES}
    assert len(documented) == len(set(documented)), "a method is listed twice"
    assert sorted(set(documented)) == sorted(m.value for m in Method)
    assert set(documented) - tested == set()


# ---------------------------------------------------------------------------
# Properties

ADDRESSES = st.sampled_from([PUBLIC4, PUBLIC4B, PUBLIC6, LAB, "10.0.0.1", "::1", "garbage", ""])
FAILURES = st.none() | st.sampled_from(Failure)
TIMES = st.floats(0, 10, allow_nan=False)

answers = st.builds(DNSAnswer, st.sampled_from(["A", "AAAA", "CNAME", "TXT", "a"]), ADDRESSES,
                    st.integers(0, 86400))
responses = st.builds(DNSResponse, TIMES, st.sampled_from(["NOERROR", "NXDOMAIN", "SERVFAIL",
                      "REFUSED", "BADVERS", ""]), st.lists(answers, max_size=3).map(tuple))
certificates = st.builds(Certificate, st.text(max_size=8), st.text(max_size=8),
                         st.text(max_size=8), st.text(max_size=8), st.text(max_size=8),
                         st.lists(st.text(max_size=8), max_size=2).map(tuple))
observations = st.one_of(
    st.builds(DNSObservation, st.text(max_size=10), st.sampled_from(["A", "AAAA", "TXT"]),
              st.just("system"), TIMES, TIMES, FAILURES,
              st.lists(responses, max_size=3).map(tuple)),
    st.builds(TCPObservation, ADDRESSES, st.sampled_from([80, 443]), TIMES, TIMES, FAILURES),
    st.builds(TLSObservation, ADDRESSES, st.sampled_from([80, 443]), st.text(max_size=8),
              st.just(()), TIMES, TIMES, FAILURES,
              version=st.none() | st.sampled_from(["TLSv1.2", "TLSv1.3"]),
              certificates=st.lists(certificates, max_size=2).map(tuple),
              verified=st.booleans()),
    st.builds(HTTPObservation, st.just("https://example.org/"), st.just("GET"),
              st.none() | ADDRESSES, TIMES, TIMES, FAILURES,
              status=st.none() | st.integers(100, 599), title=st.none() | st.text(max_size=8),
              body_truncated=st.booleans(), body_length=st.none() | st.integers(0, 10**6),
              body_contains_found=st.none() | st.booleans()),
)
expectations = st.builds(
    Expectations,
    prefixes=st.lists(st.sampled_from(["203.0.113.0/24", "10.0.0.0/8", "2001:db8::/32", "bad",
                                       "::/0"]), max_size=2).map(tuple),
    certificate_name=st.none() | st.text(max_size=8),
    status=st.lists(st.integers(100, 599), max_size=2).map(tuple),
    body_contains=st.none() | st.text(max_size=8),
    checked=st.none() | st.just("2024-05-01"),
)
targets = st.builds(Target, st.just("t"), st.sampled_from(TargetKind), st.sampled_from(
    ["example.org", PUBLIC4, PUBLIC6]), port=st.none() | st.just(443), expect=expectations)
statuses = st.builds(ControlStatus, st.booleans(), st.booleans(), st.just("controls"))


@settings(max_examples=400, deadline=None)
@given(targets, st.lists(observations, max_size=6), statuses)
def test_classify_target_never_raises(
    target_: Target, observed: list[Observation], controls: ControlStatus
) -> None:
    result = classify_target(target_, tuple(observed), controls)
    assert isinstance(result.verdict, Verdict)
    assert result.method in set(Method)
    assert result.reason
    assert all(0 <= i < len(observed) for i in result.evidence)
    assert list(result.evidence) == sorted(set(result.evidence))
    if result.verdict is Verdict.BLOCKED:
        assert controls.dns_ok, "blocked on a dead resolver"
        if result.method.startswith(("tcp-", "tls-", "http-")):
            assert controls.connect_ok, "blocked on a dead network"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(targets, st.lists(observations, max_size=4)), max_size=3))
def test_classify_controls_never_raises(controls: list[tuple[Target, list[Observation]]]) -> None:
    status = classify_controls(controls)
    assert status.reason
    assert isinstance(status.dns_ok, bool) and isinstance(status.connect_ok, bool)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(TargetVerdict, st.sampled_from(Verdict), st.sampled_from(Method),
                          st.text(min_size=1, max_size=5)), max_size=6))
def test_classify_feature_counts(verdicts: list[TargetVerdict]) -> None:
    result = classify_feature(verdicts)
    assert result.total == len(verdicts)
    assert result.reachable == sum(v.verdict is Verdict.REACHABLE for v in verdicts)
    if result.verdict is Verdict.BLOCKED:
        assert all(v.verdict in (Verdict.BLOCKED, Verdict.INCONCLUSIVE) for v in verdicts)


def test_resolving_names_do_not_make_a_blocked_service_partly_reachable() -> None:
    # China 2017: media names resolve, every TLS handshake to them is reset.
    dns_target = target(TargetKind.DNS)
    tls_target = target(TargetKind.TLS)
    resolved = TargetVerdict(Verdict.REACHABLE, Method.OK, "resolved")
    reset = TargetVerdict(Verdict.BLOCKED, Method.TLS_RESET, "reset")
    nxdomain = TargetVerdict(Verdict.BLOCKED, Method.DNS_NXDOMAIN, "nxdomain")
    media = [(dns_target, resolved), (tls_target, reset), (tls_target, reset)]
    result = classify_feature(deciding_verdicts(media))
    assert (result.verdict, result.method) == (Verdict.BLOCKED, Method.TLS_RESET)
    assert (result.reachable, result.total) == (0, 2)
    # A failing name still counts, and a DNS-only feature keeps its names.
    assert len(deciding_verdicts([(dns_target, nxdomain), (tls_target, reset)])) == 2
    assert deciding_verdicts([(dns_target, resolved)]) == [resolved]


def test_a_blocked_download_leaves_the_story_to_the_handshakes() -> None:
    # China 2017 with timed downloads: the TLS targets and the downloads of
    # the same hosts are reset; the feature reads tls-reset, not http-failure.
    tls_target = target(TargetKind.TLS)
    reset = TargetVerdict(Verdict.BLOCKED, Method.TLS_RESET, "reset")
    download_reset = TargetVerdict(Verdict.BLOCKED, Method.HTTP_FAILURE, "reset")
    throttled = TargetVerdict(Verdict.DEGRADED, Method.THROTTLED, "slow")
    media = [(tls_target, reset), (BULK_T, download_reset)] * 2
    result = classify_feature(deciding_verdicts(media))
    assert (result.verdict, result.method, result.total) == (Verdict.BLOCKED, Method.TLS_RESET, 2)
    # A throttled download always counts; alone, a blocked one does too.
    assert deciding_verdicts([(tls_target, reset), (BULK_T, throttled)]) == [reset, throttled]
    assert deciding_verdicts([(BULK_T, download_reset)]) == [download_reset]
