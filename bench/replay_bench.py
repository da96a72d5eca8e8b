"""Replay speed and memory against tshark, on a capture of a million packets.

    python bench/replay_bench.py [--packets N] [--file CAPTURE] [--keep PATH]

Builds (with struct, in seconds) a pcap of mixed traffic: DNS lookups over
UDP, TLS connections (handshake with SNI, a certificate, application data,
close) and plain TCP connections, a few of them reset or blackholed, with
several flows open at a time. Then, each in its own process, it runs

* replay: the per-flow account ``probe replay FILE`` prints (every flow
  extracted: DNS exchanges matched, TCP state, TLS hello facts), and
* tshark -r FILE -T fields -e dns.qry.name -e dns.a
  -e tls.handshake.extensions_server_name -e tcp.flags,

and prints packets per second and peak RSS for each, plus replay's peak RSS
on half the capture (memory must not grow with the capture). It also checks
that both extracted the same DNS names and server names.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_ETH = bytes.fromhex("020000000002" "020000000001" "0800")
_START = 1_800_000_000_000_000_000


class Writer:
    """Packets straight into a pcap file (nanosecond format)."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("wb")
        self._out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        self.count = 0
        self.ns = _START

    def packet(self, src: bytes, dst: bytes, proto: int, l4: bytes, ttl: int = 64) -> None:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self.count & 0xFFFF, 0x4000, ttl,
                         proto, 0, src, dst)
        frame = _ETH + ip + l4
        self.ns += 10_000  # 10 µs apart: 1M packets span 10 s of capture
        self._out.write(struct.pack("<IIII", self.ns // 10**9, self.ns % 10**9, len(frame), len(frame)))
        self._out.write(frame)
        self.count += 1

    def close(self) -> None:
        self._out.close()


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_query(ident: int, name: bytes) -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in name.split(b".")) + b"\x00"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x01\x00\x01"


def dns_response(query: bytes, address: bytes) -> bytes:
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + address
    return query[:2] + b"\x81\x80" + query[4:6] + b"\x00\x01\x00\x00\x00\x00" + query[12:] + answer


def client_hello(sni: bytes) -> bytes:
    name = b"\x00" + struct.pack("!H", len(sni)) + sni
    ext = b"\x00\x00" + struct.pack("!HH", len(name) + 2, len(name)) + name
    ext += bytes.fromhex("0010000e000c02683208687474702f312e31")  # ALPN h2, http/1.1
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x04\xc0\x2f\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


SERVER_FLIGHT = (
    b"\x16\x03\x03\x00\x2a" + b"\x02\x00\x00\x26\x03\x03" + b"\x22" * 32 + b"\x00\xc0\x2f\x00"
    + b"\x16\x03\x03\x02\x08" + b"\x0b\x00\x02\x04\x00\x02\x01\x00\x01\xfe" + b"\x30" * 510
    + b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00"
)
# The rest of a TLS 1.2 handshake: ClientKeyExchange, ChangeCipherSpec and
# the (encrypted) Finished from each side.
CLIENT_FINISH = (b"\x16\x03\x03\x00\x25\x10\x00\x00\x21\x20" + b"\x44" * 32
                 + b"\x14\x03\x03\x00\x01\x01" + b"\x16\x03\x03\x00\x28" + b"\x55" * 40)
SERVER_FINISH = b"\x14\x03\x03\x00\x01\x01" + b"\x16\x03\x03\x00\x28" + b"\x66" * 40
APP = b"\x17\x03\x03\x01\x00" + b"\xab" * 256


def build(path: Path, packets: int, seed: int = 1) -> int:
    """Write about ``packets`` packets; returns the exact count."""
    rng = random.Random(seed)
    out = Writer(path)
    client = bytes([203, 0, 113, 7])
    resolver = bytes([198, 51, 100, 53])
    names = [f"host{i}.example{i % 97}.com".encode() for i in range(5000)]
    port = 10000
    while out.count < packets:
        port = port + 1 if port < 60000 else 10000
        name = rng.choice(names)
        server = bytes([198, 51, 100, 1 + rng.randrange(250)])
        query = dns_query(rng.randrange(65536), name)
        out.packet(client, resolver, 17, udp(port, 53, query))
        out.packet(resolver, client, 17, udp(53, port, dns_response(query, server)), ttl=57)
        kind = rng.random()
        c, s = rng.randrange(2**32), rng.randrange(2**32)
        sp = 443 if kind < 0.7 else 80
        out.packet(client, server, 6, tcp(port, sp, c, 0, 0x02))
        if kind > 0.97:  # blackholed: two SYN retransmissions
            out.packet(client, server, 6, tcp(port, sp, c, 0, 0x02))
            out.packet(client, server, 6, tcp(port, sp, c, 0, 0x02))
            continue
        out.packet(server, client, 6, tcp(sp, port, s, c + 1, 0x12), ttl=50)
        out.packet(client, server, 6, tcp(port, sp, c + 1, s + 1, 0x10))
        c, s = c + 1, s + 1
        if sp == 443:
            hello = client_hello(name)
            out.packet(client, server, 6, tcp(port, sp, c, s, 0x18, hello))
            c += len(hello)
            if kind > 0.65:  # reset after the ClientHello, by an on-path box
                out.packet(server, client, 6, tcp(sp, port, s, c, 0x14), ttl=61)
                continue
            out.packet(server, client, 6, tcp(sp, port, s, c, 0x18, SERVER_FLIGHT), ttl=50)
            s += len(SERVER_FLIGHT)
            out.packet(client, server, 6, tcp(port, sp, c, s, 0x18, CLIENT_FINISH))
            c += len(CLIENT_FINISH)
            out.packet(server, client, 6, tcp(sp, port, s, c, 0x18, SERVER_FINISH), ttl=50)
            s += len(SERVER_FINISH)
            for _ in range(4):
                out.packet(client, server, 6, tcp(port, sp, c, s, 0x18, APP))
                c += len(APP)
                out.packet(server, client, 6, tcp(sp, port, s, c, 0x18, APP), ttl=50)
                s += len(APP)
        else:
            request = b"GET / HTTP/1.1\r\nHost: " + name + b"\r\n\r\n"
            out.packet(client, server, 6, tcp(port, sp, c, s, 0x18, request))
            c += len(request)
            body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            out.packet(server, client, 6, tcp(sp, port, s, c, 0x18, body), ttl=50)
            s += len(body)
        out.packet(client, server, 6, tcp(port, sp, c, s, 0x11))
        out.packet(server, client, 6, tcp(sp, port, s, c + 1, 0x11), ttl=50)
        out.packet(client, server, 6, tcp(port, sp, c + 1, s + 1, 0x10))
    out.close()
    return out.count


_REPLAY = """
import sys
from pathlib import Path
from probe.replay.account import flow_account
names, snis, flows = set(), set(), [0]
def entry(e):
    flows[0] += 1
    if e.kind == "dns":
        names.add(e.record.name)
    elif e.kind == "tcp" and e.record.tls and e.record.tls.client_hello:
        snis.add(e.record.tls.client_hello.sni)
summary = flow_account(Path(sys.argv[1]), entry)
print(summary.packets, flows[0], len(names), len(snis))
"""


def measure(command: list[str], stdout: int | None = subprocess.PIPE) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB, stdout) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = process.stdout.read().decode() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status:
        raise SystemExit(f"{command[0]} failed: {process.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss // 1024, output


def tshark_facts(path: Path, sink: Path) -> tuple[float, int, set[str], set[str]]:
    fields = ["-e", "dns.qry.name", "-e", "dns.a", "-e", "tls.handshake.extensions_server_name",
              "-e", "tcp.flags"]
    with sink.open("wb") as out:
        seconds, rss, _ = measure(["tshark", "-r", str(path), "-T", "fields", *fields], stdout=out.fileno())
    names, snis = set(), set()
    with sink.open() as lines:
        for line in lines:
            qname, _a, sni, _flags = (line.rstrip("\n").split("\t") + ["", "", "", ""])[:4]
            if qname:
                names.add(qname)
            if sni:
                snis.add(sni)
    return seconds, rss, names, snis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, help="use this capture instead of building one")
    parser.add_argument("--keep", type=Path, help="keep the built capture here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.file:
            capture, count = args.file, None
        else:
            capture = args.keep or work / "bench.pcap"
            started = time.perf_counter()
            count = build(capture, args.packets)
            half = work / "half.pcap"
            build(half, args.packets // 2)
            print(f"built {count} packets ({capture.stat().st_size >> 20} MiB) "
                  f"in {time.perf_counter() - started:.1f} s")
        seconds, rss, output = measure([sys.executable, "-c", _REPLAY, str(capture)])
        packets, flows, names, snis = (int(x) for x in output.split())
        print(f"replay: {packets} packets, {flows} flows in {seconds:.1f} s = "
              f"{packets / seconds:,.0f} packets/s, peak RSS {rss} MiB")
        if not args.file:
            _, half_rss, _ = measure([sys.executable, "-c", _REPLAY, str(half)])
            print(f"replay on half the capture: peak RSS {half_rss} MiB")
        if shutil.which("tshark") is None:
            print("tshark: not installed (apt-get install tshark), no comparison")
            return
        t_seconds, t_rss, t_names, t_snis = tshark_facts(capture, work / "tshark.txt")
        print(f"tshark -T fields: {packets} packets in {t_seconds:.1f} s = "
              f"{packets / t_seconds:,.0f} packets/s, peak RSS {t_rss} MiB")
        print(f"speed ratio replay/tshark: {t_seconds / seconds:.2f}x")
        same = (len(t_names), len(t_snis)) == (names, snis)
        print(f"distinct DNS names: replay {names}, tshark {len(t_names)}; "
              f"distinct SNIs: replay {snis}, tshark {len(t_snis)}"
              + ("" if same else "  <-- MISMATCH"))


if __name__ == "__main__":
    main()
