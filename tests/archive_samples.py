"""Hand-built model objects and reports shared by the archive-stage tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from probe.model import (
    Certificate,
    ControlStatus,
    DNSAnswer,
    DNSObservation,
    DNSResponse,
    Expectations,
    Failure,
    Feature,
    FeatureVerdict,
    HandshakeMessage,
    HandshakeObservation,
    HTTPHop,
    HTTPObservation,
    Observation,
    Target,
    TargetKind,
    TargetResult,
    TargetVerdict,
    TCPObservation,
    TestList,
    TLSObservation,
    Transfer,
    Verdict,
)
from probe.report import build_report

STARTED = datetime(2026, 11, 23, 10, 15, 0, tzinfo=UTC)
FINISHED = datetime(2026, 11, 23, 10, 16, 30, 500000, tzinfo=UTC)

DNS_OBS = DNSObservation(
    query="web.example.com",
    rtype="A",
    resolver="udp://127.0.0.53:53",
    t0=0.001234,
    t=0.012345,
    failure=None,
    responses=(
        DNSResponse(t=0.005, rcode="NOERROR", answers=(DNSAnswer("A", "10.10.34.35", 60),), ip_ttl=57, ip_id=0),
        DNSResponse(t=0.012345, rcode="NOERROR", answers=(DNSAnswer("A", "198.51.100.7", 300),)),
    ),
)
TCP_OBS = TCPObservation(address="198.51.100.7", port=443, t0=0.02, t=0.021, failure=None)
TLS_OBS = TLSObservation(
    address="198.51.100.7",
    port=443,
    sni="web.example.com",
    alpn_offered=("h2", "http/1.1"),
    t0=0.021,
    t=0.05,
    failure=Failure.SSL_UNKNOWN_AUTHORITY,
    version="TLSv1.3",
    cipher="TLS_AES_128_GCM_SHA256",
    alpn="h2",
    certificates=(
        Certificate(
            sha256="ab" * 32,
            subject="CN=web.example.com",
            issuer="CN=Interception CA «test»",
            not_before="2026-01-01T00:00:00Z",
            not_after="2027-01-01T00:00:00Z",
            names=("web.example.com", "*.example.com"),
        ),
    ),
)
HTTP_OBS = HTTPObservation(
    url="https://web.example.com/",
    method="GET",
    address="198.51.100.7",
    t0=0.05,
    t=0.2,
    failure=None,
    status=200,
    headers=(("Content-Type", "text/html; charset=utf-8"), ("Server", "nginx")),
    body_length=1234,
    body_sha256="cd" * 32,
    title="Blocked — 访问受限",
    redirects=(HTTPHop("http://web.example.com/", 301, "https://web.example.com/"),),
    transfer=Transfer(size=1234, seconds=0.125, cut=False),
)
TIMEOUT_OBS = TCPObservation(address="198.51.100.9", port=5222, t0=0.1, t=10.1, failure=Failure.GENERIC_TIMEOUT)

HANDSHAKE_OBS = HandshakeObservation(
    protocol="openvpn", transport="udp", address="198.51.100.11", port=1194, t0=0.3, t=1.45,
    failure=None, attempts=2, reply="P_CONTROL_HARD_RESET_SERVER_V2", answerable=True,
    messages=(
        HandshakeMessage(0.3, True, "P_CONTROL_HARD_RESET_CLIENT_V2", 14),
        HandshakeMessage(1.3, True, "P_CONTROL_HARD_RESET_CLIENT_V2", 14),
        HandshakeMessage(1.45, False, "P_CONTROL_HARD_RESET_SERVER_V2", 26),
    ),
)

ALL_OBSERVATIONS: tuple[Observation, ...] = (
    DNS_OBS, TCP_OBS, TLS_OBS, HTTP_OBS, TIMEOUT_OBS, HANDSHAKE_OBS,
)

WEB = Target(
    id="https-web",
    kind=TargetKind.HTTPS,
    host="web.example.com",
    port=443,
    sni="web.example.com",
    alpn=("h2", "http/1.1"),
    url="https://web.example.com/",
    expect=Expectations(prefixes=("198.51.100.0/24",), asn=64500, status=(200, 302), checked="2026-11-01"),
)
WEB_DNS = Target(id="dns-web", kind=TargetKind.DNS, host="web.example.com", rtype="A")
CHAT = Target(id="tcp-chat", kind=TargetKind.TCP, host="chat.example.com", port=5222)
MEDIA = Target(id="tls-media", kind=TargetKind.TLS, host="media.example.com", port=443, sni="media.example.com")
CONTROL_DNS = Target(id="dns-control", kind=TargetKind.DNS, host="control.example.net")
CONTROL_TLS = Target(id="tls-control", kind=TargetKind.TLS, host="control.example.net", port=443)

TESTLIST = TestList(
    name="example service",
    version="1",
    description="A service with two features.",
    updated="2026-11-01",
    features=(
        Feature("web", "Web", "The web site", (WEB_DNS, WEB)),
        Feature("messaging", "Messaging", "Chat and media", (CHAT, MEDIA)),
    ),
    controls=(CONTROL_DNS, CONTROL_TLS),
    sha256="0f" * 32,
    path="/home/volunteer/secret-name/lists/example.yaml",
)

REACHABLE = TargetVerdict(Verdict.REACHABLE, "ok", "every check succeeded", (0,))


def result(target: Target, feature: str, verdict: TargetVerdict = REACHABLE, observations: tuple[Observation, ...] = (DNS_OBS,)) -> TargetResult:
    return TargetResult(target=target, feature=feature, observations=observations, verdict=verdict)


# Deliberately not in test-list order: the runner measures in random order.
RESULTS = (
    result(MEDIA, "messaging", TargetVerdict(Verdict.BLOCKED, "tls-mitm", "unknown CA", (2,)), (TCP_OBS, TCP_OBS, TLS_OBS)),
    result(WEB, "web", observations=(DNS_OBS, TCP_OBS, TLS_OBS, HTTP_OBS)),
    result(CHAT, "messaging", TargetVerdict(Verdict.BLOCKED, "tcp-timeout", "no SYN-ACK", (0,)), (TIMEOUT_OBS,)),
    result(WEB_DNS, "web"),
)
CONTROLS = (result(CONTROL_TLS, "controls", observations=(TCP_OBS,)), result(CONTROL_DNS, "controls"))
CONTROL_STATUS = ControlStatus(dns_ok=True, connect_ok=True, reason="controls resolve and connect")
FEATURES = {
    "messaging": FeatureVerdict(Verdict.BLOCKED, "tcp-timeout", "every endpoint blocked", 0, 2),
    "web": FeatureVerdict(Verdict.REACHABLE, "ok", "every endpoint reachable", 2, 2),
}


def build(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "testlist": TESTLIST,
        "results": RESULTS,
        "controls": CONTROLS,
        "control_status": CONTROL_STATUS,
        "features": FEATURES,
        "started": STARTED,
        "finished": FINISHED,
        "source": {"kind": "live"},
        "probe_info": {"asn": 64496, "cc": "CN"},
        "config": {"resolver": "system", "parallel": 8, "max_time": 600.0, "timeouts": {"connect": 10.0}},
    }
    return build_report(**(arguments | overrides))


def build_large(features: int = 12, targets_per_feature: int = 6) -> dict[str, Any]:
    """A report of real size: dozens of targets, each with a full chain."""
    feature_list = []
    results = []
    verdicts = {}
    for f in range(features):
        targets = tuple(
            Target(id=f"https-{f}-{t}", kind=TargetKind.HTTPS, host=f"h{t}.f{f}.example.com", port=443, url=f"https://h{t}.f{f}.example.com/")
            for t in range(targets_per_feature)
        )
        feature_list.append(Feature(f"feature-{f}", f"Feature {f}", "", targets))
        results.extend(result(t, f"feature-{f}", observations=ALL_OBSERVATIONS) for t in targets)
        verdicts[f"feature-{f}"] = FeatureVerdict(Verdict.REACHABLE, "ok", "all reachable", targets_per_feature, targets_per_feature)
    testlist = TestList("large", "3", "", "2026-11-01", tuple(feature_list), (CONTROL_DNS,), "1a" * 32, "large.yaml")
    return build(testlist=testlist, results=results, controls=(result(CONTROL_DNS, "controls"),), features=verdicts)
