"""The probe's vocabulary: test list targets, observations, verdicts.

Everything here is a frozen dataclass or an enum from the standard library,
so that the live checks, the pcap replay and the classifier all speak the
same types and nothing in this module can touch the network.

Times in observations are seconds (float) relative to the run's zero time,
like OONI's ``t0``/``t``: they are comparable within a report, and they do
not leak the wall clock of every single step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Failure(enum.StrEnum):
    """The closed vocabulary of failure strings.

    Names follow OONI's netxlite where one exists, so that analysts can
    compare our reports with OONI measurements. Every exception a check
    can meet is mapped to one of these in exactly one place
    (``probe.net.errors``); nothing else may appear in a report.
    """

    # Our guard: the destination is outside PROBE_ALLOW_NETWORKS.
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    GENERIC_TIMEOUT = "generic_timeout_error"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    CONNECTION_ABORTED = "connection_aborted"
    HOST_UNREACHABLE = "host_unreachable"
    NETWORK_UNREACHABLE = "network_unreachable"
    EOF = "eof_error"
    DNS_NXDOMAIN = "dns_nxdomain_error"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_REFUSED = "dns_refused_error"
    DNS_SERVFAIL = "dns_servfail_error"
    DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
    # No usable resolver at all (empty /etc/resolv.conf, bad --resolver).
    DNS_NO_RESOLVER = "dns_no_resolver"
    SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
    SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
    SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
    SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"
    HTTP_INVALID_RESPONSE = "http_invalid_response"
    # A VPN server (or something in its place) answered our handshake with
    # bytes that are not the protocol's reply to it.
    UNEXPECTED_REPLY = "unexpected_reply"
    HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
    # The run's wall-time budget ran out before this check could finish.
    RUN_DEADLINE = "run_deadline_exceeded"
    UNKNOWN = "unknown_failure"


class Verdict(enum.StrEnum):
    REACHABLE = "reachable"
    BLOCKED = "blocked"
    DEGRADED = "degraded"
    INCONCLUSIVE = "inconclusive"


class TargetKind(enum.StrEnum):
    DNS = "dns"
    TCP = "tcp"
    TLS = "tls"
    HTTP = "http"
    HTTPS = "https"
    # VPN protocols: the first exchange of each (docs/vpn.md).
    OPENVPN = "openvpn"
    WIREGUARD = "wireguard"
    IKEV2 = "ikev2"
    PPTP = "pptp"
    L2TP = "l2tp"
    SSTP = "sstp"


VPN_KINDS = frozenset({
    TargetKind.OPENVPN, TargetKind.WIREGUARD, TargetKind.IKEV2,
    TargetKind.PPTP, TargetKind.L2TP, TargetKind.SSTP,
})


# --------------------------------------------------------------------------
# Test lists


@dataclass(frozen=True, slots=True)
class Expectations:
    """What a list author expects, dated, so stale ones can be spotted.

    ``prefixes`` are CIDR strings (e.g. the operator's announced ranges);
    an answer inside them is never treated as a bogon or as unexpected.
    """

    prefixes: tuple[str, ...] = ()
    asn: int | None = None
    certificate_name: str | None = None
    status: tuple[int, ...] = ()
    body_contains: str | None = None
    checked: str | None = None  # ISO date the expectation was last confirmed
    # The list's prefix table the prefixes came from, so a lab (or a user
    # with fresher data) can swap the table without editing the list.
    prefix_table: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to measure.

    ``id`` is stable across runs (derived from kind, host, port and path
    unless the list names it), so ``probe diff`` can line targets up.
    Only the fields that make sense for ``kind`` are set; the test list
    loader guarantees that.
    """

    id: str
    kind: TargetKind
    host: str
    port: int | None = None
    rtype: str = "A"  # DNS record type for kind == dns
    sni: str | None = None  # TLS server name; defaults to host
    alpn: tuple[str, ...] = ()
    url: str | None = None  # for http/https
    method: str = "GET"
    # http/https: also measure how fast the body arrives (the "throttled"
    # method compares that with the controls' downloads).
    throughput: bool = False
    # VPN kinds: "udp" or "tcp" (fixed for most protocols, a choice for OpenVPN).
    transport: str | None = None
    vpn: VPNOptions | None = None
    expect: Expectations = field(default_factory=Expectations)


@dataclass(frozen=True, slots=True)
class VPNOptions:
    """What a VPN handshake needs beyond host and port.

    ``key`` names an entry of the test list's ``keys`` table (WireGuard:
    the server's public key; OpenVPN: the tls-auth/tls-crypt static key),
    ``client_key`` the WireGuard client's private key (a responder answers
    only peers it knows). Only names travel with the target, so reports
    never carry a secret; values are looked up when the check runs.
    """

    key: str | None = None
    client_key: str | None = None
    # OpenVPN: how the server wraps its control channel ("tls-auth",
    # "tls-crypt") or None; tls-auth's key-direction and HMAC digest.
    control: str | None = None
    key_direction: int | None = None
    digest: str = "sha1"


@dataclass(frozen=True, slots=True)
class Feature:
    id: str
    name: str
    description: str
    targets: tuple[Target, ...]
    source: str | None = None  # where the endpoints come from, for reviewers


@dataclass(frozen=True, slots=True)
class TestList:
    __test__ = False  # not a pytest test class, despite the name

    name: str
    version: str
    description: str
    updated: str
    features: tuple[Feature, ...]
    # Controls: names that should work from anywhere. When they fail the
    # same way as the targets, the network (not a censor) is the suspect.
    controls: tuple[Target, ...]
    sha256: str  # of the list file's bytes, so reports pin what was run
    path: str
    # Named keys for VPN handshakes (name -> text as the list gives it).
    keys: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------
# Observations: facts only, one per network operation.


@dataclass(frozen=True, slots=True)
class DNSAnswer:
    rtype: str  # "A", "AAAA", "CNAME" ...
    data: str  # address or target name, in presentation format
    ttl: int


# Rcodes (RFC 1035 section 4.1.1) a stub resolver reports by name; any
# other rcode but NOERROR says the server misbehaved.
_RCODE_FAILURES = {
    "NXDOMAIN": Failure.DNS_NXDOMAIN,
    "SERVFAIL": Failure.DNS_SERVFAIL,
    "REFUSED": Failure.DNS_REFUSED,
}


@dataclass(frozen=True, slots=True)
class DNSResponse:
    """One response received for a query. Injection shows as several."""

    t: float
    rcode: str  # "NOERROR", "NXDOMAIN", ...
    answers: tuple[DNSAnswer, ...]
    # Packet-level facts only replay can see (IP TTL and ID of the
    # response); forged answers often differ from the real one here.
    ip_ttl: int | None = None
    ip_id: int | None = None

    def stub_failure(self, asked: str) -> Failure | None:
        """The failure a stub resolver reports for this response to a query
        for ``asked`` records: the rcode's, or no answer when a NOERROR
        response holds none of that type (NODATA, RFC 2308 section 2.2).

        The one rule for the live check, replay and the classifier (which
        also judges observations whose failure field was left empty).
        """
        rcode = self.rcode.upper()
        if rcode != "NOERROR":
            return _RCODE_FAILURES.get(rcode, Failure.DNS_SERVER_MISBEHAVING)
        asked = asked.upper()
        if any(a.rtype.upper() == asked for a in self.answers):
            return None
        return Failure.DNS_NO_ANSWER


@dataclass(frozen=True, slots=True)
class DNSObservation:
    query: str
    rtype: str
    resolver: str  # "system", "udp://ADDR:53", "tcp://...", "https://..."
    t0: float
    t: float
    failure: Failure | None
    responses: tuple[DNSResponse, ...] = ()
    kind: str = "dns"

    def addresses(self) -> tuple[str, ...]:
        """A/AAAA data of the first response, the one a stub would use."""
        if not self.responses:
            return ()
        return tuple(
            a.data for a in self.responses[0].answers if a.rtype in ("A", "AAAA")
        )


@dataclass(frozen=True, slots=True)
class TCPObservation:
    address: str
    port: int
    t0: float
    t: float
    failure: Failure | None
    kind: str = "tcp"


@dataclass(frozen=True, slots=True)
class Certificate:
    sha256: str  # hex fingerprint of the DER bytes
    subject: str
    issuer: str
    not_before: str  # RFC 3339
    not_after: str
    names: tuple[str, ...]  # subjectAltName DNS entries


@dataclass(frozen=True, slots=True)
class TLSObservation:
    address: str
    port: int
    sni: str
    alpn_offered: tuple[str, ...]
    t0: float
    t: float
    failure: Failure | None
    version: str | None = None  # "TLSv1.3"
    cipher: str | None = None
    alpn: str | None = None
    # Chain as presented by the server, leaf first. Recorded also when
    # verification failed: the certificate is the evidence of interception.
    certificates: tuple[Certificate, ...] = ()
    verified: bool = False
    kind: str = "tls"


@dataclass(frozen=True, slots=True)
class HTTPHop:
    """One request/response in a redirect chain."""

    url: str
    status: int
    location: str | None


@dataclass(frozen=True, slots=True)
class Transfer:
    """How fast a response body arrived: ``size`` bytes in ``seconds``,
    from the end of the response head to the last body byte read.

    ``cut``: reading stopped at the download time budget, not at the
    body's end or the body cap, so the rate is what the path allowed.
    """

    size: int
    seconds: float
    cut: bool

    def rate(self) -> float:
        """Bytes per second (a transfer of no measurable duration is instant)."""
        return self.size / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class HTTPObservation:
    url: str
    method: str
    address: str | None  # the server address the request went to
    t0: float
    t: float
    failure: Failure | None
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # scrubbed of IP addresses
    body_length: int | None = None
    body_sha256: str | None = None
    body_truncated: bool = False
    title: str | None = None
    redirects: tuple[HTTPHop, ...] = ()
    # Whether the target's expect.body_contains occurs in the body that was
    # read (None: no such expectation, or not checked). The body itself is
    # not kept, so the check that needs it must record its outcome here.
    body_contains_found: bool | None = None
    # Only for targets that ask for a throughput measurement.
    transfer: Transfer | None = None
    kind: str = "http"


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """One message of a VPN handshake, as sent or received."""

    t: float
    sent: bool  # True: the probe sent it; False: it arrived
    name: str  # the protocol's name for it, e.g. "P_CONTROL_HARD_RESET_CLIENT_V2"
    size: int  # bytes of the datagram, or of the message in the stream


@dataclass(frozen=True, slots=True)
class HandshakeObservation:
    """A VPN protocol's first exchange with one server address.

    ``failure`` is None when the server answered our handshake (``reply``
    names the answer). Over UDP the first message is resent while
    unanswered: ``attempts`` counts the sends. Over TCP the connect is its
    own TCPObservation just before this one, as for TLS.
    """

    protocol: str  # the target kind: "openvpn", "wireguard", ...
    transport: str  # "udp" | "tcp"
    address: str
    port: int
    t0: float
    t: float
    failure: Failure | None
    attempts: int = 1
    reply: str | None = None
    # False when a key the server demands was not given (tls-auth, a
    # WireGuard peer's key): the server drops such messages by design, so
    # silence is no evidence of blocking.
    answerable: bool = True
    messages: tuple[HandshakeMessage, ...] = ()
    kind: str = "handshake"


Observation = (
    DNSObservation | TCPObservation | TLSObservation | HTTPObservation | HandshakeObservation
)


# --------------------------------------------------------------------------
# Verdicts


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    """A target's verdict with the method and the observations behind it.

    ``evidence`` holds indices into the target's observation list.
    ``reason`` says in words why (mandatory for inconclusive).
    """

    verdict: Verdict
    method: str
    reason: str
    evidence: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FeatureVerdict:
    verdict: Verdict
    method: str
    reason: str
    reachable: int  # targets reachable
    total: int


@dataclass(frozen=True, slots=True)
class TargetResult:
    """Everything measured and concluded for one target."""

    target: Target
    feature: str  # feature id, or "controls"
    observations: tuple[Observation, ...]
    verdict: TargetVerdict


@dataclass(frozen=True, slots=True)
class ControlStatus:
    """What the control targets say about the network itself."""

    dns_ok: bool  # some control name resolved
    connect_ok: bool  # some control endpoint completed TCP (and TLS if asked)
    reason: str
    # The fastest control download (bytes/s) among measurable ones: what
    # the network can carry, the baseline a throttled target is held to.
    throughput: float | None = None
