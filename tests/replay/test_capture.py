"""probe.capture: the probe's traffic recorded, or a one-line error first."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from environment import require

from probe.capture import CaptureError, bpf_for, capture, keylog_path
from probe.lists import load_testlist
from probe.replay.capfile import CaptureReader


@pytest.fixture
def needs_root() -> None:
    require(root=True, tools=("tcpdump",))


def _send(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"probe", ("127.0.0.1", port))


@pytest.mark.usefixtures("needs_root")
@pytest.mark.parametrize("name", ["run.pcapng", "run.pcap"])
def test_capture_records_loopback_traffic_and_the_key_log(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    before = os.environ.get("SSLKEYLOGFILE")
    with capture(path, interface="lo", bpf="udp port 9") as running:
        assert running.tool == "tcpdump"
        log = os.environ["SSLKEYLOGFILE"]
        Path(log).write_text("CLIENT_RANDOM " + "aa" * 32 + " " + "bb" * 48 + "\n")
        _send(9)
    assert os.environ.get("SSLKEYLOGFILE") == before
    reader = CaptureReader(path)
    packets = list(reader)
    assert len(packets) == 1 and packets[0][2].endswith(b"probe")
    if name.endswith(".pcapng"):
        assert reader.secrets and reader.secrets[0].startswith(b"CLIENT_RANDOM")
    else:
        assert keylog_path(path).read_text().startswith("CLIENT_RANDOM")


@pytest.mark.usefixtures("needs_root")
def test_bad_interface_and_filter_fail_before_the_run(tmp_path: Path) -> None:
    for interface, bpf, message in [("no-such-if0", None, "No such device"),
                                    ("lo", "not a (filter", "filter")]:
        with (pytest.raises(CaptureError, match=message) as error,
              capture(tmp_path / "x.pcap", interface=interface, bpf=bpf)):
            pytest.fail("the run must not start")
        assert "\n" not in str(error.value)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such directory"), capture(tmp_path / "absent" / "x.pcap"):
        pytest.fail("the run must not start")


def test_bpf_covers_the_lists_ports() -> None:
    testlist = load_testlist(Path(__file__).resolve().parents[1] / "fixtures" / "pcaps" / "censored.yaml")
    bpf = bpf_for([testlist])
    assert bpf == "(port 53 or port 80 or port 443) or icmp or icmp6"
