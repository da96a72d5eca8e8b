"""A feature's verdict from its targets' verdicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from probe.classify.methods import Method, most_common, plural, tally
from probe.model import FeatureVerdict, Target, TargetKind, TargetVerdict, Verdict


def deciding_verdicts(results: Sequence[tuple[Target, TargetVerdict]]) -> list[TargetVerdict]:
    """The target verdicts a feature's verdict rests on.

    A name that resolves says the name exists, not that the service works:
    when a feature also has targets that connect (tcp, tls, http), its
    ``dns`` targets count only when they fail (a DNS block blocks the
    feature too). Otherwise WhatsApp media under SNI resets (China 2017)
    would read "partly reachable" because its names still resolve.

    A ``throughput`` target is there to time a download: next to other
    connecting targets its blocking is theirs to tell (a reset download
    of a host whose TLS target was reset says nothing new, and would
    drown "tls-reset" in "http-failure"), so it counts unless blocked.
    """
    connecting = [t for t, _ in results if t.kind is not TargetKind.DNS]
    others_connect = any(not t.throughput for t in connecting)
    return [
        verdict
        for target, verdict in results
        if not (connecting and target.kind is TargetKind.DNS and verdict.verdict is Verdict.REACHABLE)
        and not (others_connect and target.throughput and verdict.verdict is Verdict.BLOCKED)
    ]


def classify_feature(verdicts: Sequence[TargetVerdict]) -> FeatureVerdict:
    """Aggregate target verdicts (docs/classification.md, "Features").

    Inconclusive targets are set aside when others give evidence; a mix of
    working and failing endpoints is ``degraded`` with method ``partial``
    (WhatsApp text working while media failed, China 2017).
    """
    total = len(verdicts)
    if not verdicts:
        return FeatureVerdict(
            Verdict.INCONCLUSIVE, Method.NOT_MEASURED, "the feature has no targets", 0, 0
        )
    counts = Counter(v.verdict for v in verdicts)
    reachable = counts[Verdict.REACHABLE]
    failing = [v for v in verdicts if v.verdict in (Verdict.BLOCKED, Verdict.DEGRADED)]
    ignored = counts[Verdict.INCONCLUSIVE]
    aside = f"; {ignored} inconclusive set aside" if ignored and ignored < total else ""

    if not reachable and not failing:
        reason = most_common(v.reason for v in verdicts)
        method = most_common(v.method for v in verdicts)
        return FeatureVerdict(
            Verdict.INCONCLUSIVE, method, f"all {total} targets inconclusive: {reason}", 0, total
        )
    measured = reachable + len(failing)
    summary = f"{reachable}/{measured} targets reachable"
    if not failing:
        return FeatureVerdict(Verdict.REACHABLE, Method.OK, summary + aside, reachable, total)
    methods = tally(v.method for v in failing)
    method = most_common(v.method for v in failing)
    if all(v.method == Method.THROTTLED for v in failing):
        # Throttling slows a service, it does not split it: the targets that
        # "work" (a handshake, a small page) are not evidence against it.
        reason = f"{summary}; {plural(len(failing), 'download')} throttled{aside}"
        return FeatureVerdict(Verdict.DEGRADED, Method.THROTTLED, reason, reachable, total)
    if reachable:
        reason = f"{summary}; {plural(len(failing), 'target')} failing ({methods}){aside}"
        return FeatureVerdict(Verdict.DEGRADED, Method.PARTIAL, reason, reachable, total)
    if counts[Verdict.DEGRADED] == len(failing):
        reason = f"every target only partly reachable ({methods}){aside}"
        return FeatureVerdict(Verdict.DEGRADED, method, reason, 0, total)
    if counts[Verdict.BLOCKED] == len(failing):
        reason = f"{len(failing)}/{measured} targets blocked ({methods}){aside}"
        return FeatureVerdict(Verdict.BLOCKED, method, reason, 0, total)
    reason = f"some targets blocked, others partly reachable ({methods}){aside}"
    return FeatureVerdict(Verdict.DEGRADED, Method.PARTIAL, reason, 0, total)
