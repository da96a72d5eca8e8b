"""One target's verdict: the stages in order, then the dead-network gate.

The first stage that fails decides the method. A failure is only called
``blocked`` when the controls show the network can do what the target
could not (DESIGN.md: no false "blocked" on a dead network); positive
evidence (a stage that passed, even partly) stands whatever the controls say.
"""

from __future__ import annotations

from collections.abc import Sequence

from probe.classify.connect import connect_stage, unanswerable_silence
from probe.classify.dns import dns_stage
from probe.classify.http import http_stage
from probe.classify.methods import Method, Stage, StageOutcome
from probe.classify.throughput import throughput_stage
from probe.model import (
    VPN_KINDS,
    ControlStatus,
    Failure,
    HandshakeObservation,
    Observation,
    Target,
    TargetKind,
    TargetVerdict,
    Verdict,
)

_NOT_ATTEMPTED = {
    TargetKind.DNS: "no DNS lookup was made",
    TargetKind.TCP: "no TCP connection was attempted",
    TargetKind.TLS: "no TLS handshake was attempted",
    TargetKind.HTTP: "no HTTP request was made",
    TargetKind.HTTPS: "no HTTP request was made",
    **{kind: "no handshake was attempted" for kind in VPN_KINDS},
}

# Inconclusive whatever else was seen: the measurement itself is incomplete.
_INCOMPLETE = (
    (
        Failure.ADDRESS_NOT_ALLOWED,
        Method.ADDRESS_NOT_ALLOWED,
        "the address guard (PROBE_ALLOW_NETWORKS) stopped a check",
    ),
    (
        Failure.RUN_DEADLINE,
        Method.RUN_DEADLINE,
        "the run's time budget ran out before the checks finished",
    ),
)


def classify_target(
    target: Target, observations: Sequence[Observation], controls: ControlStatus
) -> TargetVerdict:
    observations = tuple(observations)
    if not observations:
        return TargetVerdict(Verdict.INCONCLUSIVE, Method.NOT_MEASURED, "nothing was measured")
    for failure, method, reason in _INCOMPLETE:
        hit = tuple(i for i, o in enumerate(observations) if o.failure is failure)
        if hit:
            # On a dead network the dead network is the headline: a user
            # who set the guard on a machine with no route must read
            # "resolver unavailable", not a detail of how it was stopped.
            dead = _dead_network(controls)
            if dead is not None:
                reason = f"{reason}; the controls say: {controls.reason}"
                return TargetVerdict(Verdict.INCONCLUSIVE, dead, reason, hit)
            return TargetVerdict(Verdict.INCONCLUSIVE, method, reason, hit)

    dns = dns_stage(target, observations)
    if dns.stage.outcome is StageOutcome.FAILED:
        return _blocked(dns.stage, controls, needs_connect=False)
    if target.kind is TargetKind.DNS:
        if dns.stage.outcome is StageOutcome.ABSENT:
            return _not_measured(target)
        if dns.unexpected is not None:
            stage = Stage(
                StageOutcome.FAILED, Method.DNS_UNEXPECTED_ASN, dns.unexpected, dns.stage.evidence
            )
            return _blocked(stage, controls, needs_connect=False)
        return _verdict(Verdict.REACHABLE, dns.stage)

    connect = connect_stage(target, observations)
    http = http_stage(target, observations)
    for stage in (connect, http):
        if stage.outcome is StageOutcome.FAILED:
            if dns.unexpected is not None:
                # The later failure corroborates the unexpected answers:
                # the client was probably sent to the censor's address.
                stage = Stage(
                    StageOutcome.FAILED,
                    Method.DNS_UNEXPECTED_ASN,
                    f"{dns.unexpected}; then {stage.method}: {stage.reason}",
                    dns.stage.evidence + stage.evidence,
                )
            return _blocked(stage, controls, needs_connect=True)

    required = http if target.kind in (TargetKind.HTTP, TargetKind.HTTPS) else connect
    if required.outcome is StageOutcome.ABSENT:
        return _needs_key(target, observations) or _not_measured(target)
    # A stale expectation must not make a false positive: the later stage
    # succeeded, so the unexpected answers are only worth a mention.
    note = f" (despite {dns.unexpected})" if dns.unexpected is not None else ""
    evidence = dns.stage.evidence + connect.evidence + http.evidence
    if connect.outcome is StageOutcome.PARTIAL:
        return TargetVerdict(
            Verdict.DEGRADED, connect.method, connect.reason + note, _sorted(evidence)
        )
    throughput = throughput_stage(target, observations, controls)
    if throughput.outcome is StageOutcome.FAILED:
        return TargetVerdict(
            Verdict.DEGRADED, throughput.method, throughput.reason + note, _sorted(evidence)
        )
    if target.kind in VPN_KINDS:
        return _handshake_done(observations, connect.reason + note, _sorted(evidence))
    return TargetVerdict(Verdict.REACHABLE, Method.OK, required.reason + note, _sorted(evidence))


