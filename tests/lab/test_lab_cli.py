"""``probe lab list | run | up | down | doctor`` as a user types them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from environment import in_ci, require

from probe.cli import main as probe_main
from probe_lab import requirements, topology
from probe_lab.scenario import shipped_scenarios

ROOT = Path(__file__).resolve().parents[2]
WHATSAPP = str(ROOT / "testlists" / "whatsapp.yaml")


def lab(*argv: str) -> int:
    """``probe lab ARGV...`` through the probe's command line and the entry point."""
    return probe_main(["lab", *argv])


def test_list_shows_every_shipped_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [p.stem for p in shipped_scenarios()]
    assert all(line.endswith("[facebook, own-vpn, vpn, whatsapp]") for line in lines)


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab("list", "--json") == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["name"] for e in entries] == [p.stem for p in shipped_scenarios()]
    assert all(e["lists"] == ["facebook", "own-vpn", "vpn", "whatsapp"] and e["description"] for e in entries)


def test_an_unknown_scenario_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab("run", "no-such-scenario") == 2
    err = capsys.readouterr().err
    assert "no such scenario" in err and len(err.strip().splitlines()) == 1


def test_without_root_the_lab_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for argv in (("run", "clean"), ("up", "clean"), ("down",)):
        assert lab(*argv) == 2
        err = capsys.readouterr().err
        assert "needs root" in err and len(err.strip().splitlines()) == 1


@pytest.mark.usefixtures("lab_host")
@pytest.mark.timeout(180)
def test_run_json_puts_each_verdict_beside_the_expected_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab("run", "dns-nxdomain", WHATSAPP, "--json") == 0
    (result,) = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert result["scenario"] == "dns-nxdomain" and result["list"] == "whatsapp" and result["ok"]
    assert result["features"] and all(
        f["ok"] and f["expected"] == {"verdict": f["verdict"], "method": f["method"]} for f in result["features"]
    )


@pytest.mark.usefixtures("lab_host")
@pytest.mark.timeout(180)
def test_run_compares_captures_and_keeps_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    captures, reports = tmp_path / "pcaps", tmp_path / "reports"
    assert lab("run", "clean", WHATSAPP, "--capture", str(captures),
               "--output-dir", str(reports)) == 0
    out = capsys.readouterr().out
    assert "clean x whatsapp: 4/4 features checked, as expected" in out
    assert (captures / "clean-whatsapp.pcap").stat().st_size > 1000
    (report,) = reports.glob("*-whatsapp.json")
    verify = subprocess.run([sys.executable, "-m", "probe", "verify", str(report)],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(report.read_text())["config"]["resolver"] == "udp://203.0.113.53:53"

    # A scenario that expects the wrong thing: exit 1, and the line says what differs.
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: wrong\ndescription: clean, expecting a block\n"
                     "expect: {whatsapp: {media: {verdict: blocked, method: tls-reset}}}\n")
    assert lab("run", str(wrong), WHATSAPP) == 1
    out = capsys.readouterr().out
    assert "differs: media is reachable/ok, the scenario expects blocked/tls-reset" in out
    assert not any(p.startswith("plab-") and p in out for p in topology.lab_prefixes())


@pytest.mark.usefixtures("lab_host")
def test_up_leaves_a_working_lab_and_down_removes_it(capsys: pytest.CaptureFixture[str]) -> None:
    before = set(topology.lab_prefixes())
    assert lab("up", "dns-nxdomain") == 0
    (prefix,) = set(topology.lab_prefixes()) - before
    out = capsys.readouterr().out
    try:
        assert f"lab {prefix} is up" in out and f"ip netns exec {prefix}-client" in out
        # The servers outlive the command: the client namespace's resolver (via
        # /etc/netns) answers, and the scenario's zone is in force.
        lookup = topology.run_in(
            f"{prefix}-client",
            [sys.executable, "-c", ("import socket\n"
             "print(socket.getaddrinfo('www.example.com', 443)[0][4][0])\n"
             "try: socket.getaddrinfo('e1.whatsapp.net', 443)\n"
             "except socket.gaierror as e: print('nxdomain', e.errno == socket.EAI_NONAME)")],
            capture_output=True, text=True, timeout=30,
        )
        address, nxdomain = lookup.stdout.splitlines()
        assert address.startswith(("203.0.113.", "2001:db8:5::")) and nxdomain == "nxdomain True"
    finally:
        others = set(topology.lab_prefixes()) - {prefix}
        if others and not in_ci():
            topology.destroy(prefix)  # someone else's labs are running: leave them be
        else:
            assert lab("down") == 0
            assert prefix in capsys.readouterr().out
    assert prefix not in topology.lab_prefixes()


# ------------------------------------------------------------------- doctor

EVERY_COMMAND = tuple(c for p in requirements.PACKAGES for c in p.commands)


def test_ci_installs_the_packages_the_doctor_checks() -> None:
    """One list: .ci/run's apt-get line is the requirements table."""
    line = next(l for l in (ROOT / ".ci" / "run").read_text().splitlines() if "apt-get install" in l)
    installed = [w for w in line.split("install", 1)[1].split() if not w.startswith(("-", ">"))]
    assert installed == [p.name for p in requirements.PACKAGES]


def test_the_doctor_finds_everything_on_a_lab_machine(capsys: pytest.CaptureFixture[str]) -> None:
    """For real: every package here, and root running the kernel checks."""
    require(root=True, tools=EVERY_COMMAND)
    assert lab("doctor") == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out and "apt-get" not in out
    assert out.rstrip().endswith("everything the lab needs is here")
    assert lab("doctor", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["install"] is None
    assert [c["name"] for c in report["packages"]] == [p.name for p in requirements.PACKAGES]
    assert [c["name"] for c in report["kernel"]] == ["root", *(f.name for f in requirements.KERNEL)]
    assert all(c["present"] for c in report["packages"] + report["kernel"])


def test_the_doctor_names_what_the_path_hides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATH without tcpdump and tshark (both in /usr/bin, where the doctor does not
    look on its own): exit 1, and one apt-get line that installs exactly them."""
    require(root=True, tools=EVERY_COMMAND)
    shown = tmp_path / "bin"
    shown.mkdir()
    for command in EVERY_COMMAND:
        if command not in ("tcpdump", "tshark"):
            (shown / command).symlink_to(requirements.find_program(command))
    monkeypatch.setenv("PATH", str(shown))
    assert lab("doctor") == 1
    out = capsys.readouterr().out
    assert re.search(r"MISSING +tcpdump +.*\(tcpdump\)", out)
    assert re.search(r"MISSING +tshark ", out) and out.count("MISSING") == 2
    assert [l.strip() for l in out.splitlines() if "apt-get" in l] == ["apt-get install -y tcpdump tshark"]
    assert lab("doctor", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["install"] == "apt-get install -y tcpdump tshark"
    assert all(c["present"] for c in report["kernel"])  # the kernel checks still ran
    assert shutil.which("tcpdump") is None
