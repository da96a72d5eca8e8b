"""The runner's scheduling: controls first, bounded concurrency, endpoint spacing, deadline.

The measurer here is a stand-in that records timing (the runner's logic is
what is under test; the real checks are tested in tests/net/).
"""

from __future__ import annotations

import asyncio
import time

from probe.model import (
    DNSAnswer,
    DNSObservation,
    DNSResponse,
    Expectations,
    Feature,
    Observation,
    Target,
    TargetKind,
    TCPObservation,
    TestList,
    Verdict,
)
from probe.runner import RunOptions, endpoint_key, run_testlist

LAB = Expectations(prefixes=("203.0.113.0/24",))


def tcp_target(host: str, port: int) -> Target:
    return Target(f"tcp://{host}:{port}", TargetKind.TCP, host, port, expect=LAB)


def make_list(targets: list[Target], controls: list[Target]) -> TestList:
    return TestList(
        name="t",
        version="1",
        description="",
        updated="2026-11-23",
        features=(Feature("f", "F", "", tuple(targets)),),
        controls=tuple(controls),
        sha256="0" * 64,
        path="t.yaml",
    )


class RecordingMeasurer:
    """Answers every target as reachable after ``delay``; logs what overlapped."""

    def __init__(self, delay: float = 0.02, hang: set[str] | None = None) -> None:
        self.delay = delay
        self.hang = hang or set()
        self.in_flight: set[str] = set()
        self.max_in_flight = 0
        self.started: list[tuple[str, float]] = []
        self.finished: dict[str, float] = {}
        self.overlaps: list[tuple[str, str]] = []

    async def measure(self, target: Target) -> tuple[Observation, ...]:
        key = "|".join(endpoint_key(target))
        for other in self.in_flight:
            if other.split("#")[0] == key:
                self.overlaps.append((other, key))
        token = f"{key}#{target.id}"
        self.in_flight.add(token)
        self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        self.started.append((target.id, time.monotonic()))
        try:
            await asyncio.sleep(3600 if target.id in self.hang else self.delay)
        finally:
            self.in_flight.discard(token)
        self.finished[target.id] = time.monotonic()
        answer = DNSResponse(0.0, "NOERROR", (DNSAnswer("A", "203.0.113.7", 60),))
        return (
            DNSObservation(target.host, "A", "system", 0.0, 0.01, None, (answer,)),
            TCPObservation("203.0.113.7", target.port or 0, 0.01, 0.02, None),
        )


def test_controls_are_measured_before_targets_and_everything_is_classified() -> None:
    targets = [tcp_target(f"h{i}.example", 443) for i in range(6)]
    controls = [tcp_target("control.example", 443)]
    measurer = RecordingMeasurer()
    seen: list[str] = []
    result = asyncio.run(
        run_testlist(make_list(targets, controls), measurer, RunOptions(parallel=3, seed=1),
                     on_result=lambda r: seen.append(r.target.id))
    )
    assert seen[0] == "tcp://control.example:443"
    assert sorted(seen[1:]) == sorted(t.id for t in targets)
    assert result.control_status.connect_ok
    assert [r.target.id for r in result.targets] == [t.id for t in targets]  # list order
    assert {r.verdict.verdict for r in result.targets} == {Verdict.REACHABLE}
    assert result.features["f"].verdict is Verdict.REACHABLE
    assert (result.features["f"].reachable, result.features["f"].total) == (6, 6)


def test_concurrency_is_bounded() -> None:
    targets = [tcp_target(f"h{i}.example", 443) for i in range(12)]
    measurer = RecordingMeasurer(delay=0.05)
    asyncio.run(run_testlist(make_list(targets, []), measurer, RunOptions(parallel=4)))
    assert measurer.max_in_flight == 4


def test_one_endpoint_is_never_tested_twice_at_once_and_is_spaced() -> None:
    # Three checks of the same host and port (e.g. tls and https on :443).
    same = [
        Target("a", TargetKind.TCP, "e1.example", 443, expect=LAB),
        Target("b", TargetKind.TLS, "e1.example", 443, expect=LAB),
        Target("c", TargetKind.HTTPS, "e1.example", 443, url="https://e1.example/", expect=LAB),
    ]
    measurer = RecordingMeasurer(delay=0.02)
    spacing = 0.15
    asyncio.run(run_testlist(make_list(same, []), measurer,
                             RunOptions(parallel=3, endpoint_spacing=spacing, seed=7)))
    assert measurer.overlaps == []
    starts = sorted(t for _, t in measurer.started)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # Each start waits for the previous check (0.02 s) plus the spacing.
    assert min(gaps) >= spacing


def test_order_is_random_but_reproducible_with_a_seed() -> None:
    targets = [tcp_target(f"h{i}.example", 443) for i in range(20)]

    def order(seed: int) -> list[str]:
        measurer = RecordingMeasurer(delay=0.0)
        asyncio.run(run_testlist(make_list(targets, []), measurer,
                                 RunOptions(parallel=1, seed=seed)))
        return [target_id for target_id, _ in measurer.started]

    assert order(3) == order(3)
    assert order(3) != order(4)
    assert order(3) != [t.id for t in targets]


def test_deadline_leaves_unfinished_targets_inconclusive() -> None:
    targets = [tcp_target("fast.example", 443), tcp_target("stuck.example", 443)]
    measurer = RecordingMeasurer(delay=0.01, hang={"tcp://stuck.example:443"})
    begin = time.monotonic()
    result = asyncio.run(run_testlist(make_list(targets, []), measurer,
                                      RunOptions(parallel=2, max_time=0.5)))
    assert time.monotonic() - begin < 3
    verdicts = {r.target.id: r.verdict for r in result.targets}
    assert verdicts["tcp://fast.example:443"].verdict is Verdict.REACHABLE
    stuck = verdicts["tcp://stuck.example:443"]
    assert (stuck.verdict, stuck.method) == (Verdict.INCONCLUSIVE, "not-measured")
