"""Regenerate the golden replay fixtures.

    sudo PYTHONPATH=. python tests/replay/make_golden.py [loopback] [censored]
    sudo PYTHONPATH=. python tests/replay/make_golden.py lab [SCENARIO ...]
    PYTHONPATH=. python tests/replay/make_golden.py --again

``loopback`` (root: it captures on lo) runs the CLI test list of tests/test_cli.py
against the loopback servers of tests/servers.py while ``probe.capture`` records
the traffic (key log included, inside the pcapng), then writes next to the capture:

* ``loopback.yaml``: the list, with the ports the servers had;
* ``loopback.live.json``: the live run's verdicts and methods;
* ``loopback.observations.json`` / ``loopback.verdicts.json``: what replay
  makes of the capture. It refuses to write them unless the replayed
  verdicts and methods equal the live ones.

``censored`` builds the packet-made capture of tests/replay/pcap_scenarios.py and
writes its golden files the same way, checked against the verdicts the
scenario declares.

``lab`` (root) runs the lab scenarios of ``LAB_CAPTURES`` with their lists,
captured as ``probe lab run --capture`` does, and replaces ``lab/`` with:
each ``SCENARIO-LIST.pcap`` with its key log (``.pcap.keylog``), CA
(``.pcap.ca.pem``) and VPN keys (``.pcap.vpnkeys``), the live run's verdicts
(``.live.json``) and the golden files; the lists and controls as they are
(``LIST.yaml``, ``controls.yaml``). Given SCENARIOs, only theirs are made
again and the other captures stay. It refuses when a live run is not what
its scenario expects, or when the replay differs from the live run anywhere.

``--again`` captures nothing: it rewrites every golden file from the stored
captures (after a change to the replay), and refuses when a verdict moves
away from the live run's (or the scenario's).

The golden tests (tests/replay/test_golden.py) then check that replay keeps
producing exactly these files, without root and without servers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from pcap_golden import (
    FIXTURES,
    LAB_FIXTURES,
    Golden,
    golden_files,
    lab_captures,
    lab_golden_files,
    verdicts_of,
)
from pcap_scenarios import CENSORED_VERDICTS, censored
from servers import LoopbackServers, make_certs
from test_cli import write_list

from probe.capture import capture, keylog_path
from probe.lists import default_controls_path, load_testlist
from probe_lab.addressing import lab_lists
from probe_lab.agreement import agreement
from probe_lab.capture import ca_bundle_path, vpn_keys_path
from probe_lab.runner import run_scenario
from probe_lab.scenario import find_scenario, load_scenario

# Scenario -> lists: a few stories, each in one capture (about 600 KB in all;
# every run downloads the controls' 256 KiB throughput baseline).
LAB_CAPTURES = {
    "china-2017": ("whatsapp",),  # SNI and HTTP resets; messaging still reachable
    "dns-nxdomain": ("facebook",),  # the resolver lies
    "interception": ("facebook",),  # another CA's certificate, refused silently by HTTPS
    # Every VPN protocol against real servers: OpenVPN fingerprinted (RST over
    # TCP, drops over UDP, any wrapping), PPTP blackholed, L2TP dropped;
    # WireGuard, IKEv2 (500 and 4500) and SSTP (inside TLS) answer.
    "vpn-crackdown": ("own-vpn",),
}


def write_golden(directory: Path, stem: str, golden: Golden, expected: dict[str, object]) -> None:
    observations, verdicts = golden
    if verdicts["features"] != expected:
        raise SystemExit(f"{stem}: replay gives {verdicts['features']}, expected {expected}")
    (directory / f"{stem}.observations.json").write_text(_one_per_line(observations))
    (directory / f"{stem}.verdicts.json").write_text(json.dumps(verdicts, indent=2) + "\n")
    print(f"wrote the golden files of {directory / stem}")


def _one_per_line(observations: dict[str, list[object]]) -> str:
    """JSON with one line per observation: small, and a change shows as one line."""
    def listed(seen: list[object]) -> str:
        lines = [f" {json.dumps(o, separators=(',', ':'))}" for o in seen]
        return "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"

    targets = (f"{json.dumps(target)}: {listed(seen)}" for target, seen in observations.items())
    return "{\n" + ",\n".join(targets) + "\n}\n"


def _load(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())


def make_censored() -> None:
    censored(FIXTURES)
    censored_again()


def censored_again() -> None:
    pcap = FIXTURES / "censored.pcap"
    write_golden(FIXTURES, "censored", golden_files(pcap, load_testlist(FIXTURES / "censored.yaml")),
                 CENSORED_VERDICTS)


def make_loopback() -> None:
    out = FIXTURES
    scratch = out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    certs = make_certs(scratch)
    lab = LoopbackServers(certs).start()
    try:
        testlist = write_list(out / "loopback.yaml", lab)
        pcap = out / "loopback.pcapng"
        env = {**os.environ, "PROBE_CONFIG_DIR": str(scratch / "config"),
               "PROBE_ALLOW_NETWORKS": "127.0.0.0/8", "PYTHONPATH": str(ROOT)}
        with capture(pcap, interface="lo", bpf="host 127.0.0.2"):
            env["SSLKEYLOGFILE"] = os.environ["SSLKEYLOGFILE"]
            done = subprocess.run(
                [sys.executable, "-m", "probe", "run", str(testlist),
                 "--resolver", f"udp://127.0.0.2:{lab.ports['dns']}", "--ca-bundle", str(certs.ca),
                 "--output-dir", str(scratch / "results"), "--seed", "1", "--json"],
                env=env, capture_output=True, text=True, check=True,
            )
    finally:
        lab.stop()
    live = verdicts_of(json.loads(done.stdout))
    (out / "loopback.live.json").write_text(json.dumps(live, indent=2) + "\n")
    shutil.rmtree(scratch)
    loopback_again()


def loopback_again() -> None:
    """The whole verdict table, controls and targets too, must match live."""
    golden = golden_files(FIXTURES / "loopback.pcapng", load_testlist(FIXTURES / "loopback.yaml"))
    live = _load(FIXTURES / "loopback.live.json")
    if golden[1] != live:
        raise SystemExit("loopback: replay disagrees with the live run")
    write_golden(FIXTURES, "loopback", golden, live["features"])  # type: ignore[arg-type]


def make_lab(scenarios: list[str]) -> None:
    """Run ``scenarios`` of LAB_CAPTURES (default: all of them, and lab/ is
    replaced) and store their captures and golden files; the others stay."""
    chosen_scenarios = scenarios or list(LAB_CAPTURES)
    lists = {path.stem: path for path in lab_lists()}
    with tempfile.TemporaryDirectory(prefix="probe-golden-") as scratch:
        out = Path(scratch) / "lab"
        if scenarios and LAB_FIXTURES.is_dir():
            shutil.copytree(LAB_FIXTURES, out)
        else:
            out.mkdir()
        used = {c for name in chosen_scenarios for c in LAB_CAPTURES[name]}
        for path in [*(lists[name] for name in sorted(used)), default_controls_path()]:
            shutil.copyfile(path, out / path.name)  # as they are now, for the replay
        for name in chosen_scenarios:
            runs = run_scenario(load_scenario(find_scenario(name)),
                                [lists[c] for c in LAB_CAPTURES[name]],
                                capture_dir=Path(scratch) / "captures")
            for run in runs:
                stem = f"{name}-{run.testlist}"
                if not run.ok:
                    raise SystemExit(f"{stem}: the live run is not what the scenario expects")
                differing = agreement(run).disagreements
                if differing:
                    raise SystemExit(f"{stem}: replay disagrees with the live run: "
                                     + "; ".join(map(str, differing)))
                assert run.capture is not None
                for source in (run.capture, keylog_path(run.capture), ca_bundle_path(run.capture),
                               vpn_keys_path(run.capture)):
                    shutil.copyfile(source, out / source.name)  # named SCENARIO-LIST.pcap...
                (out / f"{stem}.live.json").write_text(
                    json.dumps(verdicts_of(run.report), indent=2) + "\n")
        for pcap in sorted(out.glob("*.pcap")):
            lab_again(pcap)
        shutil.rmtree(LAB_FIXTURES, ignore_errors=True)
        shutil.copytree(out, LAB_FIXTURES)
    print(f"wrote {', '.join(chosen_scenarios)} into {LAB_FIXTURES}")


def lab_again(pcap: Path) -> None:
    golden = lab_golden_files(pcap)
    live = _load(pcap.with_suffix(".live.json"))
    if golden[1] != live:
        raise SystemExit(f"{pcap.stem}: replay disagrees with the live run")
    write_golden(pcap.parent, pcap.stem, golden, live["features"])  # type: ignore[arg-type]


def again() -> None:
    censored_again()
    loopback_again()
    for pcap in lab_captures():
        lab_again(pcap)


if __name__ == "__main__":
    if sys.argv[1:] == ["--again"]:
        again()
    elif sys.argv[1:2] == ["lab"]:
        make_lab(sys.argv[2:])
    else:
        makers = {"loopback": make_loopback, "censored": make_censored}
        for chosen in sys.argv[1:] or ["loopback", "censored"]:
            makers[chosen]()
