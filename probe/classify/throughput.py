"""Throughput: a body that arrives far slower than the controls' is throttled.

Throttling blocks nothing: the handshake completes, the status is 200,
only the bytes crawl (Russia and Twitter, March 2021). A rate means
something only next to what the same network gives elsewhere, so a
target's download is held to the fastest control download of the run,
never to a fixed number: a volunteer on a slow link must not read
"throttled" everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from probe.classify.methods import Method, Stage, StageOutcome
from probe.model import ControlStatus, HTTPObservation, Observation, Target

# A complete body smaller than this arrives in a handful of round trips:
# its "rate" is latency, not bandwidth.
MIN_TIMED_BYTES = 64 * 1024
# A complete download quicker than this was not held back, whatever its
# rate next to the controls': a few milliseconds of scheduling noise on a
# fast path would otherwise read as an 8x slowdown.
MIN_THROTTLED_SECONDS = 0.5
# How much slower than the controls a download must be. Well above the
# spread between healthy servers, well below what a throttle imposes
# (64-128 kbit/s against megabits).
THROTTLE_FACTOR = 8.0


def measured_rate(observation: HTTPObservation) -> float | None:
    """Bytes per second of a timed body, or None when it says nothing."""
    transfer = observation.transfer
    if transfer is None or observation.failure is not None:
        return None
    if transfer.cut or transfer.size >= MIN_TIMED_BYTES:
        return transfer.rate()
    return None


def fastest_rate(observations: Iterable[Observation]) -> float | None:
    """The best measurable download among ``observations`` (the controls')."""
    rates = [
        rate
        for o in observations
        if isinstance(o, HTTPObservation) and (rate := measured_rate(o)) is not None
    ]
    return max(rates, default=None)


def throughput_stage(
    target: Target, observations: Sequence[Observation], controls: ControlStatus
) -> Stage:
    if not target.throughput:
        return Stage(StageOutcome.ABSENT, Method.OK, "no throughput asked for")
    timed = [
        (i, o) for i, o in enumerate(observations)
        if isinstance(o, HTTPObservation) and o.transfer is not None
    ]
    if not timed:
        return Stage(StageOutcome.ABSENT, Method.OK, "no download was timed")
    i, response = timed[-1]
    rate = measured_rate(response)
    if rate is None:
        size = response.transfer.size if response.transfer else 0
        return Stage(StageOutcome.PASSED, Method.OK,
                     f"body too small to time ({size} bytes)", (i,))
    transfer = response.transfer
    assert transfer is not None
    if not transfer.cut and transfer.seconds < MIN_THROTTLED_SECONDS:
        return Stage(StageOutcome.PASSED, Method.OK,
                     f"body of {transfer.size} bytes in {transfer.seconds:.3f} s", (i,))
    baseline = controls.throughput
    if baseline is None:
        return Stage(StageOutcome.PASSED, Method.OK,
                     f"body at {format_rate(rate)}; no control download to compare with", (i,))
    if rate * THROTTLE_FACTOR < baseline:
        return Stage(
            StageOutcome.FAILED,
            Method.THROTTLED,
            f"body at {format_rate(rate)}, {baseline / rate:.0f}× slower than the "
            f"controls' {format_rate(baseline)}",
            (i,),
        )
    return Stage(StageOutcome.PASSED, Method.OK,
                 f"body at {format_rate(rate)} (controls {format_rate(baseline)})", (i,))


def format_rate(rate: float) -> str:
    """``7.9 kB/s``, ``310 MB/s``: a reader compares magnitudes, not digits."""
    for unit, size in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if rate >= size:
            return f"{rate / size:.3g} {unit}"
    return f"{rate:.0f} B/s"
