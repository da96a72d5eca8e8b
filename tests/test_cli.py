"""`probe` end to end: a test list measured against loopback servers, then verify and diff.

The probe runs as a real subprocess (python -m probe) with the address
guard set to loopback, its own config directory and output directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import LoopbackServers

from probe.journal import read_journal

ROOT = Path(__file__).resolve().parent.parent


def probe(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True, text=True, env=env, cwd=cwd or ROOT, timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config"
    return {
        **os.environ,
        "PROBE_CONFIG_DIR": str(config),
        "PROBE_ALLOW_NETWORKS": "127.0.0.0/8",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }


def write_list(path: Path, loopback: LoopbackServers) -> Path:
    p = loopback.ports
    path.write_text(f"""\
name: loopback
version: "1"
description: Every verdict the probe can reach against loopback servers.
updated: 2026-11-23
prefixes:
  loopback: {{cidrs: [127.0.0.0/8]}}
controls:
  - {{kind: dns, host: ok.test, expect: {{prefixes: loopback}}}}
  - {{kind: tls, host: good.test, port: {p['tls-good']}, expect: {{prefixes: loopback}}}}
features:
  - id: fine
    name: Fine
    targets:
      - {{kind: tls, host: good.test, port: {p['tls-good']}, alpn: [h2], expect: {{prefixes: loopback}}}}
      - {{kind: https, url: "https://good.test:{p['https']}/page", expect: {{prefixes: loopback, status: [200]}}}}
      - {{kind: http, url: "http://ok.test:{p['http']}/redirect", expect: {{prefixes: loopback}}}}
  - id: nxdomain
    name: Names that do not exist
    targets:
      - {{kind: dns, host: nx.test}}
  - id: injected
    name: Injected DNS
    targets:
      - {{kind: dns, host: twice.test, expect: {{prefixes: loopback}}}}
  - id: bogon
    name: Bogon DNS
    targets:
      - {{kind: dns, host: bogon.test}}
  - id: mitm
    name: Wrong certificate
    targets:
      - {{kind: tls, host: good.test, port: {p['tls-wrong']}, expect: {{prefixes: loopback}}}}
  - id: refused
    name: Refused
    targets:
      - {{kind: tcp, host: ok.test, port: {p['closed']}, expect: {{prefixes: loopback}}}}
  - id: reset
    name: Reset after ClientHello
    targets:
      - {{kind: tls, host: good.test, port: {p['reset']}, expect: {{prefixes: loopback}}}}
  - id: partial
    name: Partly blocked
    targets:
      - {{kind: tcp, host: ok.test, port: {p['http']}, expect: {{prefixes: loopback}}}}
      - {{kind: tcp, host: good.test, port: {p['closed']}, expect: {{prefixes: loopback}}}}
