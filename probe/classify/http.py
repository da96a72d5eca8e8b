"""The HTTP stage: the request the target's feature actually needs."""

from __future__ import annotations

from collections.abc import Sequence

from probe.classify.methods import Method, Stage, StageOutcome
from probe.model import Failure, HTTPObservation, Observation, Target

# An https request that failed on the server's certificate met the same
# interception a TLS target would: call it the same way.
_CERTIFICATE_FAILURES = {
    Failure.SSL_UNKNOWN_AUTHORITY,
    Failure.SSL_INVALID_HOSTNAME,
    Failure.SSL_INVALID_CERTIFICATE,
}


def http_stage(target: Target, observations: Sequence[Observation]) -> Stage:
    requests = [
        (i, o) for i, o in enumerate(observations) if isinstance(o, HTTPObservation)
    ]
    if not requests:
        return Stage(StageOutcome.ABSENT, Method.OK, "no HTTP request was made")
    # The plan makes one request per target; if a runner retried, the
    # last attempt is the one that counts.
    i, response = requests[-1]
    evidence = (i,)
    if response.failure in _CERTIFICATE_FAILURES:
        reason = f"HTTPS request refused the server's certificate: {response.failure}"
        return Stage(StageOutcome.FAILED, Method.TLS_MITM, reason, evidence)
    if response.failure is not None:
        reason = f"HTTP request failed: {response.failure}"
        return Stage(StageOutcome.FAILED, Method.HTTP_FAILURE, reason, evidence)
    if response.status is None:
        return Stage(StageOutcome.FAILED, Method.HTTP_FAILURE, "HTTP response had no status", evidence)
    shown = f"HTTP {response.status}" + (f", title {response.title!r}" if response.title else "")
    expect = target.expect
    if expect.status and response.status not in expect.status:
        wanted = ", ".join(str(s) for s in expect.status)
        return Stage(
            StageOutcome.FAILED, Method.HTTP_BLOCKPAGE, f"{shown} (expected {wanted})", evidence
        )
    if expect.body_contains and response.body_contains_found is False:
        # A truncated body may hold the text past the cut: say so, since a
        # reader must weigh this verdict differently.
        cut = ""
        if response.body_truncated:
            read = f" after {response.body_length} bytes" if response.body_length else ""
            cut = f" (the body was truncated{read})"
        return Stage(
            StageOutcome.FAILED,
            Method.HTTP_BLOCKPAGE,
            f"{shown}: body lacks {expect.body_contains!r}{cut}",
            evidence,
        )
    return Stage(StageOutcome.PASSED, Method.OK, shown, evidence)
