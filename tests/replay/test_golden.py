"""Replay of the stored captures gives exactly the stored observations and
verdicts; the loopback and lab captures' verdicts are their live runs'."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pcap_builders import write_pcap
from pcap_golden import (
    FIXTURES,
    LAB_FIXTURES,
    golden_files,
    lab_captures,
    lab_golden_files,
    lab_list,
    verdicts_of,
)

from probe.capture import keylog_path, write_pcapng
from probe.cli import main
from probe.lists import load_testlist
from probe.replay.capfile import CaptureReader
from probe.replay.report import replay_report
from probe.replay.vpnkeys import read_vpn_keys
from probe.sign import sign_report
from probe_lab.capture import ca_bundle_path, vpn_keys_path
from probe_lab.runner import lab_overrides

CAPTURES = [("loopback", "loopback.pcapng"), ("censored", "censored.pcap")]


def _load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(("stem", "capture"), CAPTURES)
def test_replay_reproduces_the_golden_files(stem: str, capture: str) -> None:
    observations, verdicts = golden_files(FIXTURES / capture, load_testlist(FIXTURES / f"{stem}.yaml"))
    assert observations == _load(f"{stem}.observations.json")
    assert verdicts == _load(f"{stem}.verdicts.json")


def test_loopback_replay_agrees_with_the_live_run() -> None:
    assert _load("loopback.verdicts.json") == _load("loopback.live.json")


@pytest.mark.parametrize("pcap", lab_captures(), ids=lambda p: p.stem)
def test_lab_captures_replay_to_their_golden_files_and_live_verdicts(pcap: Path) -> None:
    """Runs of the lab (make_golden.py lab), replayed with the lab's options,
    their key logs and CAs: the same verdicts as live, target by target."""
    observations, verdicts = lab_golden_files(pcap)
    assert observations == _load(f"lab/{pcap.stem}.observations.json")
    assert verdicts == _load(f"lab/{pcap.stem}.verdicts.json") == _load(f"lab/{pcap.stem}.live.json")


def test_the_lab_captures_tell_their_stories() -> None:
    stems = {pcap.stem for pcap in lab_captures()}
    assert stems >= {"china-2017-whatsapp", "dns-nxdomain-facebook", "interception-facebook",
                     "vpn-crackdown-own-vpn"}
    china = _load("lab/china-2017-whatsapp.live.json")["features"]
    assert china["messaging"] == ["reachable", "ok"] and china["media"] == ["blocked", "tls-reset"]
    assert _load("lab/dns-nxdomain-facebook.live.json")["features"]["web"][1] == "dns-nxdomain"
    # HTTPS refusing the interceptor's certificate hangs up without an alert:
    # the replay judges the certificate with the CA the run trusted.
    intercepted = _load("lab/interception-facebook.live.json")["targets"]
    assert intercepted["https://www.facebook.com/"] == ["blocked", "tls-mitm"]
    # Every VPN protocol against real servers, each handshake rebuilt: OpenVPN
    # reset over TCP and dropped over UDP (tls-crypt read with the lab's key),
    # WireGuard answered, SSTP read inside TLS, PPTP blackholed at the connect.
    crackdown = _load("lab/vpn-crackdown-own-vpn.live.json")["features"]
    assert crackdown["openvpn-tcp"] == ["blocked", "handshake-reset"]
    assert crackdown["openvpn-tls-crypt"] == ["blocked", "handshake-timeout"]
    assert crackdown["wireguard"] == crackdown["sstp"] == ["reachable", "ok"]
    assert crackdown["pptp"] == ["blocked", "tcp-timeout"]


def test_a_lab_capture_replays_by_hand_as_the_agreement_test_replays_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``probe replay`` with the lab's options on the command line (its key log
    read from beside the capture, its VPN key file named) gives the live run's verdicts."""
    pcap = LAB_FIXTURES / "vpn-crackdown-own-vpn.pcap"
    overrides = lab_overrides([lab_list(pcap)])
    monkeypatch.setenv("PROBE_CONFIG_DIR", str(tmp_path / "config"))
    argv = ["replay", str(pcap), "--list", str(lab_list(pcap)), "--quiet",
            "--output-dir", str(tmp_path), "--ca-bundle", str(ca_bundle_path(pcap)),
            "--vpn-keys", str(vpn_keys_path(pcap)),
            "--default-prefixes", ",".join(overrides.default),
            *(arg for table, cidrs in overrides.tables.items()
              for arg in ("--prefix-table", f"{table}={','.join(cidrs)}"))]
    assert main(argv) == 0
    (path,) = tmp_path.glob("*.json")
    report = json.loads(path.read_text())
    assert verdicts_of(report) == _load("lab/vpn-crackdown-own-vpn.live.json")
    assert report["config"]["vpn_keys_given"] == sorted(read_vpn_keys(vpn_keys_path(pcap)))
    # Without the run's CA, prefixes and VPN keys, the same capture tells
    # another story: the key file beside it is not read unasked.
    assert main(["replay", str(pcap), "--list", str(lab_list(pcap)), "--quiet",
                 "--output-dir", str(tmp_path / "plain")]) == 0
    (plain,) = (tmp_path / "plain").glob("*.json")
    assert verdicts_of(json.loads(plain.read_text())) != verdicts_of(report)
    assert "vpn_keys_given" not in json.loads(plain.read_text())["config"]


