"""Compare two reports: which features and targets changed, and how.

Pure data in, pure data out: the inputs are report dicts as returned by
``probe.report.load_report`` (structurally checked), the output is a
``ReportDiff`` the UI renders or ``--json`` prints. Features are matched by
id, targets by (feature, id), control targets by id; a change is a
different verdict or method, or an entry present on one side only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class Scope(enum.StrEnum):
    FEATURE = "feature"
    TARGET = "target"
    CONTROL = "control"


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class VerdictAndMethod:
    """What a report says of one feature or target."""

    verdict: str
    method: str


@dataclass(frozen=True, slots=True)
class Change:
    scope: Scope
    id: str
    feature: str | None  # the target's feature; None for features
    change: ChangeKind
    before: VerdictAndMethod | None  # None when added
    after: VerdictAndMethod | None  # None when removed

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope.value,
            "id": self.id,
            "feature": self.feature,
            "change": self.change.value,
            "before": _verdict_and_method_dict(self.before),
            "after": _verdict_and_method_dict(self.after),
        }


@dataclass(frozen=True, slots=True)
class ReportDiff:
    changes: tuple[Change, ...]  # features first, then targets, then controls

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "changes": [c.to_dict() for c in self.changes]}


def diff_reports(a: Mapping[str, Any], b: Mapping[str, Any]) -> ReportDiff:
    """What changed from report ``a`` (before) to report ``b`` (after)."""
    return ReportDiff(
        (
            *_compare(Scope.FEATURE, _features(a), _features(b)),
            *_compare(Scope.TARGET, _entries(a["targets"]), _entries(b["targets"])),
            *_compare(
                Scope.CONTROL, _entries(a["controls"]["targets"]), _entries(b["controls"]["targets"])
            ),
        )
    )


_Key = tuple[str | None, str]  # (feature or None, id)


def _features(report: Mapping[str, Any]) -> dict[_Key, VerdictAndMethod]:
    return {(None, f["id"]): _verdict_and_method(f) for f in report["features"]}


def _entries(entries: Iterable[Mapping[str, Any]]) -> dict[_Key, VerdictAndMethod]:
    return {(t["feature"], t["id"]): _verdict_and_method(t) for t in entries}


def _verdict_and_method(entry: Mapping[str, Any]) -> VerdictAndMethod:
    return VerdictAndMethod(entry["verdict"], entry["method"])


def _compare(
    scope: Scope, before: Mapping[_Key, VerdictAndMethod], after: Mapping[_Key, VerdictAndMethod]
) -> list[Change]:
    # Before's order, then what only after has in after's order: stable
    # output for stable inputs.
    keys = [*before, *(k for k in after if k not in before)]
    changes = []
    for key in keys:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        kind = ChangeKind.ADDED if old is None else ChangeKind.REMOVED if new is None else ChangeKind.CHANGED
        feature = None if scope is Scope.FEATURE else key[0]
        changes.append(Change(scope, key[1], feature, kind, old, new))
    return changes


def _verdict_and_method_dict(outcome: VerdictAndMethod | None) -> dict[str, str] | None:
    return None if outcome is None else {"verdict": outcome.verdict, "method": outcome.method}
