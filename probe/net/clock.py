"""The run's clock: seconds since the run's zero time."""

from __future__ import annotations

import time


class Clock:
    """Monotonic seconds since this clock was made (the run's zero time).

    Monotonic, so a wall-clock jump mid-run cannot reorder observations;
    rounded to microseconds, so the JSON of a report does not carry
    meaningless float noise.
    """

    __slots__ = ("_zero",)

    def __init__(self) -> None:
        self._zero = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self._zero, 6)
