"""The connect stage: TCP connects, TLS and VPN handshakes, per address.

The TLS check opens its own connection, so a TLS observation's failure
may be a connect failure (reported with ``version`` None). When the net
layer also records the TCP connect right before the handshake, a failed
connect is judged as TCP; otherwise the failures that can only happen at
connect time (refused, unreachable) still count as TCP. A VPN handshake
pairs with its connect the same way (over UDP it has none). A handshake
the server could not answer (we lacked its key) that met only silence is
no attempt at all: it shows nothing either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from probe.classify.addresses import endpoint, family, parse_address
from probe.classify.methods import Method, Stage, StageOutcome, most_common, tally
from probe.model import (
    VPN_KINDS,
    Failure,
    HandshakeObservation,
    Observation,
    Target,
    TargetKind,
    TCPObservation,
    TLSObservation,
)

_TCP_METHODS = {
    Failure.CONNECTION_REFUSED: Method.TCP_REFUSED,
    Failure.CONNECTION_RESET: Method.TCP_RESET,
    Failure.GENERIC_TIMEOUT: Method.TCP_TIMEOUT,
    Failure.HOST_UNREACHABLE: Method.TCP_UNREACHABLE,
    Failure.NETWORK_UNREACHABLE: Method.TCP_UNREACHABLE,
}

_TLS_METHODS = {
    # A RST to SYN is connection_refused; a reset later is a reset of the
    # handshake, the classic reaction to a forbidden SNI.
    Failure.CONNECTION_REFUSED: Method.TCP_REFUSED,
    Failure.HOST_UNREACHABLE: Method.TCP_UNREACHABLE,
    Failure.NETWORK_UNREACHABLE: Method.TCP_UNREACHABLE,
    Failure.CONNECTION_RESET: Method.TLS_RESET,
    Failure.GENERIC_TIMEOUT: Method.TLS_TIMEOUT,
    Failure.EOF: Method.TLS_EOF,
    Failure.SSL_UNKNOWN_AUTHORITY: Method.TLS_MITM,
    Failure.SSL_INVALID_HOSTNAME: Method.TLS_MITM,
    Failure.SSL_INVALID_CERTIFICATE: Method.TLS_MITM,
}


_HANDSHAKE_METHODS = {
    # Over UDP an ICMP port unreachable; over TCP a RST to SYN is the connect's.
    Failure.CONNECTION_REFUSED: Method.HANDSHAKE_REFUSED,
    Failure.HOST_UNREACHABLE: Method.TCP_UNREACHABLE,
    Failure.NETWORK_UNREACHABLE: Method.TCP_UNREACHABLE,
    Failure.CONNECTION_RESET: Method.HANDSHAKE_RESET,
    Failure.EOF: Method.HANDSHAKE_RESET,
    Failure.GENERIC_TIMEOUT: Method.HANDSHAKE_TIMEOUT,
    Failure.UNEXPECTED_REPLY: Method.HANDSHAKE_UNEXPECTED_REPLY,
}
_Step = TLSObservation | HandshakeObservation


def unanswerable_silence(observation: HandshakeObservation) -> bool:
    """Silence from a server we could not expect to answer (no key)."""
    return not observation.answerable and observation.failure is Failure.GENERIC_TIMEOUT


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One connection to one address: a TCP connect, a TLS handshake, or both."""

    family: str  # "IPv4", "IPv6"
    failure: Failure | None
    method: Method | None  # None: the attempt succeeded
    detail: str  # "203.0.113.5:443 connection_reset (...)"
    evidence: tuple[int, ...]
    handshake: _Step | None  # the successful handshake, if any


def connect_stage(target: Target, observations: Sequence[Observation]) -> Stage:
    attempts, skipped = _drop_unrouted_families(_attempts(target, observations))
    if not attempts:
        return Stage(StageOutcome.ABSENT, Method.OK, "no connection was attempted")
    failed = [a for a in attempts if a.method is not None]
    passed = [a for a in attempts if a.method is None]
    note = "".join(
        f"; {fam} addresses skipped: no local route (network_unreachable)" for fam in skipped
    )
    if not failed:
        evidence = tuple(i for a in passed for i in a.evidence)
        return Stage(StageOutcome.PASSED, Method.OK, _success(passed, len(attempts)) + note, evidence)
    method = Method(most_common(a.method for a in failed if a.method is not None))
    count = _count(len(failed), len(attempts))
    details = "; ".join(a.detail for a in failed)
    if not passed:
        evidence = tuple(i for a in failed for i in a.evidence)
        return Stage(StageOutcome.FAILED, method, f"{count} failed: {details}{note}", evidence)
    reason = f"{count} failed ({details}), the others succeeded: {_success(passed, len(attempts))}"
    evidence = tuple(sorted(i for a in attempts for i in a.evidence))
    return Stage(StageOutcome.PARTIAL, method, reason + note, evidence)


def _count(n: int, total: int) -> str:
    return f"{n}/{total} addresses"