""")
    return path


def run_list(loopback: LoopbackServers, certs, tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    testlist = write_list(tmp_path / "loopback.yaml", loopback)
    return probe(
        "run", str(testlist), "--resolver", f"udp://127.0.0.2:{loopback.ports['dns']}",
        "--ca-bundle", str(certs.ca), "--output-dir", str(tmp_path / "results"),
        "--seed", "1", *extra, env=env,
    )


EXPECTED = {
    "fine": ("reachable", "ok"),
    "nxdomain": ("blocked", "dns-nxdomain"),
    "injected": ("blocked", "dns-injection"),
    "bogon": ("blocked", "dns-bogon"),
    "mitm": ("blocked", "tls-mitm"),
    "refused": ("blocked", "tcp-refused"),
    "reset": ("blocked", "tls-reset"),
    "partial": ("degraded", "partial"),
}


def test_run_verify_tamper_diff(loopback: LoopbackServers, certs, tmp_path: Path, env: dict[str, str]) -> None:  # noqa: ANN001
    done = run_list(loopback, certs, tmp_path, env)
    assert done.returncode == 0, done.stderr
    reports = sorted((tmp_path / "results").glob("*.json"))
    assert len(reports) == 1
    assert not list((tmp_path / "results").glob("*.journal.jsonl"))  # removed after the report
    report = json.loads(reports[0].read_text())
    assert report["controls"]["status"]["dns_ok"] and report["controls"]["status"]["connect_ok"]
    verdicts = {f["id"]: (f["verdict"], f["method"]) for f in report["features"]}
    assert verdicts == EXPECTED
    # The screen names every feature with its verdict, and the report path.
    for feature in report["features"]:
        assert feature["name"] in done.stdout
    assert str(reports[0]) in done.stdout

    # No address of ours anywhere in the report (the pages echo 127.0.0.1 back).
    text = reports[0].read_text()
    assert "127.0.0.1" not in text
    assert "10.1.2.3" not in text

    ok = probe("verify", str(reports[0]), env=env)
    assert ok.returncode == 0 and "valid" in ok.stdout
    key = probe("keys", "show", env=env)
    key_id = key.stdout.split()[2]
    assert key_id in ok.stdout

    tampered = tmp_path / "tampered.json"
    data = bytearray(reports[0].read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    bad = probe("verify", str(tampered), env=env)
    assert bad.returncode == 1 and "invalid" in bad.stdout

    same = probe("diff", str(reports[0]), str(reports[0]), env=env)
    assert same.returncode == 0, same.stdout + same.stderr

    changed = json.loads(text)
    changed["features"][0]["verdict"] = "blocked"
    other = tmp_path / "changed.json"
    other.write_text(json.dumps(changed))
    diff = probe("diff", str(reports[0]), str(other), "--json", env=env)
    assert diff.returncode == 1
    assert json.loads(diff.stdout)["changed"] is True


def test_json_output_is_the_signed_report(loopback: LoopbackServers, certs, tmp_path: Path, env: dict[str, str]) -> None:  # noqa: ANN001
    done = run_list(loopback, certs, tmp_path, env, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    (written,) = (tmp_path / "results").glob("*.json")
    assert printed == json.loads(written.read_text())
    assert printed["signature"]["alg"] == "Ed25519"


def test_dead_network_is_inconclusive_not_blocked(tmp_path: Path, env: dict[str, str]) -> None:
    # The shipped list with the guard refusing everything but loopback: on
    # this machine that is a dead resolver, and the answer must say so.
    done = probe("run", "testlists/whatsapp.yaml", "--output-dir", str(tmp_path), "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(Path(done.stdout.strip()).read_text())
    assert {f["verdict"] for f in report["features"]} == {"inconclusive"}
    assert {f["method"] for f in report["features"]} == {"resolver-unavailable"}
    assert "resolver is unavailable" in report["controls"]["status"]["reason"]
    assert probe("verify", done.stdout.strip(), env=env).returncode == 0


def test_vpn_keys_are_named_in_the_report_never_written(tmp_path: Path, env: dict[str, str]) -> None:
    secret = "YEocP0e2o1WT5GlvBvQzVF7EeR6Z7aCa+HzJj2G8R2A="
    key_file = tmp_path / "warp.key"
    key_file.write_text(secret + "\n")
    done = probe("run", "testlists/vpn.yaml", "--vpn-key", f"warp-client=@{key_file}",
                 "--output-dir", str(tmp_path), "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    text = Path(done.stdout.strip()).read_text()
    assert json.loads(text)["config"]["vpn_keys_given"] == ["warp-client"]
    assert secret not in text and secret[:12] not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.yaml"], "missing.yaml:1:1:"),
        (["run", "testlists/whatsapp.yaml", "--resolver", "carrier-pigeon"], "invalid resolver"),
        (["run", "testlists/whatsapp.yaml", "--ca-bundle", "/nonexistent.pem"], "--ca-bundle"),
        (["verify", "missing.json"], "missing.json"),
        (["diff", "missing.json", "missing.json"], "missing.json"),
        (["lists", "validate", "README.md"], "README.md:"),
        (["run", "testlists/vpn.yaml", "--vpn-key", "warp-client=short"],
         "--vpn-key warp-client: not a WireGuard private key"),
        (["run", "testlists/vpn.yaml", "--vpn-key", "warp-client=@/nonexistent.key"],
         "--vpn-key warp-client: cannot read /nonexistent.key"),
        (["replay", "tests/fixtures/pcaps/loopback.pcapng", "--list", "tests/fixtures/pcaps/loopback.yaml",
          "--vpn-keys", "/nonexistent.vpnkeys"], "--vpn-keys /nonexistent.vpnkeys"),
    ],
)
def test_input_errors_are_one_line_exit_2(args: list[str], message: str, env: dict[str, str], tmp_path: Path) -> None:
    done = probe(*args, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_guard_variable_is_an_input_error(env: dict[str, str]) -> None:
    env["PROBE_ALLOW_NETWORKS"] = "127.0.0.0/8,not-a-network"
    done = probe("run", "testlists/whatsapp.yaml", "--quiet", env=env)
    assert done.returncode == 2
    assert "PROBE_ALLOW_NETWORKS" in done.stderr and "Traceback" not in done.stderr


def test_world_readable_key_is_refused(env: dict[str, str]) -> None:
    assert probe("keys", "generate", env=env).returncode == 0
    key = Path(env["PROBE_CONFIG_DIR"]) / "signing-key.pem"
    key.chmod(0o644)
    done = probe("keys", "show", env=env)
    assert done.returncode == 2
    assert "chmod 600" in done.stderr


def test_a_killed_run_keeps_what_it_measured_in_the_journal(
    loopback: LoopbackServers, certs, tmp_path: Path, env: dict[str, str]  # noqa: ANN001
) -> None:
    p = loopback.ports
    fast = "\n".join(
        f"      - {{kind: dns, host: {name}, expect: {{prefixes: [127.0.0.0/8]}}}}"
        for name in ("ok.test", "good.test", "other.test", "cname.test")
    )
    testlist = tmp_path / "slow.yaml"
    testlist.write_text(f"""\
name: slow
version: "1"
updated: 2026-11-23
controls: [{{kind: dns, host: ok.test, expect: {{prefixes: [127.0.0.0/8]}}}}]
features:
  - id: fast
    name: Fast
    targets:
{fast}
  - id: slow
    name: Never answers
    targets:
      - {{kind: tls, host: good.test, port: {p['hold']}, expect: {{prefixes: [127.0.0.0/8]}}}}
""")
    results = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-m", "probe", "run", str(testlist), "--quiet",
         "--resolver", f"udp://127.0.0.2:{p['dns']}", "--output-dir", str(results),
         "--ca-bundle", str(certs.ca)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        journal: list[Path] = []
        while time.monotonic() < deadline:
            journal = list(results.glob("*.journal.jsonl"))
            if journal and journal[0].read_bytes().count(b"\n") >= 5:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)  # the TLS check still waits for its 8 s timeout
    finally:
        process.wait(timeout=10)
    assert not list(results.glob("*.json")), "a killed run must not leave a report"
    entries = read_journal(journal[0])
    measured = {entry.target for entry in entries}
    assert "control:dns://ok.test/A" in measured
    assert {"dns://ok.test/A", "dns://good.test/A", "dns://other.test/A",
            "dns://cname.test/A"} <= measured
    assert all(entry.observations for entry in entries)
