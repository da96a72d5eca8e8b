"""The verdict matrix: every shipped scenario x every shipped test list, feature by feature.

One lab per scenario serves the three lists (the ``matrix`` fixture of
conftest.py, shared with test_lab_agreement.py), each run captured with
tcpdump. Every feature's verdict and method must be what the scenario
file says; a few scenarios also pin the target-level evidence that makes
them what they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from scapy.all import DNS, IP, IPv6, PcapReader  # type: ignore[attr-defined]

from probe.capture import keylog_path
from probe.replay.tlskeys import KeyLog
from probe_lab import addressing
from probe_lab.capture import ca_bundle_path
from probe_lab.runner import ListRun
from probe_lab.scenario import Scenario, load_scenario, shipped_scenarios

SCENARIOS = {path.stem: path for path in shipped_scenarios()}
# Generous for a slow CI machine: blackhole, the slowest, takes about a minute here.
SCENARIO_TIMEOUT = 400


def mismatches(runs: tuple[ListRun, ...]) -> list[str]:
    found = []
    for run in runs:
        for check in run.checks:
            if not check.ok:
                reason = next(f["reason"] for f in run.report["features"] if f["id"] == check.feature)
                found.append(f"{run.testlist}/{check.feature}: got {check.verdict}/{check.method}, "
                             f"expected {check.expected}: {reason}")
        found += [f"{run.testlist}/{feature}: not in the report" for feature in run.missing]
    return found


@pytest.mark.timeout(SCENARIO_TIMEOUT)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_feature_is_as_the_scenario_expects(
    name: str, matrix: Mapping[str, tuple[ListRun, ...]]
) -> None:
    runs = matrix[name]
    assert sorted(run.testlist for run in runs) == ["facebook", "own-vpn", "vpn", "whatsapp"]
    for run in runs:
        # Every feature is judged: a scenario may not leave one out.
        assert all(check.expected is not None for check in run.checks), run.testlist
        assert run.report["controls"]["status"]["dns_ok"], run.report["controls"]["status"]
    assert mismatches(runs) == []


@pytest.mark.timeout(SCENARIO_TIMEOUT)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_run_is_captured_on_the_clients_interface(
    name: str, matrix: Mapping[str, tuple[ListRun, ...]]
) -> None:
    for run in matrix[name]:
        assert run.capture is not None and run.capture.name == f"{name}-{run.testlist}.pcap"
        # What a replay needs beside it: the probe's TLS keys and the CA it trusted.
        assert len(KeyLog.parse(keylog_path(run.capture).read_bytes().splitlines())) > 0
        assert ca_bundle_path(run.capture).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        sources = set()
        dns_packets = 0
        with PcapReader(str(run.capture)) as packets:
            for packet in packets:
                layer = packet.getlayer(IP) or packet.getlayer(IPv6)
                if layer is not None:
                    sources.add(layer.src)
                dns_packets += packet.haslayer(DNS)
        # Both directions of the client's traffic, the lab's addresses only
        # (and, at most, IPv6 link-local neighbour traffic).
        assert addressing.CLIENT_V4 in sources and addressing.RESOLVER_V4 in sources
        assert dns_packets > 0
        assert all(_in_lab(address) for address in sources)


def _in_lab(address: str) -> bool:
    return address.startswith(("198.51.100.", "203.0.113.", "2001:db8:", "fe80:"))


def target(run: ListRun, target_id: str) -> dict[str, Any]:
    return next(t for t in run.report["targets"] if t["id"] == target_id)


def by_list(runs: tuple[ListRun, ...], name: str) -> ListRun:
    return next(run for run in runs if run.testlist == name)


@pytest.mark.timeout(SCENARIO_TIMEOUT)
def test_china_2017_two_forged_answers_race_the_real_one(
    matrix: Mapping[str, tuple[ListRun, ...]]
) -> None:
    facebook = by_list(matrix["china-2017"], "facebook")
    lookup = target(facebook, "dns://www.facebook.com/A")["observations"][0]
    answers = sorted(a["data"] for r in lookup["responses"] for a in r["answers"])
    # The injector's two answers and the real one (which still arrives, after its
    # delay) are all recorded; the order is the race's, not asserted here.
    assert len(lookup["responses"]) == 3
    forged = ["203.0.113.251", "203.0.113.252"]
    (real,) = [a for a in answers if a not in forged]
    assert [a for a in answers if a in forged] == forged and real.startswith("203.0.113.")
    # Messaging survives while media is reset: the 2017 story.
    whatsapp = by_list(matrix["china-2017"], "whatsapp")
    media = target(whatsapp, "tls://mmg.whatsapp.net:443")
    assert media["method"] == "tls-reset"
    assert target(whatsapp, "tcp://e1.whatsapp.net:5222")["verdict"] == "reachable"


@pytest.mark.timeout(SCENARIO_TIMEOUT)
def test_residual_a_second_check_meets_the_penalty_not_a_reset(
    matrix: Mapping[str, tuple[ListRun, ...]]
) -> None:
    whatsapp = by_list(matrix["residual"], "whatsapp")
    checks = [target(whatsapp, "https://web.whatsapp.com/"), target(whatsapp, "tls://web.whatsapp.com:443")]
    # Order the two checks of web.whatsapp.com:443 by when they started.
    first, second = sorted(checks, key=lambda t: min(o["t0"] for o in connecting(t)))
    reset = {o["address"] for o in connecting(first) if o["failure"] == "connection_reset"}
    assert reset
    # Where the first check was reset, the second meets silence: the penalty.
    penalised = [o for o in connecting(second) if o["address"] in reset]
    assert penalised and all(o["failure"] == "generic_timeout_error" for o in penalised)


def connecting(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in result["observations"] if o["kind"] != "dns"]


def test_every_scenario_is_in_the_matrix() -> None:
    assert set(SCENARIOS) >= {"clean", "china-2017", "dns-nxdomain", "blackhole", "throttled",
                              "lossy", "partial", "interception", "residual"}
    assert all(isinstance(load_scenario(path), Scenario) for path in SCENARIOS.values())