def _success(passed: list[_Attempt], total: int) -> str:
    vpn = [a.handshake for a in passed if isinstance(a.handshake, HandshakeObservation)]
    if vpn:
        replies = tally(h.reply or "an answer" for h in vpn)
        return f"{vpn[0].protocol} handshake ok with {_count(len(vpn), total)} ({replies})"
    handshakes = [a.handshake for a in passed if isinstance(a.handshake, TLSObservation)]
    if not handshakes:
        return f"connected to {_count(len(passed), total)}"
    versions = tally((h.version or "TLS").replace("TLSv", "TLS ") for h in handshakes)
    certificate = (
        "certificate valid" if all(h.verified for h in handshakes) else "certificate not verified"
    )
    return f"{versions} handshake ok with {_count(len(handshakes), total)}, {certificate}"


_TCP = tuple[int, TCPObservation]
_TLS = tuple[int, _Step]


def _attempts(target: Target, observations: Sequence[Observation]) -> list[_Attempt]:
    """Pair each TLS or VPN handshake with the TCP connect just before it
    to the same endpoint; unpaired connects are attempts of their own."""
    pending: dict[tuple[str, int], _TCP] = {}
    pairs: list[tuple[_TCP, None] | tuple[_TCP | None, _TLS]] = []
    for i, observation in enumerate(observations):
        if isinstance(observation, TCPObservation):
            key = (observation.address, observation.port)
            if key in pending:
                pairs.append((pending[key], None))
            pending[key] = (i, observation)
        elif isinstance(observation, TLSObservation | HandshakeObservation):
            key = (observation.address, observation.port)
            pairs.append((pending.pop(key, None), (i, observation)))
    pairs.extend((tcp, None) for tcp in pending.values())
    pairs.sort(key=lambda pair: min(item[0] for item in pair if item is not None))
    attempts = (_attempt(target, tcp, tls) for tcp, tls in pairs)
    return [a for a in attempts if a is not None]


def _attempt(target: Target, tcp_item: _TCP | None, tls_item: _TLS | None) -> _Attempt | None:
    first = tcp_item[1] if tcp_item else tls_item[1] if tls_item else None
    if first is None:
        return None
    where = endpoint(first.address, first.port)
    fam = family(parse_address(first.address))
    evidence = tuple(item[0] for item in (tcp_item, tls_item) if item is not None)
    tcp = tcp_item[1] if tcp_item else None
    if tcp is not None and tcp.failure is not None:
        method = _TCP_METHODS.get(tcp.failure, Method.TCP_FAILURE)
        return _Attempt(fam, tcp.failure, method, f"{where} {tcp.failure}", evidence, None)
    if tls_item is None:
        # A connect without its handshake says nothing about a tls or VPN
        # target: the measurement stopped half way.
        if target.kind is TargetKind.TLS or target.kind in VPN_KINDS:
            return None
        return _Attempt(fam, None, None, f"{where} connected", evidence, None)
    tls = tls_item[1]
    if isinstance(tls, HandshakeObservation):
        return _vpn_attempt(fam, where, evidence, tls)
    if tls.failure is None:
        return _Attempt(fam, None, None, f"{where} handshake ok", evidence, tls)
    method = _TLS_METHODS.get(tls.failure, Method.TLS_FAILURE)
    detail = f"{where} {tls.failure}"
    if method is Method.TLS_MITM:
        detail += _certificate(target, tls)
    return _Attempt(fam, tls.failure, method, detail, evidence, None)


def _vpn_attempt(
    fam: str, where: str, evidence: tuple[int, ...], handshake: HandshakeObservation
) -> _Attempt | None:
    if handshake.failure is None:
        return _Attempt(fam, None, None, f"{where} {handshake.reply}", evidence, handshake)
    if unanswerable_silence(handshake):
        return None
    method = _HANDSHAKE_METHODS.get(handshake.failure, Method.HANDSHAKE_FAILURE)
    sent = sum(m.sent for m in handshake.messages)
    heard = [m.name for m in handshake.messages if not m.sent]
    detail = f"{where} {handshake.failure} after {sent} sent"
    if heard:
        detail += f", heard {', '.join(heard)}"
    return _Attempt(fam, handshake.failure, method, detail, evidence, None)


def _certificate(target: Target, tls: TLSObservation) -> str:
    """The presented leaf: the evidence of interception."""
    if not tls.certificates:
        return " (no certificate recorded)"
    leaf = tls.certificates[0]
    text = f" (leaf subject {leaf.subject!r}, issuer {leaf.issuer!r}, sha256 {leaf.sha256}"
    expected = target.expect.certificate_name
    if expected and expected.lower() in (n.lower() for n in leaf.names):
        # Signal changed its CA once: a cert naming the right host that the
        # trust store rejects may be a new CA rather than an interceptor.
        text += f"; it does name the expected {expected}, so a changed CA is possible"
    return text + ")"


def _drop_unrouted_families(attempts: list[_Attempt]) -> tuple[list[_Attempt], list[str]]:
    """Set aside a whole address family that failed with no local route
    while another family connected: a machine without IPv6 is not a
    censored one (network_unreachable is ENETUNREACH from our own kernel)."""
    working = {a.family for a in attempts if a.method is None}
    skipped = sorted(
        fam
        for fam in {a.family for a in attempts} - working
        if working
        and all(a.failure is Failure.NETWORK_UNREACHABLE for a in attempts if a.family == fam)
    )
    return [a for a in attempts if a.family not in skipped], skipped