def test_same_capture_list_and_key_give_byte_identical_reports() -> None:
    testlist = load_testlist(FIXTURES / "loopback.yaml")
    key = Ed25519PrivateKey.generate()
    first = sign_report(replay_report(FIXTURES / "loopback.pcapng", testlist).report, key)
    second = sign_report(replay_report(FIXTURES / "loopback.pcapng", testlist).report, key)
    assert json.dumps(first, sort_keys=False) == json.dumps(second, sort_keys=False)
    assert first["source"]["kind"] == "replay" and len(first["source"]["pcap_sha256"]) == 64
    # Times come from the capture, not from the clock of the replay.
    first_packet = next(iter(CaptureReader(FIXTURES / "loopback.pcapng")))[0]
    assert first["started"] == datetime.fromtimestamp(first_packet // 10**9, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def test_https_without_key_log_is_not_guessed(tmp_path: Path) -> None:
    """Without keys the HTTP inside HTTPS is unknown: not measured, never blocked."""
    raw = write_pcap(tmp_path / "nokeys.pcap",
                     ((ns, frame) for ns, _link, frame in CaptureReader(FIXTURES / "loopback.pcapng")))
    plain = tmp_path / "nokeys.pcapng"
    write_pcapng(raw, plain, b"")
    assert not CaptureReader(plain).secrets
    report = replay_report(plain, load_testlist(FIXTURES / "loopback.yaml")).report
    https = next(t for t in report["targets"] if t["id"].startswith("https://"))
    assert (https["verdict"], https["method"]) == ("inconclusive", "not-measured")
    # The handshakes themselves are still judged without keys.
    verdicts = {t["id"]: (t["verdict"], t["method"]) for t in report["targets"]}
    golden = _load("loopback.verdicts.json")["targets"]
    assert {k: v for k, v in verdicts.items() if not k.startswith("https://")} == {
        k: tuple(v) for k, v in golden.items() if not k.startswith("https://")
    }


def test_a_pcap_finds_its_key_log_beside_it(tmp_path: Path) -> None:
    """``probe run --capture run.pcap`` leaves run.pcap.keylog; replay uses it."""
    reader = CaptureReader(FIXTURES / "loopback.pcapng")
    raw = write_pcap(tmp_path / "run.pcap", ((ns, frame) for ns, _link, frame in reader))
    keylog_path(raw).write_bytes(b"\n".join(reader.secrets) + b"\n")
    report = replay_report(raw, load_testlist(FIXTURES / "loopback.yaml")).report
    assert verdicts_of(report) == _load("loopback.verdicts.json")
    assert report["config"]["replay"]["keylog"] is True
