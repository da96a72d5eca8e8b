"""A packet-built capture of censorship a loopback run cannot stage, with its
test list and the verdicts it must give. Each target's traffic follows the
live plan's order (A lookup, AAAA lookup, then the connections).
"""

from __future__ import annotations

from pathlib import Path

from pcap_builders import (
    CLIENT,
    CLIENT6,
    Capture,
    Conversation,
    alert,
    certificate12,
    client_hello,
    dns_exchange,
    icmp_unreachable,
    record,
    self_signed,
    server_hello,
)

OK = "198.51.100.10"
FORGED = "203.0.113.66"

CENSORED_LIST = """\
name: censored
version: "1"
description: Censorship built packet by packet.
updated: 2026-11-23
prefixes:
  lab: {cidrs: [198.51.100.0/24, 203.0.113.0/24, "2001:db8::/32"]}
controls:
  - {kind: dns, host: ok.example, expect: {prefixes: lab}}
  - {kind: tcp, host: ok.example, port: 443, expect: {prefixes: lab}}
features:
  - {id: injection, name: Forged DNS, targets: [{kind: dns, host: inj.example, expect: {prefixes: lab}}]}
  - {id: blackhole, name: Blackholed, targets: [{kind: tcp, host: slow.example, port: 443, expect: {prefixes: lab}}]}
  - {id: unreachable, name: ICMP, targets: [{kind: tcp, host: unreach.example, port: 443, expect: {prefixes: lab}}]}
  - {id: sni-reset, name: RST after ClientHello, targets: [{kind: tls, host: rst.example, expect: {prefixes: lab}}]}
  - {id: mitm, name: Interception, targets: [{kind: tls, host: mitm.example, port: 443, expect: {prefixes: lab}}]}
  - {id: blockpage, name: Block page, targets: [{kind: http, url: "http://blocked.example/", expect: {prefixes: lab, status: [200]}}]}
  - {id: tcp-dns, name: DNS over TCP, targets: [{kind: dns, host: tcp.example, expect: {prefixes: lab}}]}
  - {id: ipv6, name: IPv6, targets: [{kind: tcp, host: v6.example, port: 80, expect: {prefixes: lab}}]}
"""

CENSORED_VERDICTS = {
    "injection": ["blocked", "dns-injection"],
    "blackhole": ["blocked", "tcp-timeout"],
    "unreachable": ["blocked", "tcp-unreachable"],
    "sni-reset": ["blocked", "tls-reset"],
    "mitm": ["blocked", "tls-mitm"],
    "blockpage": ["blocked", "http-blockpage"],
    "tcp-dns": ["reachable", "ok"],
    "ipv6": ["reachable", "ok"],
}

BLOCK_PAGE = b"<html><head><title>Blocked</title></head><body>Access denied</body></html>"


def _lookups(cap: Capture, t: float, name: str, address: str | None) -> float:
    """The plan's A then AAAA lookups; returns when they are done."""
    v6 = address is not None and ":" in address
    dns_exchange(cap, t, name, "A", [(0.01, [address] if address and not v6 else [], 64)])
    dns_exchange(cap, t + 0.51, name, "AAAA", [(0.01, [address] if v6 else [], 64)])
    return t + 1.02


def censored(directory: Path) -> tuple[Path, Path]:
    """Write censored.pcap and censored.yaml into ``directory``."""
    cap = Capture()
    # Controls.
    dns_exchange(cap, 0.0, "ok.example", "A", [(0.01, [OK], 64)])
    t = _lookups(cap, 0.6, "ok.example", OK)
    conn = Conversation(cap, CLIENT, OK, 443)
    conn.handshake(t)
    conn.close(t + 0.01)
    # A forged answer races the real one, and gives itself away by its TTL.
    dns_exchange(cap, 2.0, "inj.example", "A", [(0.002, [FORGED], 250), (0.03, [OK], 57)])
    # SYNs into a black hole: retransmitted, never answered.
    t = _lookups(cap, 3.0, "slow.example", "198.51.100.20")
    conn = Conversation(cap, CLIENT, "198.51.100.20", 443)
    for retry in (0.0, 1.0, 3.0):
        conn.syn(t + retry)
    # A router answers the SYN with "host unreachable".
    t = _lookups(cap, 5.0, "unreach.example", "198.51.100.30")
    conn = Conversation(cap, CLIENT, "198.51.100.30", 443)
    conn.syn(t)
    icmp_unreachable(cap, t + 0.02, conn)
    # A ClientHello in three segments, last first; an on-path box resets it
    # with a TTL the server's own packets do not have.
    t = _lookups(cap, 7.0, "rst.example", "198.51.100.40")
    conn = Conversation(cap, CLIENT, "198.51.100.40", 443, server_ttl=52)
    conn.handshake(t)
    conn.send(t + 0.01, record(22, client_hello("rst.example", padding=300)), pieces=3, reverse=True)
    conn.server_reset(t + 0.02, ttl=61)
    # TLS 1.2 interception: a self-signed certificate in clear, and the
    # client's unknown_ca alert.
    t = _lookups(cap, 9.0, "mitm.example", "198.51.100.50")
    conn = Conversation(cap, CLIENT, "198.51.100.50", 443)
    conn.handshake(t)
    conn.send(t + 0.01, record(22, client_hello("mitm.example", random=b"\x33" * 32)))
    conn.receive(t + 0.02, record(22, server_hello() + certificate12([self_signed("mitm.example")])
                                  + bytes([14, 0, 0, 0])))
    conn.send(t + 0.03, alert(2, 48))
    conn.close(t + 0.04)
    # A block page, chunked.
    t = _lookups(cap, 11.0, "blocked.example", "198.51.100.60")
    conn = Conversation(cap, CLIENT, "198.51.100.60", 80)
    conn.handshake(t)
    conn.send(t + 0.01, b"GET / HTTP/1.1\r\nHost: blocked.example\r\nAccept: */*\r\n\r\n")
    half = len(BLOCK_PAGE) // 2
    body = (f"{half:x}\r\n".encode() + BLOCK_PAGE[:half] + b"\r\n"
            + f"{len(BLOCK_PAGE) - half:x}\r\n".encode() + BLOCK_PAGE[half:] + b"\r\n0\r\n\r\n")
    conn.receive(t + 0.02, b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + body)
    conn.close(t + 0.03)
    # DNS over TCP.
    dns_exchange(cap, 13.0, "tcp.example", "A", [(0.01, [OK], 64)], tcp=True)
    # IPv6 only: no A data, an AAAA answer, a connect over IPv6.
    t = _lookups(cap, 14.0, "v6.example", "2001:db8::10")
    conn = Conversation(cap, CLIENT6, "2001:db8::10", 80)
    conn.handshake(t)
    conn.close(t + 0.01)
    # Keep the capture going past the blackholed connect's timeout.
    dns_exchange(cap, 20.0, "ok.example", "A", [(0.01, [OK], 64)])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "censored.yaml").write_text(CENSORED_LIST)
    return cap.write(directory / "censored.pcap"), directory / "censored.yaml"
