"""Golden files: a capture, its test list, and what replay makes of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe.model import TestList
from probe.replay.report import replay_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"


def verdicts_of(report: dict[str, Any]) -> dict[str, Any]:
    """Verdict and method per target and feature: what must agree with live."""
    return {
        "controls": {t["id"]: [t["verdict"], t["method"]] for t in report["controls"]["targets"]},
        "targets": {t["id"]: [t["verdict"], t["method"]] for t in report["targets"]},
        "features": {f["id"]: [f["verdict"], f["method"]] for f in report["features"]},
    }


def golden_files(pcap: Path, testlist: TestList) -> tuple[dict[str, Any], dict[str, Any]]:
    """(observations per target, verdicts) of replaying ``pcap`` with ``testlist``."""
    report = replay_report(pcap, testlist).report
    observations = {
        t["id"]: t["observations"] for t in report["controls"]["targets"] + report["targets"]
    }
    return observations, verdicts_of(report)
