"""The report: build it from a run, write it, read it back.

A report is plain JSON data (dicts and lists), documented field by field in
``docs/report-format.md`` with a JSON Schema in ``probe/data/``. It is
versioned by ``format``: additive changes (new members) keep
``probe-report/1`` and readers ignore members they do not know; anything
else (renaming, removing, changing a meaning) bumps the number, and this
reader refuses numbers it does not know instead of misreading them.

The file form is one fixed serialization (``encode_report``): the signature
covers the RFC 8785 bytes of the parsed value (``probe.sign``), and
``verify_file`` additionally requires the file to be exactly this form, so
that not a single byte of a signed file can change unnoticed.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from probe import __version__
from probe.errors import InputError
from probe.files import write_private
from probe.model import ControlStatus, FeatureVerdict, TargetResult, TestList
from probe.serialize import (
    control_status_to_dict,
    feature_verdict_to_dict,
    target_result_to_dict,
)

if TYPE_CHECKING:
    from probe.runner import RunResult

FORMAT = "probe-report/1"
# The feature id the runner gives control results (see ``TargetResult``).
CONTROLS_FEATURE = "controls"
_FORMAT_NAME = "probe-report/"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_COUNTRY = re.compile(r"[A-Z]{2}")
MAX_ASN = 2**32 - 1  # RFC 6793: AS numbers are 32 bits
_STEM_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ReportError(InputError):
    """A report file that cannot be read; one line, file name first."""


# --------------------------------------------------------------------------
# Building


def report_of_run(
    testlist: TestList,
    run: RunResult,
    *,
    started: datetime,
    finished: datetime,
    source: Mapping[str, Any],
    probe_info: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """:func:`build_report` for what the runner returns (live or replayed)."""
    return build_report(
        testlist=testlist,
        results=run.targets,
        controls=run.controls,
        control_status=run.control_status,
        features=run.features,
        started=started,
        finished=finished,
        source=source,
        probe_info=probe_info,
        config=config,
    )


def build_report(
    testlist: TestList,
    results: Sequence[TargetResult],
    controls: Sequence[TargetResult],
    control_status: ControlStatus,
    features: Mapping[str, FeatureVerdict],
    started: datetime,
    finished: datetime,
    source: Mapping[str, Any],
    probe_info: Mapping[str, Any],
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The unsigned report of one run.

    Targets and features come out in test-list order whatever order they
    were measured in (the runner randomises it), so two runs of the same
    list line up and diff cleanly. Raises ``ValueError`` for inputs that
    do not belong to ``testlist`` or that could leak more than we promise
    (the probe section only ever holds an ASN and a country code).
    """
    feature_order = {f.id: i for i, f in enumerate(testlist.features)}
    unknown = sorted(set(features) - set(feature_order))
    if unknown:
        raise ValueError(f"features not in test list {testlist.name!r}: {', '.join(unknown)}")
    targets = _in_list_order(
        results, [(f.id, t.id) for f in testlist.features for t in f.targets], "target"
    )
    return {
        "format": FORMAT,
        "software": {"name": "probe", "version": __version__},
        "probe": _probe_section(probe_info),
        "testlist": {
            "name": testlist.name,
            "version": testlist.version,
            "updated": testlist.updated,
            # The base name only: the directory could name the user.
            "file": os.path.basename(testlist.path),
            "sha256": testlist.sha256,
        },
        "started": _rfc3339(started, "started"),
        "finished": _rfc3339(finished, "finished"),
        "source": _source_section(source),
        "config": _json_data(config, "config"),
        "controls": {
            "status": control_status_to_dict(control_status),
            "targets": [
                target_result_to_dict(r)
                for r in _in_list_order(
                    controls, [(CONTROLS_FEATURE, t.id) for t in testlist.controls], "control"
                )
            ],
        },
        "features": [
            {
                "id": feature.id,
                "name": feature.name,
                **feature_verdict_to_dict(features[feature.id]),
                "targets": [r.target.id for r in targets if r.feature == feature.id],
            }
            for feature in testlist.features
            if feature.id in features
        ],
        "targets": [target_result_to_dict(r) for r in targets],
    }


def _in_list_order(
    results: Sequence[TargetResult], order: list[tuple[str, str]], what: str
) -> list[TargetResult]:
    position = {key: i for i, key in enumerate(order)}
    seen: dict[tuple[str, str], TargetResult] = {}
    for result in results:
        key = (result.feature, result.target.id)
        if key not in position:
            raise ValueError(f"{what} {key[1]!r} of feature {key[0]!r} is not in the test list")
        if key in seen:
            raise ValueError(f"{what} {key[1]!r} of feature {key[0]!r} appears twice")
        seen[key] = result
    return sorted(seen.values(), key=lambda r: position[(r.feature, r.target.id)])


def _probe_section(info: Mapping[str, Any]) -> dict[str, Any]:
    # Only these two members are copied, whatever else the caller passes:
    # the report must never carry the volunteer's address.
    asn, cc = info.get("asn"), info.get("cc")
    if asn is not None and not (
        isinstance(asn, int) and not isinstance(asn, bool) and 0 < asn <= MAX_ASN
    ):
        raise ValueError(f"probe ASN must be a number from 1 to {MAX_ASN}, got {asn!r}")
    if cc is not None and not (isinstance(cc, str) and _COUNTRY.fullmatch(cc)):
        raise ValueError(f"probe country code must be two capital letters, got {cc!r}")
    return {"asn": asn, "cc": cc}


