"""Scenario files: the shipped ones are complete, bad ones fail with FILE:LINE:COL (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.lists import TestListError, load_testlist
from probe.model import Verdict
from probe_lab import addressing
from probe_lab.scenario import (
    Expected,
    ScenarioError,
    find_scenario,
    load_scenario,
    shipped_scenarios,
)
from probe_lab.zone import Answer, ZoneEntry

SHIPPED = {
    "clean", "china-2017", "dns-nxdomain", "blackhole", "throttled", "lossy", "partial",
    "interception", "residual", "vpn-crackdown", "openvpn-fingerprint", "udp-blackhole",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_the_shipped_scenarios_are_there_and_named_after_their_files() -> None:
    paths = shipped_scenarios()
    assert {p.stem for p in paths} == SHIPPED
    for path in paths:
        assert load_scenario(path).name == path.stem


@pytest.mark.parametrize("path", shipped_scenarios(), ids=lambda p: p.stem)
def test_each_shipped_scenario_judges_every_feature_of_every_shipped_list(path: Path) -> None:
    scenario = load_scenario(path)
    lists = {t.name: t for t in map(load_testlist, addressing.lab_lists())}
    assert set(scenario.expect) == set(lists)
    for name, testlist in lists.items():
        assert list(scenario.expect[name]) == [f.id for f in testlist.features], name


def test_find_scenario_by_name_or_path(tmp_path: Path) -> None:
    assert find_scenario("clean").name == "clean.yaml"
    own = write(tmp_path, "name: mine\ndescription: x\n")
    assert find_scenario(str(own)) == own
    with pytest.raises(ScenarioError, match="no such scenario .*shipped: .*clean"):
        find_scenario("no-such-scenario")


def test_a_full_scenario_reads_back(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, """\
name: demo
description: everything at once
zone:
  delay_ms: 35
  names:
    "*.example.org": nxdomain
    www.example.org: ["2001:db8:5::201", 203.0.113.201]
    slow.test: drop
censor:
  blackhole: {names: [www.example.org]}
expect:
  whatsapp:
    media: {verdict: degraded, method: partial}
"""))
    assert scenario.delay == 0.035
    # IPv4 first, the order the censor's partial rule counts in.
    assert scenario.zone["www.example.org"] == ZoneEntry(
        Answer.ADDRESSES, ("203.0.113.201", "2001:db8:5::201"))
    assert scenario.zone["slow.test"] == ZoneEntry(Answer.DROP)
    assert scenario.censor.blackhole[0].selector.names == ("www.example.org",)
    assert scenario.expect == {"whatsapp": {"media": Expected(Verdict.DEGRADED, "partial")}}
    zone = scenario.build_zone({"a.example.org": ("203.0.113.10",), "www.example.org": ("203.0.113.11",),
                                "other.test": ("203.0.113.12",)})
    # The wildcard covers the plan's names under it; the exact name wins over it.
    assert zone.lookup("a.example.org") == ZoneEntry(Answer.NXDOMAIN)
    assert zone.lookup("www.example.org").addresses == ("203.0.113.201", "2001:db8:5::201")
    assert zone.lookup("other.test").addresses == ("203.0.113.12",)
    assert zone.lookup("slow.test") == ZoneEntry(Answer.DROP)
    assert zone.delay == 0.035


@pytest.mark.parametrize(("text", "error"), [
    ("name: x\n", ":1:1: a scenario is missing the required key 'description'"),
    ("name: x\ndescription: y\nzones: {}\n", ":3:1: 'zones' is not a key of a scenario"),
    ("name: X Y\ndescription: y\n", ":1:7: 'name' 'X Y' must be lower-case"),
    ("name: x\ndescription: y\nzone: {delay_ms: 9000}\n", ":3:18: 'delay_ms' must be between 0 and 5000"),
    ("name: x\ndescription: y\nzone: {names: {a.test: maybe}}\n", ":3:24: unknown answer 'maybe'"),
    ("name: x\ndescription: y\nzone: {names: {a.test: [10.0.0.1]}}\n",
     ":3:25: 10.0.0.1 is outside the lab's ranges"),
    ("name: x\ndescription: y\nzone: {names: {a.test: [nope]}}\n", ":3:25: 'nope' is not an IP address"),
    ("name: x\ndescription: y\nzone: {names: {'10.1.2.3': nxdomain}}\n", "use a host name"),
    ("name: x\ndescription: y\nexpect: {whatsapp: {media: {verdict: gone, method: ok}}}\n",
     ":3:38: unknown verdict 'gone'"),
    ("name: x\ndescription: y\nexpect: {whatsapp: {media: {verdict: blocked, method: magic}}}\n",
     ":3:55: unknown method 'magic'"),
    ("name: x\ndescription: y\nexpect: {whatsapp: {media: {verdict: blocked}}}\n",
     "is missing the required key 'method'"),
    ("name: x\ndescription: y\ncensor:\n  blackhole: {names: [a.test], ports: [99999]}\n",
     ":4:40: censor.blackhole[0].ports[0]: 99999 is not a port"),
    ("name: x\ndescription: [\n", "YAML error"),
])
def test_errors_are_one_line_with_a_position(tmp_path: Path, text: str, error: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ":")
    assert error in message
    assert "\n" not in message


def test_a_missing_file_is_an_error_at_1_1(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"gone.yaml:1:1: cannot read file"):
        load_scenario(tmp_path / "gone.yaml")


@pytest.mark.parametrize("data", [b"name: x\ndescription: \x00\n", b"name: x\n\xff\n", b"[" * 3000, b"a: [\n"])
def test_scenarios_and_test_lists_share_one_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    with pytest.raises(ScenarioError) as scenario:
        load_scenario(path)
    with pytest.raises(TestListError) as testlist:
        load_testlist(path)
    assert str(scenario.value) == str(testlist.value)
    assert (scenario.value.line, scenario.value.column) == (testlist.value.line, testlist.value.column)
