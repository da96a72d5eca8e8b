"""A capture and a test list in, the same report a live run makes out.

The replayed observations go through the runner and the classifier that
live runs use (``probe.runner.run_testlist`` with a measurer that reads
flows instead of the network), then through ``probe.report.report_of_run``
with ``source: replay`` and the capture's sha256. Every time in the report
comes from the capture (started/finished are its first and last packets),
so the same capture, list and key give a byte-identical signed report.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from probe.capture import keylog_path
from probe.errors import InputError
from probe.lists import PrefixOverrides, apply_key_overrides, apply_prefix_overrides
from probe.model import TestList
from probe.plan import CheckSettings
from probe.replay.capfile import CaptureReader
from probe.replay.engine import CaptureSummary, ExtractOptions, Extractor
from probe.replay.errors import ReplayError
from probe.replay.match import FlowIndex, ReplayMeasurer
from probe.replay.records import DNSExchange, Record, TCPConnection, UDPFlow
from probe.replay.tlskeys import KeyLog
from probe.replay.trust import CertificateJudge
from probe.report import report_of_run
from probe.resolver import parse_resolver
from probe.runner import RunOptions, run_testlist

# Matching does not depend on the runner's order (ReplayMeasurer matches
# every target up front); a fixed seed keeps the rest of the run repeatable too.
_SEED = 0


@dataclass(frozen=True, slots=True)
class ReplayReport:
    report: dict[str, Any]  # unsigned; sign it with probe.sign.sign_report
    summary: CaptureSummary
    warnings: tuple[str, ...]
    started: datetime  # the capture's first packet, e.g. for probe.report.report_stem


def default_settings() -> CheckSettings:
    """The live defaults: a replay judges timeouts by what a live run waits."""
    return CheckSettings(resolver=parse_resolver("system"))


def read_keylog(pcap: Path, path: Path | str | None) -> KeyLog | None:
    """The key log for ``pcap``: ``path`` (``--keylog``) when given, else the
    ``FILE.keylog`` that ``probe.capture`` writes beside a ``.pcap`` capture,
    else None (a pcapng capture may carry its own keys). An unreadable
    ``path`` is a one-line ValueError."""
    if path is None:
        beside = keylog_path(pcap)
        if not beside.is_file():
            return None
        path = beside
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"--keylog {path}: {exc.strerror or exc}") from None
    return KeyLog.parse(data.splitlines())


def extract(
    pcap: Path, settings: CheckSettings, keys: KeyLog | None, needles: tuple[str, ...],
) -> tuple[list[Record], CaptureSummary]:
    """Every record of the capture."""
    records: list[Record] = []
    options = ExtractOptions(
        dns_timeout=settings.dns_timeout, body_cap=settings.body_cap, needles=needles, keys=keys
    )
    summary = Extractor(options, records.append).run(CaptureReader(pcap))
    return records, summary


def pcap_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def replay_report(
    pcap: Path,
    testlist: TestList,
    *,
    settings: CheckSettings | None = None,
    keylog: Path | str | None = None,
    probe_info: dict[str, Any] | None = None,
    overrides: PrefixOverrides | None = None,
    ca_bundle: Path | str | None = None,
    vpn_keys: Mapping[str, str] | None = None,
) -> ReplayReport:
    """Observations from ``pcap`` for every target of ``testlist``, classified.

    ``settings``, ``overrides``, ``ca_bundle`` and ``vpn_keys`` should be
    the live run's (its ``--resolver`` and timeouts, its
    ``--prefix-table``/``--default-prefixes``, its ``--ca-bundle``, default
    the system store; its ``--vpn-key`` values): they decide what a client
    saw, why it refused a certificate when it did not say
    (``probe.replay.trust``), which VPN replies it could read and whether a
    server could answer it, and what the classifier expects.

    Raises ``ReplayError`` (a capture it cannot read) and ``ValueError``
    (an unreadable key log or CA bundle, a VPN key that is not one); damage
    part-way through the capture becomes ``warnings`` (also recorded in the
    report's config).
    """
    settings = settings or default_settings()
    trust = CertificateJudge.from_bundle(ca_bundle) if ca_bundle else CertificateJudge()
    overrides = overrides or PrefixOverrides()
    vpn_keys = vpn_keys or {}
    testlist = apply_key_overrides(apply_prefix_overrides(testlist, overrides), vpn_keys)
    keys = read_keylog(pcap, keylog)
    targets = [*testlist.controls, *(t for f in testlist.features for t in f.targets)]
    needles = tuple(dict.fromkeys(
        t.expect.body_contains for t in targets if t.expect.body_contains
    ))
    records, summary = extract(pcap, settings, keys, needles)
    index = FlowIndex(
        [r for r in records if isinstance(r, DNSExchange)],
        [r for r in records if isinstance(r, TCPConnection)],
        settings,
        summary.duration,
        lambda chain, name, t: trust.failure(chain, name, _moment(pcap, summary.first_ns, t)),
        [r for r in records if isinstance(r, UDPFlow)],
    )
    result = asyncio.run(run_testlist(
        testlist, ReplayMeasurer(index, targets, dict(testlist.keys)),
        RunOptions(parallel=1, endpoint_spacing=0.0, max_time=1e9, seed=_SEED),
    ))
    started = _moment(pcap, summary.first_ns, 0.0)
    report = report_of_run(
        testlist,
        result,
        started=started,
        finished=_moment(pcap, summary.first_ns, summary.duration),
        source={"kind": "replay", "pcap_sha256": pcap_sha256(pcap)},
        probe_info=probe_info or {},
        config=_config(settings, summary, keys is not None, overrides, tuple(sorted(vpn_keys))),
    )
    return ReplayReport(report, summary, summary.warnings, started)


def _moment(pcap: Path, first_ns: int | None, offset: float) -> datetime:
    try:
        base = datetime.fromtimestamp((first_ns or 0) // 1_000_000_000, UTC)
        return base + timedelta(seconds=round(offset))
    except (ValueError, OverflowError, OSError):
        raise ReplayError(
            f"{pcap}: packet times out of any calendar's range (first packet at "
            f"{(first_ns or 0) // 1_000_000_000} s since 1970)"
        ) from None


def _config(
    settings: CheckSettings, summary: CaptureSummary, keylog: bool, overrides: PrefixOverrides,
    vpn_keys: tuple[str, ...],
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "replay": {
            "format": summary.format,
            "packets": summary.packets,
            "keylog": keylog,
            "warnings": list(summary.warnings),
        },
        "timeouts": settings.timeouts(),
    }
    if overrides:
        # As a live run records them: the analyst must see what was swapped.
        config["prefix_overrides"] = overrides.describe()
    if vpn_keys:
        config["vpn_keys_given"] = list(vpn_keys)  # names only, as a live run's
    return config


def verdicts_of(report: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """[verdict, method] of every control, target and feature of a report:
    what a replay must agree with the live run on."""
    return {
        "controls": {t["id"]: [t["verdict"], t["method"]] for t in report["controls"]["targets"]},
        "targets": {t["id"]: [t["verdict"], t["method"]] for t in report["targets"]},
        "features": {f["id"]: [f["verdict"], f["method"]] for f in report["features"]},
    }
