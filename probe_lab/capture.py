"""Packet captures of the client's interface (tcpdump), for the replay's fixtures.

Beside ``FILE.pcap`` the runner leaves what a replay needs to judge it as
the live run did: ``FILE.pcap.keylog`` (the probe's TLS keys),
``FILE.pcap.ca.pem`` (the CAs it trusted, :func:`ca_bundle_path`) and
``FILE.pcap.vpnkeys`` (the VPN keys it was given, :func:`vpn_keys_path`,
for ``probe replay --vpn-keys``). The files that hold keys are 0600.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from probe_lab.servers.ready import wait_for_text
from probe_lab.topology import LabError, LabNet, popen_in

__all__ = ["ca_bundle_path", "capture", "vpn_keys_path"]

_START = 5.0  # seconds for tcpdump to open the interface
_DRAIN = 0.2  # seconds for the run's last packets to reach tcpdump
_STOP = 5.0
# KiB of kernel ring: at the default 2 MiB, a full-size snapshot per frame
# leaves room for a handful of packets, and a burst of checks overflows it.
_BUFFER = 32768


def ca_bundle_path(pcap: Path) -> Path:
    """Where a capture's CA bundle goes: the lab's CA dies with the lab."""
    return pcap.with_name(pcap.name + ".ca.pem")


def vpn_keys_path(pcap: Path) -> Path:
    """Where a capture's VPN key file goes (``probe.replay.vpnkeys``): the
    lab's keys die with the lab too."""
    return pcap.with_name(pcap.name + ".vpnkeys")


@contextmanager
def capture(net: LabNet, path: Path) -> Iterator[Path]:
    """tcpdump on the client's ``eth0`` into ``path`` (pcap) while the block runs.

    Every packet, full length, both directions: what the probe sent and
    everything that reached it, forged answers and resets included. A
    capture the kernel dropped packets from is a LabError: its replay
    would tell another story.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # -U: write each packet at once (a killed run keeps them); --immediate-mode:
    # without it libpcap holds packets in its ring until a block fills or times
    # out, and the run's last second is lost when tcpdump stops; -Z root: tcpdump
    # would otherwise drop to its own user, who may not write under ``path``.
    process = popen_in(
        net.client_ns,
        ["tcpdump", "--immediate-mode", "-B", str(_BUFFER), "-i", "eth0", "-s", "0", "-U",
         "-n", "-Z", "root", "-w", str(path.resolve())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        if not wait_for_text(process.stderr, b"listening on", _START):
            raise LabError(f"tcpdump did not start capturing in {net.client_ns} "
                           "(apt-get install tcpdump)")
        yield path
    finally:
        time.sleep(_DRAIN)
        process.send_signal(signal.SIGINT)  # tcpdump writes what it holds and exits
        try:
            _, said = process.communicate(timeout=_STOP)
        except subprocess.TimeoutExpired:
            process.kill()
            _, said = process.communicate()
    # tcpdump's last words: "N packets dropped by kernel".
    dropped = re.search(rb"(\d+) packets? dropped by kernel", said or b"")
    if dropped and int(dropped[1]):
        raise LabError(f"tcpdump lost {int(dropped[1])} packets of {path.name}: the capture is incomplete")
