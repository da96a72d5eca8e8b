from __future__ import annotations

import json
import os
import random
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import archive_samples as samples
import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from probe import __version__
from probe.model import Failure
from probe.report import (
    FORMAT,
    ReportError,
    encode_report,
    free_stem,
    load_report,
    load_schema,
    report_stem,
    write_report_atomic,
)
from probe.serialize import target_result_from_dict
from probe.sign import sign_report


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# --------------------------------------------------------------------------
# build_report


def test_top_level_sections() -> None:
    report = samples.build()
    assert report["format"] == FORMAT == "probe-report/1"
    assert report["software"] == {"name": "probe", "version": __version__}
    assert report["probe"] == {"asn": 64496, "cc": "CN"}
    assert report["testlist"] == {
        "name": "example service",
        "version": "1",
        "updated": "2026-11-01",
        "file": "example.yaml",
        "sha256": "0f" * 32,
    }
    assert report["started"] == "2026-11-23T10:15:00Z"
    assert report["finished"] == "2026-11-23T10:16:30Z"
    assert report["source"] == {"kind": "live"}
    assert report["config"]["timeouts"] == {"connect": 10.0}
    assert report["controls"]["status"] == {
        "dns_ok": True,
        "connect_ok": True,
        "reason": "controls resolve and connect",
        "throughput": None,
    }
    assert "signature" not in report


def test_no_user_path_anywhere() -> None:
    text = json.dumps(samples.build())
    assert "volunteer" not in text and "/home" not in text


def test_times_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    report = samples.build(started=datetime(2026, 11, 23, 12, 15, tzinfo=plus_two))
    assert report["started"] == "2026-11-23T10:15:00Z"


def test_targets_and_features_follow_the_test_list_order() -> None:
    report = samples.build()
    assert [t["id"] for t in report["targets"]] == ["dns-web", "https-web", "tcp-chat", "tls-media"]
    assert [t["id"] for t in report["controls"]["targets"]] == ["dns-control", "tls-control"]
    # The verdict mapping lists messaging first; the list says web first.
    assert [f["id"] for f in report["features"]] == ["web", "messaging"]
    assert report["features"][1] == {
        "id": "messaging",
        "name": "Messaging",
        "verdict": "blocked",
        "method": "tcp-timeout",
        "reason": "every endpoint blocked",
        "reachable": 0,
        "total": 2,
        "targets": ["tcp-chat", "tls-media"],
    }


def test_measurement_order_does_not_change_the_report() -> None:
    reference = encode_report(samples.build())
    shuffler = random.Random(7)
    for _ in range(10):
        results = list(samples.RESULTS)
        controls = list(samples.CONTROLS)
        shuffler.shuffle(results)
        shuffler.shuffle(controls)
        features = dict(reversed(list(samples.FEATURES.items())))
        assert encode_report(samples.build(results=results, controls=controls, features=features)) == reference


def test_target_entries_round_trip_to_results() -> None:
    report = samples.build()
    by_id = {r.target.id: r for r in samples.RESULTS}
    for i, entry in enumerate(report["targets"]):
        assert target_result_from_dict(entry, f"$.targets[{i}]") == by_id[entry["id"]]


def test_probe_section_never_copies_anything_but_asn_and_cc() -> None:
    report = samples.build(probe_info={"asn": None, "cc": None, "ip": "203.0.113.5"})
    assert report["probe"] == {"asn": None, "cc": None}
    assert "203.0.113.5" not in json.dumps(report)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"probe_info": {"asn": "AS64496"}}, "probe ASN"),
        ({"probe_info": {"asn": True}}, "probe ASN"),
        ({"probe_info": {"cc": "cn"}}, "country code"),
        ({"source": {"kind": "replay"}}, "source must be"),
        ({"source": {"kind": "replay", "pcap_sha256": "AB" * 32}}, "source must be"),
        ({"source": {"kind": "live", "path": "/home/x.pcap"}}, "source must be"),
        ({"started": datetime(2026, 1, 1)}, "started must be a timezone-aware"),
        ({"config": {"output": Path("/tmp")}}, r"config\.output: PosixPath is not JSON data"),
        ({"config": {"timeouts": [1.0, float("nan")]}}, r"config\.timeouts\[1\]: nan is not a JSON number"),
        ({"features": samples.FEATURES | {"calls": samples.FEATURES["web"]}}, "features not in test list"),
        ({"results": samples.RESULTS + samples.RESULTS[:1]}, "'tls-media' of feature 'messaging' appears twice"),
        ({"results": samples.CONTROLS}, "is not in the test list"),
        ({"controls": samples.RESULTS[:1]}, "control 'tls-media' of feature 'messaging' is not in the test list"),
    ],
)
def test_bad_inputs_raise_value_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        samples.build(**overrides)


def test_replay_source() -> None:
    report = samples.build(source={"kind": "replay", "pcap_sha256": "ab" * 32})
    assert report["source"] == {"kind": "replay", "pcap_sha256": "ab" * 32}
    validator().validate(report)


# --------------------------------------------------------------------------
# Schema


def test_schema_validates_built_and_signed_reports() -> None:
    check = validator()
    report = samples.build()
    check.validate(report)
    check.validate(sign_report(report, Ed25519PrivateKey.generate()))
    check.validate(samples.build_large(3, 2))