def _source_section(source: Mapping[str, Any]) -> dict[str, Any]:
    kind = source.get("kind")
    if kind == "live" and set(source) == {"kind"}:
        return {"kind": "live"}
    sha = source.get("pcap_sha256")
    if kind == "replay" and set(source) == {"kind", "pcap_sha256"} and isinstance(sha, str):
        if _HEX64.fullmatch(sha):
            return {"kind": "replay", "pcap_sha256": sha}
    raise ValueError(
        'source must be {"kind": "live"} or {"kind": "replay", "pcap_sha256": <64 lowercase hex>}'
    )


def _rfc3339(moment: datetime, name: str) -> str:
    # RFC 3339 section 5.6 with the "Z" offset; whole seconds are enough for
    # a run and do not pretend to a precision the clock does not have.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_data(value: Any, path: str) -> Any:
    """A deep copy of ``value`` as JSON data, or ValueError naming the path."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be strings, got {key!r}")
            out[key] = _json_data(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_json_data(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: {value!r} is not a JSON number")
    if value is None or isinstance(value, str | int | float):
        return value
    raise ValueError(f"{path}: {type(value).__name__} is not JSON data")


def report_stem(started: datetime, testlist_name: str) -> str:
    """``20261123T101500Z-<list name>``: sorts by time, says what was run."""
    if started.tzinfo is None or started.utcoffset() is None:
        raise ValueError("started must be a timezone-aware datetime")
    stamp = started.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = _STEM_UNSAFE.sub("-", testlist_name).strip("-.") or "report"
    return f"{stamp}-{name}"


def free_stem(directory: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3`` ...: never an existing report or journal.

    Two runs of one list within a second would otherwise share a name, and
    the second report would replace the first.
    """
    candidate, n = stem, 1
    while (directory / f"{candidate}.json").exists() or (
        directory / f"{candidate}.journal.jsonl"
    ).exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


# --------------------------------------------------------------------------
# The file form


def encode_report(report: Mapping[str, Any]) -> bytes:
    """The one serialization a report file may have.

    Key order is kept as built (readable: ``format`` first), indentation is
    two spaces, non-ASCII stays UTF-8, and the file ends with a newline.
    ``probe.sign.verify_file`` re-encodes the parsed file with this function
    and requires identical bytes.
    """
    return (json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def write_report_atomic(report: Mapping[str, Any], directory: Path, stem: str) -> Path:
    """Write ``<directory>/<stem>.json`` so that it is either whole or absent
    (``probe.files.write_private``). It is 0600: the volunteer decides whom
    to share it with."""
    data = encode_report(report)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{stem}.json"
    write_private(target, data)
    return target


# --------------------------------------------------------------------------
# Reading


def parse_report_bytes(data: bytes, name: str) -> dict[str, Any]:
    """Strict JSON (RFC 8259 / I-JSON, RFC 7493) to a dict, or ReportError.

    Stricter than ``json.loads``: no NaN/Infinity, no duplicate member
    names (RFC 7493 section 2.3), UTF-8 only.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{name}: not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except json.JSONDecodeError as exc:
        raise ReportError(f"{name}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
    except _StrictJSONError as exc:
        raise ReportError(f"{name}: {exc}") from None
    except RecursionError:
        raise ReportError(f"{name}: nested too deeply") from None
    if not isinstance(value, dict):
        raise ReportError(f"{name}: a report is a JSON object, not {type(value).__name__}")
    return value


class _StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _StrictJSONError(f"duplicate member {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    raise _StrictJSONError(f"{name} is not a JSON number")


def load_report(path: Path | str) -> dict[str, Any]:
    """Read and structurally check a report file; ReportError on any problem.

    The check covers what ``verify`` and ``diff`` rely on; the JSON Schema
    (``load_schema``) describes the whole format.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"{path}: {exc.strerror or exc}") from None
    report = parse_report_bytes(data, str(path))
    check_report(report, str(path))
    return report


def check_report(report: Mapping[str, Any], name: str) -> None:
    fmt = report.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(_FORMAT_NAME):
        _fail(name, "$.format", f"not a probe report (format {fmt!r})")
    if fmt != FORMAT:
        _fail(name, "$.format", f"unsupported version {fmt!r}; this probe reads {FORMAT!r}")
    for member, kind in (("testlist", dict), ("controls", dict), ("features", list), ("targets", list)):
        _require(report, member, kind, name, "$")
    _require(report["testlist"], "name", str, name, "$.testlist")
    status = _require(report["controls"], "status", dict, name, "$.controls")
    for member in ("dns_ok", "connect_ok"):
        _require(status, member, bool, name, "$.controls.status")
    controls = _require(report["controls"], "targets", list, name, "$.controls")
    for section, entries, members in (
        ("$.features", report["features"], ("id", "verdict", "method")),
        ("$.targets", report["targets"], ("id", "feature", "verdict", "method")),
        ("$.controls.targets", controls, ("id", "feature", "verdict", "method")),
    ):
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                _fail(name, f"{section}[{i}]", "expected an object")
            for member in members:
                _require(entry, member, str, name, f"{section}[{i}]")


_JSON_KIND = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}


def _require(obj: Mapping[str, Any], member: str, kind: type, name: str, path: str) -> Any:
    value = obj.get(member)
    if not isinstance(value, kind):
        _fail(name, f"{path}.{member}", f"expected {_JSON_KIND[kind]}")
    return value


def _fail(name: str, path: str, message: str) -> NoReturn:
    raise ReportError(f"{name}: {path}: {message}")


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of this format, from the package data."""
    text = resources.files("probe").joinpath("data/report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
