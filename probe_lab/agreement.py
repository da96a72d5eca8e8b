"""A lab run against the replay of its own capture: the same verdicts, or why not.

A run captured by :meth:`probe_lab.runner.Lab.probe` (tcpdump on the
client's interface, the probe's TLS key log beside the file) is replayed
through ``probe.replay`` with what shaped the live run and could shape a
verdict: the same list, the lab's prefix overrides (``lab_overrides``),
the lab's resolver with the live timeouts, the CA the probe trusted
(copied beside the capture, ``ca_bundle_path``) and the VPN keys it was
given (kept beside it, ``vpn_keys_path``: what ``probe replay --vpn-keys``
reads). Whatever then differs,
control, target or feature, is a :class:`Disagreement`. See docs/replay.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.lists import load_testlist
from probe.plan import CheckSettings
from probe.replay.report import ReplayReport, replay_report, verdicts_of
from probe.replay.vpnkeys import read_vpn_keys
from probe.resolver import parse_resolver
from probe_lab.capture import ca_bundle_path, vpn_keys_path
from probe_lab.runner import RESOLVER, ListRun, lab_overrides

__all__ = ["Agreement", "Disagreement", "agreement", "replay_capture", "replay_run"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    scope: str  # "controls", "targets" or "features"
    id: str
    live: tuple[str, str] | None  # (verdict, method); None: not in that report
    replay: tuple[str, str] | None

    def __str__(self) -> str:
        def text(pair: tuple[str, str] | None) -> str:
            return "/".join(pair) if pair else "absent"

        return f"{self.scope[:-1]} {self.id}: live {text(self.live)}, replay {text(self.replay)}"


@dataclass(frozen=True, slots=True)
class Agreement:
    run: ListRun
    replay: Mapping[str, Any]  # the replayed report (unsigned)
    disagreements: tuple[Disagreement, ...]  # controls, then targets, then features

    def scope(self, scope: str) -> tuple[Disagreement, ...]:
        return tuple(d for d in self.disagreements if d.scope == scope)


def replay_run(run: ListRun) -> ReplayReport:
    """Replay ``run``'s capture with the live run's list and options."""
    if run.capture is None:
        raise ValueError(f"{run.scenario} x {run.testlist}: the run was not captured")
    if load_testlist(run.path).sha256 != run.report["testlist"]["sha256"]:
        raise ValueError(f"{run.path} changed since the run it is to replay")
    return replay_capture(run.capture, run.path)


def replay_capture(capture: Path, testlist: Path) -> ReplayReport:
    """Replay a lab capture (its key log, CA and VPN keys beside it) of
    ``testlist`` with the options the lab runs the probe with."""
    return replay_report(
        capture,
        load_testlist(testlist),
        settings=CheckSettings(resolver=parse_resolver(RESOLVER)),
        overrides=lab_overrides([testlist]),
        ca_bundle=ca_bundle_path(capture),
        vpn_keys=_vpn_keys(capture),
    )


def _vpn_keys(capture: Path) -> dict[str, str]:
    """The keys the lab kept beside ``capture``; none for a capture made
    before the lab kept them (a stored fixture of a list without VPN keys)."""
    path = vpn_keys_path(capture)
    return read_vpn_keys(path) if path.exists() else {}


def agreement(run: ListRun) -> Agreement:
    """``run``'s verdicts and methods against those of its replay."""
    replayed = replay_run(run).report
    live, again = verdicts_of(run.report), verdicts_of(replayed)
    found = []
    for scope, verdicts in live.items():
        other = again[scope]
        for key in dict.fromkeys([*verdicts, *other]):
            a, b = verdicts.get(key), other.get(key)
            if a != b:
                found.append(Disagreement(scope, key, _pair(a), _pair(b)))
    return Agreement(run, replayed, tuple(found))


def _pair(verdict: list[str] | None) -> tuple[str, str] | None:
    return (verdict[0], verdict[1]) if verdict else None