def test_schema_rejects_what_the_format_forbids() -> None:
    check = validator()
    report = samples.build()
    for path, value in [
        (("format",), "probe-report/2"),
        (("targets", 0, "verdict"), "maybe"),
        (("targets", 1, "observations", 2, "failure"), "timeout"),
        (("probe", "cc"), "China"),
        (("testlist", "file"), "/home/user/list.yaml"),
        (("started",), "2026-11-23 10:15:00"),
    ]:
        broken = json.loads(json.dumps(report))
        node = broken
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        assert not check.is_valid(broken), path


def test_schema_failure_vocabulary_matches_the_model() -> None:
    schema = load_schema()
    assert set(schema["$defs"]["failure"]["enum"]) == {None, *(f.value for f in Failure)}


# --------------------------------------------------------------------------
# Writing


def test_write_report_atomic(tmp_path: Path) -> None:
    report = samples.build()
    path = write_report_atomic(report, tmp_path / "out", "20261123T101500Z-example")
    assert path == tmp_path / "out" / "20261123T101500Z-example.json"
    assert path.read_bytes() == encode_report(report)
    assert path.read_bytes().endswith(b"}\n")
    assert "访问受限" in path.read_text("utf-8")  # UTF-8, not \u escapes
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_report(path) == report


def test_write_replaces_an_existing_file(tmp_path: Path) -> None:
    first = write_report_atomic({"format": "old"}, tmp_path, "r")
    second = write_report_atomic(samples.build(), tmp_path, "r")
    assert first == second and load_report(second)["format"] == FORMAT


def test_write_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_report_atomic({"bad": float("nan")}, tmp_path, "r")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("example service", "20261123T101500Z-example-service"),
        ("../../etc/passwd", "20261123T101500Z-etc-passwd"),
        ("..", "20261123T101500Z-report"),
        ("WhatsApp_2.0", "20261123T101500Z-WhatsApp_2.0"),
    ],
)
def test_report_stem(name: str, stem: str) -> None:
    assert report_stem(samples.STARTED, name) == stem


# --------------------------------------------------------------------------
# Reading


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "r.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def report_with(tmp_path: Path, change: Any) -> Path:
    report = json.loads(json.dumps(samples.build()))
    change(report)
    return write(tmp_path, json.dumps(report))


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"nope\.json: No such file or directory$"):
        load_report(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{\n  "format": "probe-report/1",\n  "x": [1, 2,]\n}', r"r\.json:3:14: Expecting value$"),
        ('{"a": 1, "a": 2}', r"r\.json: duplicate member 'a'$"),
        ('{"a": NaN}', r"r\.json: NaN is not a JSON number$"),
        ("[1, 2]", r"r\.json: a report is a JSON object, not list$"),
        (b'{"a": "\xff"}', r"r\.json: not UTF-8 \(byte 7\)$"),
        ("[" * 100000, r"r\.json: nested too deeply$|r\.json:1:\d+: "),
    ],
)
def test_load_bad_json(tmp_path: Path, content: str | bytes, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        load_report(write(tmp_path, content))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(format="probe-report/2"), r"\$\.format: unsupported version 'probe-report/2'; this probe reads 'probe-report/1'$"),
        (lambda r: r.update(format="ooni"), r"\$\.format: not a probe report \(format 'ooni'\)$"),
        (lambda r: r.pop("targets"), r"\$\.targets: expected a list$"),
        (lambda r: r["targets"][1].pop("verdict"), r"\$\.targets\[1\]\.verdict: expected a string$"),
        (lambda r: r["features"].__setitem__(0, "web"), r"\$\.features\[0\]: expected an object$"),
        (lambda r: r["controls"]["status"].update(dns_ok="yes"), r"\$\.controls\.status\.dns_ok: expected a boolean$"),
        (lambda r: r["controls"]["targets"][0].update(feature=None), r"\$\.controls\.targets\[0\]\.feature: expected a string$"),
    ],
)
def test_load_checks_structure(tmp_path: Path, change: Any, message: str) -> None:
    with pytest.raises(ReportError, match=r"^\S*r\.json: " + message) as caught:
        load_report(report_with(tmp_path, change))
    assert "\n" not in str(caught.value)


def test_load_accepts_unknown_members(tmp_path: Path) -> None:
    # Additive changes keep probe-report/1: a reader must not refuse them.
    path = report_with(tmp_path, lambda r: r.update(added_in_a_later_version={"x": 1}))
    assert load_report(path)["added_in_a_later_version"] == {"x": 1}


def test_free_stem_never_reuses_a_report_or_journal_name(tmp_path: Path) -> None:
    assert free_stem(tmp_path, "20261123T101500Z-x") == "20261123T101500Z-x"
    (tmp_path / "20261123T101500Z-x.json").write_text("{}")
    assert free_stem(tmp_path, "20261123T101500Z-x") == "20261123T101500Z-x-2"
    (tmp_path / "20261123T101500Z-x-2.journal.jsonl").write_text("")
    assert free_stem(tmp_path, "20261123T101500Z-x") == "20261123T101500Z-x-3"
