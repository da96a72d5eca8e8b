"""Replay's extraction against tshark's on the same captures (skipped
without tshark; CI installs it with ``apt-get install tshark``)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest
from environment import require
from pcap_golden import FIXTURES

from probe.replay.capfile import CaptureReader
from probe.replay.engine import ExtractOptions, Extractor
from probe.replay.records import DNSExchange, Record, TCPConnection


@pytest.fixture(autouse=True)
def needs_tshark() -> None:
    require(tools=("tshark",))


def tshark(pcap: Path, *fields: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    command = ["tshark", "-n", "-r", str(pcap), *extra, "-T", "fields", "-E", "separator=|"]
    for field in fields:
        command += ["-e", field]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return [line.split("|") for line in done.stdout.splitlines()]


def records(pcap: Path) -> list[Record]:
    found: list[Record] = []
    Extractor(ExtractOptions(), found.append).run(CaptureReader(pcap))
    return found


def test_dns_answers_and_server_names_match_tshark() -> None:
    pcap = FIXTURES / "censored.pcap"
    # The ClientHello of rst.example arrives last segment first; tshark only
    # reassembles that when asked to.
    rows = tshark(pcap, "dns.flags.response", "dns.qry.name", "dns.a", "dns.aaaa",
                  "tls.handshake.extensions_server_name", "ip.ttl", "ipv6.hlim",
                  extra=("-o", "tcp.reassemble_out_of_order:TRUE"))
    theirs_dns = Counter(
        (name, ",".join(sorted(filter(None, (a + "," + aaaa).split(","))) ), ttl or hlim)
        for response, name, a, aaaa, _sni, ttl, hlim in rows if response in ("1", "True")
    )
    theirs_sni = Counter(sni for *_, sni, _ttl, _hlim in rows if sni)
    found = records(pcap)
    ours_dns = Counter(
        (r.name, ",".join(sorted(a.data for a in response.answers)), str(response.ip_ttl))
        for r in found if isinstance(r, DNSExchange) for response in r.responses
    )
    ours_sni = Counter(r.tls.client_hello.sni for r in found if isinstance(r, TCPConnection)
                       and r.tls is not None and r.tls.client_hello is not None)
    assert ours_dns == theirs_dns
    assert ours_sni == theirs_sni


def test_dns_on_another_port_matches_tshark_decoding_it() -> None:
    """The loopback run's resolver listens on a random port: replay finds
    its DNS by shape, tshark must be told the port."""
    pcap = FIXTURES / "loopback.pcapng"
    found = records(pcap)
    port = next(r.server_port for r in found if isinstance(r, DNSExchange))
    rows = tshark(pcap, "dns.flags.response", "dns.qry.name",
                  extra=("-d", f"udp.port=={port},dns"))
    theirs = Counter(name for response, name in rows if response in ("0", "False"))
    ours = Counter(r.name for r in found if isinstance(r, DNSExchange))
    assert ours == theirs
