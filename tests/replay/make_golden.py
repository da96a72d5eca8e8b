"""Regenerate the golden replay fixtures (needs root: it captures on lo).

    sudo PYTHONPATH=. python tests/replay/make_golden.py [loopback] [censored]

``loopback`` runs the CLI test list of tests/test_cli.py against the loopback servers of
tests/servers.py while ``probe.capture`` records the traffic (key log
included, inside the pcapng), then writes next to the capture:

* ``loopback.yaml``: the list, with the ports the servers had;
* ``loopback.live.json``: the live run's verdicts and methods;
* ``loopback.observations.json`` / ``loopback.verdicts.json``: what replay
  makes of the capture. It refuses to write them unless the replayed
  verdicts and methods equal the live ones.

``censored`` builds the packet-made capture of tests/replay/pcap_scenarios.py and
writes its golden files the same way, checked against the verdicts the
scenario declares.

The golden tests (tests/replay/test_golden.py) then check that replay keeps
producing exactly these files, without root and without servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from pcap_golden import FIXTURES, golden_files, verdicts_of
from pcap_scenarios import CENSORED_VERDICTS, censored
from servers import Lab, make_certs
from test_cli import write_list

from probe.capture import capture
from probe.testlist import load_testlist


def write_golden(stem: str, pcap: Path, expected: dict[str, object]) -> None:
    observations, verdicts = golden_files(pcap, load_testlist(FIXTURES / f"{stem}.yaml"))
    if verdicts["features"] != expected:
        raise SystemExit(f"{stem}: replay gives {verdicts['features']}, expected {expected}")
    (FIXTURES / f"{stem}.observations.json").write_text(json.dumps(observations, indent=2) + "\n")
    (FIXTURES / f"{stem}.verdicts.json").write_text(json.dumps(verdicts, indent=2) + "\n")
    print(f"wrote {pcap} and its golden files")


def make_censored() -> None:
    pcap, _ = censored(FIXTURES)
    write_golden("censored", pcap, CENSORED_VERDICTS)


def make_loopback() -> None:
    out = FIXTURES
    scratch = out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    certs = make_certs(scratch)
    lab = Lab(certs).start()
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
    for leftover in sorted(scratch.rglob("*"), reverse=True):
        leftover.rmdir() if leftover.is_dir() else leftover.unlink()
    scratch.rmdir()
    # The whole verdict table, controls and targets too, must match live.
    if golden_files(pcap, load_testlist(out / "loopback.yaml"))[1] != live:
        raise SystemExit("replay disagrees with the live run")
    write_golden("loopback", pcap, live["features"])


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["loopback", "censored"]
    for name in chosen:
        {"loopback": make_loopback, "censored": make_censored}[name]()
