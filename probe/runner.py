"""Run a test list: schedule the measurements, then classify them.

The runner owns *when* things are measured, never *how* (that is
``probe.net``) nor *what it means* (that is ``probe.classify``):

- Controls are measured first, so that every target can be classified
  the moment it finishes (and progress can show verdicts as they come).
- Targets run in a random order with bounded concurrency. Two checks of
  the same endpoint (host and port) are never in flight together and are
  spaced apart: after a trigger, censors such as the GFW penalise the
  client/server/port tuple for 90-180 s, and an immediate re-test would
  read that penalty as a new block.
- Every finished target is handed to ``on_result`` (the journal) before
  anything else happens, so a killed run keeps what it measured.
- The whole run has a wall-time budget; targets not measured by then
  have no observations and are classified ``inconclusive``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from probe.classify import (
    classify_controls,
    classify_feature,
    classify_target,
    deciding_verdicts,
)
from probe.model import (
    ControlStatus,
    FeatureVerdict,
    Observation,
    Target,
    TargetKind,
    TargetResult,
    TestList,
)


class Measurer(Protocol):
    async def measure(self, target: Target) -> tuple[Observation, ...]: ...


@dataclass(frozen=True, slots=True)
class RunOptions:
    parallel: int = 8
    # Seconds between two checks of the same endpoint (see module doc).
    endpoint_spacing: float = 1.0
    # Wall-time budget for the whole run, controls included.
    max_time: float = 600.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    controls: tuple[TargetResult, ...]
    control_status: ControlStatus
    targets: tuple[TargetResult, ...]  # in test-list order
    features: dict[str, FeatureVerdict]


ResultSink = Callable[[TargetResult], None]

CONTROLS_FEATURE = "controls"


def endpoint_key(target: Target) -> tuple[str, str]:
    """The (host, port) a target touches; DNS-only targets touch the resolver."""
    if target.kind is TargetKind.DNS:
        return (target.host, "dns")
    return (target.host, str(target.port))


async def run_testlist(
    testlist: TestList,
    measurer: Measurer,
    options: RunOptions,
    on_result: ResultSink | None = None,
    on_controls: Callable[[ControlStatus], None] | None = None,
) -> RunResult:
    deadline = time.monotonic() + options.max_time
    rng = random.Random(options.seed)
    sink = on_result or (lambda _result: None)

    control_obs = await _measure_all(
        list(testlist.controls), measurer, options, rng, deadline
    )
    status = classify_controls(
        [(t, control_obs.get(t.id, ())) for t in testlist.controls]
    )
    if on_controls is not None:
        on_controls(status)
    controls = tuple(
        _result(t, CONTROLS_FEATURE, control_obs.get(t.id, ()), status)
        for t in testlist.controls
    )
    for result in controls:
        sink(result)

    feature_of = {t.id: f.id for f in testlist.features for t in f.targets}
    all_targets = [t for f in testlist.features for t in f.targets]

    def finished(target: Target, observations: tuple[Observation, ...]) -> None:
        sink(_result(target, feature_of[target.id], observations, status))

    observed = await _measure_all(
        all_targets, measurer, options, rng, deadline, finished
    )
    results = tuple(
        _result(t, feature_of[t.id], observed.get(t.id, ()), status)
        for t in all_targets
    )
    by_feature = {
        f.id: classify_feature(
            deciding_verdicts([(r.target, r.verdict) for r in results if r.feature == f.id])
        )
        for f in testlist.features
    }
    return RunResult(controls, status, results, by_feature)


def _result(
    target: Target,
    feature: str,
    observations: tuple[Observation, ...],
    status: ControlStatus,
) -> TargetResult:
    verdict = classify_target(target, observations, status)
    return TargetResult(target, feature, observations, verdict)


async def _measure_all(
    targets: Sequence[Target],
    measurer: Measurer,
    options: RunOptions,
    rng: random.Random,
    deadline: float,
    on_done: Callable[[Target, tuple[Observation, ...]], None] | None = None,
) -> dict[str, tuple[Observation, ...]]:
    """Measure targets concurrently, one check per endpoint at a time."""
    pending = list(targets)
    rng.shuffle(pending)
    busy: set[tuple[str, str]] = set()
    free_at: dict[tuple[str, str], float] = {}
    observed: dict[str, tuple[Observation, ...]] = {}
    wake = asyncio.Event()

    def next_ready() -> Target | None:
        now = time.monotonic()
        for index, target in enumerate(pending):
            key = endpoint_key(target)
            if key not in busy and free_at.get(key, 0.0) <= now:
                return pending.pop(index)
        return None

    async def worker() -> None:
        while pending:
            target = next_ready()
            if target is None:
                # Everything left waits on a busy or cooling endpoint.
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), options.endpoint_spacing)
                except TimeoutError:
                    pass
                continue
            key = endpoint_key(target)
            busy.add(key)
            try:
                observations = await measurer.measure(target)
            finally:
                busy.discard(key)
                free_at[key] = time.monotonic() + options.endpoint_spacing
                wake.set()
            observed[target.id] = observations
            if on_done is not None:
                on_done(target, observations)

    workers = [
        asyncio.create_task(worker()) for _ in range(max(1, options.parallel))
    ]
    remaining = deadline - time.monotonic()
    _done, still_running = await asyncio.wait(workers, timeout=max(0.0, remaining))
    for task in still_running:
        task.cancel()
    await asyncio.gather(*still_running, return_exceptions=True)
    # Surface a bug in a check instead of hiding it as "not measured".
    for task in workers:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return observed
