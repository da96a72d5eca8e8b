from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import archive_samples as samples

from probe.diff import Change, ChangeKind, Scope, VerdictAndMethod, diff_reports
from probe.model import FeatureVerdict, TargetVerdict, Verdict
from probe.report import load_report, write_report_atomic


def copy(report: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(report))


def test_identical_reports_have_no_changes() -> None:
    report = samples.build()
    difference = diff_reports(report, copy(report))
    assert not difference.changed
    assert difference.changes == ()
    assert difference.to_dict() == {"changed": False, "changes": []}


def test_runs_at_other_times_with_other_timings_are_unchanged() -> None:
    later = copy(samples.build())
    later["started"] = "2026-11-24T10:15:00Z"
    later["targets"][0]["observations"][0]["t"] = 0.5
    later["targets"][0]["reason"] = "worded differently"
    assert not diff_reports(samples.build(), later).changed


def test_changed_verdicts_are_listed_per_feature_and_target() -> None:
    blocked_web = TargetVerdict(Verdict.BLOCKED, "dns-injection", "forged answer", (0,))
    results = tuple(
        samples.result(r.target, r.feature, blocked_web) if r.target.id == "https-web" else r
        for r in samples.RESULTS
    )
    features = samples.FEATURES | {"web": FeatureVerdict(Verdict.DEGRADED, "dns-injection", "one blocked", 1, 2)}
    before, after = samples.build(), samples.build(results=results, features=features)

    difference = diff_reports(before, after)
    assert difference.changed
    assert difference.changes == (
        Change(Scope.FEATURE, "web", None, ChangeKind.CHANGED, VerdictAndMethod("reachable", "ok"), VerdictAndMethod("degraded", "dns-injection")),
        Change(Scope.TARGET, "https-web", "web", ChangeKind.CHANGED, VerdictAndMethod("reachable", "ok"), VerdictAndMethod("blocked", "dns-injection")),
    )
    assert difference.to_dict()["changes"][1] == {
        "scope": "target",
        "id": "https-web",
        "feature": "web",
        "change": "changed",
        "before": {"verdict": "reachable", "method": "ok"},
        "after": {"verdict": "blocked", "method": "dns-injection"},
    }


def test_same_verdict_other_method_is_a_change() -> None:
    after = copy(samples.build())
    after["targets"][2]["method"] = "tcp-reset"
    (change,) = diff_reports(samples.build(), after).changes
    assert (change.id, change.before, change.after) == ("tcp-chat", VerdictAndMethod("blocked", "tcp-timeout"), VerdictAndMethod("blocked", "tcp-reset"))


def test_added_and_removed_targets_features_and_controls() -> None:
    before = copy(samples.build())
    after = copy(before)
    removed_target = after["targets"].pop(0)
    added_target = copy(removed_target) | {"id": "dns-web-v6"}
    after["targets"].append(added_target)
    after["features"].pop()  # messaging
    after["controls"]["targets"].pop()  # tls-control

    difference = diff_reports(before, after)
    summary = [(c.scope, c.id, c.change) for c in difference.changes]
    assert summary == [
        (Scope.FEATURE, "messaging", ChangeKind.REMOVED),
        (Scope.TARGET, "dns-web", ChangeKind.REMOVED),
        (Scope.TARGET, "dns-web-v6", ChangeKind.ADDED),
        (Scope.CONTROL, "tls-control", ChangeKind.REMOVED),
    ]
    assert difference.changes[2].before is None
    assert difference.changes[2].after == VerdictAndMethod("reachable", "ok")
    assert difference.to_dict()["changes"][0]["after"] is None


def test_targets_are_matched_by_feature_and_id() -> None:
    # The same target id under another feature is another target.
    after = copy(samples.build())
    after["targets"][0]["feature"] = "messaging"
    kinds = [(c.feature, c.id, c.change) for c in diff_reports(samples.build(), after).changes]
    assert kinds == [("web", "dns-web", ChangeKind.REMOVED), ("messaging", "dns-web", ChangeKind.ADDED)]


def test_diff_of_loaded_files(tmp_path: Path) -> None:
    path = write_report_atomic(samples.build(), tmp_path, "a")
    assert not diff_reports(load_report(path), samples.build()).changed