# Sends before an answer that mark a path as bad for the protocol: one lost
# datagram is ordinary noise (a 3 % lossy network must not read degraded),
# two in a row on every address are a pattern.
SLOW_ATTEMPTS = 3


def _handshake_done(
    observations: Sequence[Observation], reason: str, evidence: tuple[int, ...]
) -> TargetVerdict:
    """A VPN server answered; ``degraded`` when every answer took two or
    more resends (a censor dropping most tries, or a very lossy path)."""
    sends = [o.attempts for o in observations
             if isinstance(o, HandshakeObservation) and o.failure is None]
    if sends and min(sends) >= SLOW_ATTEMPTS:
        shown = ", ".join(str(n) for n in sends)
        return TargetVerdict(Verdict.DEGRADED, Method.HANDSHAKE_SLOW,
                             f"{reason}; answered only after resending ({shown} sends)", evidence)
    return TargetVerdict(Verdict.REACHABLE, Method.HANDSHAKE_OK, reason, evidence)


def _needs_key(target: Target, observations: Sequence[Observation]) -> TargetVerdict | None:
    """Only silence, from a server that drops what lacks its key: unknowable."""
    silent = tuple(i for i, o in enumerate(observations)
                   if isinstance(o, HandshakeObservation) and unanswerable_silence(o))
    if not silent:
        return None
    options = target.vpn
    names = [n for n in (options.key, options.client_key) if n] if options else []
    key = f" ({', '.join(names)})" if names else ""
    reason = (f"no answer, but the server drops {target.kind} handshakes made without its "
              f"key{key}: give it with --vpn-key to measure")
    return TargetVerdict(Verdict.INCONCLUSIVE, Method.HANDSHAKE_NEEDS_KEY, reason, silent)


def _blocked(stage: Stage, controls: ControlStatus, *, needs_connect: bool) -> TargetVerdict:
    """``blocked``, unless the controls failed too.

    A DNS-stage failure needs only working control names: a name that
    fails while the control names resolve is about that name, even when
    nothing connects. A later-stage failure needs both.
    """
    dead = _dead_network(controls, needs_connect=needs_connect)
    if dead is not None:
        return _distrusted(stage, dead, controls)
    return _verdict(Verdict.BLOCKED, stage)


def _dead_network(controls: ControlStatus, *, needs_connect: bool = True) -> Method | None:
    if not controls.dns_ok:
        return Method.RESOLVER_UNAVAILABLE
    if needs_connect and not controls.connect_ok:
        return Method.NETWORK_UNAVAILABLE
    return None


def _distrusted(stage: Stage, method: Method, controls: ControlStatus) -> TargetVerdict:
    reason = f"would be {stage.method} ({stage.reason}); the controls say: {controls.reason}"
    return TargetVerdict(Verdict.INCONCLUSIVE, method, reason, _sorted(stage.evidence))


def _not_measured(target: Target) -> TargetVerdict:
    return TargetVerdict(Verdict.INCONCLUSIVE, Method.NOT_MEASURED, _NOT_ATTEMPTED[target.kind])


def _verdict(verdict: Verdict, stage: Stage) -> TargetVerdict:
    return TargetVerdict(verdict, stage.method, stage.reason, _sorted(stage.evidence))


def _sorted(evidence: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(set(evidence)))
