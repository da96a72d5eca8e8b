"""Packet captures of the client's interface (tcpdump), for the replay's fixtures."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from probe.lab.servers.ready import wait_for_text
from probe.lab.topology import LabError, LabNet, popen_in

__all__ = ["capture"]

_START = 5.0  # seconds for tcpdump to open the interface
_STOP = 5.0


@contextmanager
def capture(net: LabNet, path: Path) -> Iterator[Path]:
    """tcpdump on the client's ``eth0`` into ``path`` (pcap) while the block runs.

    Every packet, full length, both directions: what the probe sent and
    everything that reached it, forged answers and resets included.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # -U: write each packet at once (a killed run keeps them); -Z root: tcpdump
    # would otherwise drop to its own user, who may not write under ``path``.
    process = popen_in(
        net.client_ns,
        ["tcpdump", "-i", "eth0", "-s", "0", "-U", "-n", "-Z", "root", "-w", str(path.resolve())],
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
        process.terminate()
        try:
            process.wait(timeout=_STOP)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
