"""Golden files: a capture, its test list, and what replay makes of them.

``tests/fixtures/pcaps/`` holds the loopback and packet-built captures;
``tests/fixtures/pcaps/lab/`` holds lab captures (``SCENARIO-LIST.pcap``
with the probe's key log and CA beside it, the lists as they were, the
live run's verdicts), replayed with the lab's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe.model import TestList
from probe.replay.report import replay_report, verdicts_of
from probe_lab.agreement import replay_capture

__all__ = ["FIXTURES", "LAB_FIXTURES", "golden_files", "lab_captures", "lab_golden_files",
           "lab_list", "verdicts_of"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"
LAB_FIXTURES = FIXTURES / "lab"

Golden = tuple[dict[str, Any], dict[str, Any]]


def golden_files(pcap: Path, testlist: TestList) -> Golden:
    """(observations per target, verdicts) of replaying ``pcap`` with ``testlist``."""
    return _golden(replay_report(pcap, testlist).report)


def lab_golden_files(pcap: Path) -> Golden:
    """The same for a stored lab capture, replayed as the lab's run was made."""
    return _golden(replay_capture(pcap, lab_list(pcap)).report)


def lab_captures() -> list[Path]:
    return sorted(LAB_FIXTURES.glob("*.pcap"))


def lab_list(pcap: Path) -> Path:
    """``SCENARIO-LIST.pcap`` was a run of ``LIST.yaml``, stored beside it
    (names on both sides may hold dashes: the longest list name that fits)."""
    lists = [p for p in pcap.parent.glob("*.yaml") if pcap.stem.endswith(f"-{p.stem}")]
    return max(lists, key=lambda p: len(p.stem))


def _golden(report: dict[str, Any]) -> Golden:
    observations = {
        t["id"]: t["observations"] for t in report["controls"]["targets"] + report["targets"]
    }
    return observations, verdicts_of(report)
