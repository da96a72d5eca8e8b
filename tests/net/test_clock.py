"""The run's clock."""

from __future__ import annotations

import time

from probe.net.clock import Clock


def test_the_clock_starts_at_zero_and_counts_seconds() -> None:
    clock = Clock()
    first = clock.now()
    time.sleep(0.05)
    second = clock.now()
    assert 0 <= first < 0.05
    assert 0.05 <= second - first < 1.0


def test_readings_are_rounded_to_microseconds() -> None:
    reading = Clock().now()
    assert reading == round(reading, 6)
