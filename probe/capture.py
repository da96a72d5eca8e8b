"""Record the probe's own traffic while it runs (``probe run --capture FILE``).

tcpdump does the capturing (scapy's AsyncSniffer when tcpdump is not
installed). Both need root or CAP_NET_RAW, and whether they have it is only
certain once they listen, so :func:`capture` starts the capturer and waits
until it reports that it listens before it lets the run begin: every problem
(no tool, no permission, no such interface, a bad filter) is a one-line
:class:`CaptureError` before the first probe packet.

While capturing, ``SSLKEYLOGFILE`` points Python's TLS contexts
(``ssl.create_default_context``, which ``TrustStore`` uses) at a private key
log, so a replay can read the TLS 1.3 handshakes and the HTTP inside
HTTPS. The keys are the probe's own test connections, which carry nothing
secret. A ``.pcapng`` file gets them inside, in a Decryption Secrets Block
(as Wireshark's ``editcap --inject-secrets`` does); a ``.pcap`` file gets them
beside it as ``FILE.keylog``, where ``probe replay`` looks for them.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from probe.errors import InputError
from probe.files import write_private
from probe.model import TargetKind, TestList

# Seconds to wait for the capturer to say it listens, and for the last
# packets of the run to reach the file before it is stopped.
_START_TIMEOUT = 10.0
_DRAIN = 0.5
_CAP_NET_RAW = 13  # linux/capability.h
_SECRETS_TLS_KEYLOG = 0x544C534B

_Stop = Callable[[], None]


class CaptureError(InputError):
    """Capturing cannot start; one line, said before the run."""


@dataclass(frozen=True, slots=True)
class Capture:
    path: Path  # the capture file being written (final once the block exits)
    tool: str  # "tcpdump" or "scapy"


def keylog_path(pcap: Path) -> Path:
    """Where the key log of a ``.pcap`` capture goes (pcapng carries its own)."""
    return pcap.with_name(pcap.name + ".keylog")


def bpf_for(testlists: Sequence[TestList], dns_port: int = 53) -> str:
    """A filter for the probe's traffic: DNS, the ports the lists use (and
    80/443, where redirects and DoH go), and ICMP errors about them."""
    ports = {dns_port, 80, 443}
    for testlist in testlists:
        for target in (*testlist.controls, *(t for f in testlist.features for t in f.targets)):
            if target.port is not None:
                ports.add(target.port)
            elif target.kind is TargetKind.TLS:
                ports.add(443)
    clause = " or ".join(f"port {p}" for p in sorted(ports))
    return f"({clause}) or icmp or icmp6"


def check_privileges() -> None:
    """Root or CAP_NET_RAW in our effective set (a capability-enabled
    tcpdump may still work without; it is tried before giving up)."""
    if os.geteuid() == 0:
        return
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return
    for line in status.splitlines():
        if line.startswith("CapEff:") and int(line.split()[1], 16) >> _CAP_NET_RAW & 1:
            return
    if shutil.which("tcpdump") is None:
        raise CaptureError("--capture needs root or CAP_NET_RAW (run with sudo)")


@contextmanager
def capture(
    path: Path | str, interface: str = "any", bpf: str | None = None, *, keylog: bool = True
) -> Iterator[Capture]:
    """Capture while the ``with`` block runs; the file is complete on exit."""
    path = Path(path)
    check_privileges()
    if not path.parent.is_dir():
        raise CaptureError(f"--capture {path}: no such directory {path.parent}")
    with tempfile.TemporaryDirectory(prefix="probe-capture-") as scratch:
        raw = Path(scratch) / "raw.pcap"
        keys = Path(scratch) / "keys.log"
        tool = "tcpdump" if shutil.which("tcpdump") else "scapy"
        stop = _tcpdump(raw, interface, bpf) if tool == "tcpdump" else _sniffer(raw, interface, bpf)
        saved = os.environ.get("SSLKEYLOGFILE")
        if keylog:
            os.environ["SSLKEYLOGFILE"] = str(keys)
        try:
            yield Capture(path, tool)
        finally:
            if keylog:
                if saved is None:
                    os.environ.pop("SSLKEYLOGFILE", None)
                else:
                    os.environ["SSLKEYLOGFILE"] = saved
            time.sleep(_DRAIN)
            stop()
        secrets = keys.read_bytes() if keys.exists() else b""
        _finish(raw, path, secrets)


def _tcpdump(raw: Path, interface: str, bpf: str | None) -> _Stop:
    # --immediate-mode: without it libpcap holds packets in its ring until
    # a block fills or times out, and the last ones of a run are lost on stop.
    command = ["tcpdump", "--immediate-mode", "-i", interface, "-s", "0", "-U", "-n",
               "-w", str(raw)]
    if os.geteuid() == 0:
        command[1:1] = ["-Z", "root"]  # keep writing into our private directory
    if bpf:
        command.append(bpf)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    # tcpdump says "listening on IFACE, link-type ..." once it captures.
    deadline = time.monotonic() + _START_TIMEOUT
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line.strip())
        if "listening on" in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return lambda: _end(process)
    process.kill()
    process.wait()
    reason = next((line for line in lines if line), "tcpdump did not start")
    raise CaptureError(f"--capture: {reason.removeprefix('tcpdump: ')}")


def _end(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)  # tcpdump flushes and closes the file
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _sniffer(raw: Path, interface: str, bpf: str | None) -> _Stop:
    from scapy.sendrecv import AsyncSniffer
    from scapy.utils import PcapWriter

    writer = PcapWriter(str(raw), sync=True)
    try:
        sniffer = AsyncSniffer(
            iface=None if interface == "any" else interface, filter=bpf,
            prn=writer.write, store=False,
        )
        sniffer.start()
        time.sleep(0.2)
        if not sniffer.running:
            raise CaptureError("--capture: scapy could not start sniffing (root or CAP_NET_RAW?)")
    except (OSError, RuntimeError) as exc:
        writer.close()
        raise CaptureError(f"--capture: {exc}") from None

    def stop() -> None:
        sniffer.stop()
        writer.close()

    return stop


def _finish(raw: Path, path: Path, secrets: bytes) -> None:
    """Move the capture into place: pcapng with the keys inside, or pcap
    with the keys beside it (0600, like every file that holds keys)."""
    if path.suffix.lower() == ".pcapng":
        write_pcapng(raw, path, secrets)
        return
    shutil.copyfile(raw, path)
    if secrets:
        write_private(keylog_path(path), secrets)


def write_pcapng(pcap: Path, out: Path, secrets: bytes) -> None:
    """Rewrite a pcap file as pcapng (draft-ietf-opsawg-pcapng): one
    section, one interface with nanosecond timestamps, the key log in a
    Decryption Secrets Block before the packets."""
    from probe.replay.capfile import CaptureReader

    reader = CaptureReader(pcap)
    with out.open("wb") as stream:
        stream.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        if secrets:
            stream.write(_block(0x0000000A, struct.pack("<II", _SECRETS_TLS_KEYLOG, len(secrets))
                                + _pad(secrets)))
        packets = iter(reader)
        first = next(packets, None)
        # A pcap file has one link type; an empty one says it in its header only.
        stream.write(_interface(first[1] if first else 1))
        for ns, _linktype, frame in [first] if first else []:
            stream.write(_packet(ns, frame))
        for ns, _linktype, frame in packets:
            stream.write(_packet(ns, frame))


def _interface(linktype: int) -> bytes:
    # Option if_tsresol (code 9) = 9: timestamps count nanoseconds.
    options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    return _block(1, struct.pack("<HHI", linktype, 0, 0) + options)


def _packet(ns: int, frame: bytes) -> bytes:
    return _block(6, struct.pack("<IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(frame), len(frame))
                  + _pad(frame))


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _block(kind: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)
