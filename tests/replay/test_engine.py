"""probe.replay.engine and friends: flows rebuilt from packets."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcap_builders import CLIENT, RESOLVER, Capture, Conversation, dns_exchange, ip
from pcap_golden import FIXTURES
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.packet import Raw

from probe.lists import load_testlist
from probe.model import Failure
from probe.replay import ReplayError, flow_account, replay_report
from probe.replay.capfile import CaptureReader
from probe.replay.engine import CaptureSummary, ExtractOptions, Extractor
from probe.replay.observe import dns_observation
from probe.replay.records import DNSExchange, Record, TCPConnection
from probe.replay.report import default_settings
from probe.replay.stream import Stream

SETTINGS = default_settings()


def run(cap: Capture, tmp_path: Path, **options: object) -> tuple[list[Record], CaptureSummary]:
    records: list[Record] = []
    path = cap.write(tmp_path / "c.pcap")
    summary = Extractor(ExtractOptions(**options), records.append).run(CaptureReader(path))  # type: ignore[arg-type]
    return records, summary


def test_stream_reassembles_out_of_order_overlapping_and_retransmitted() -> None:
    stream = Stream()
    stream.syn(999)
    assert stream.segment(1006, b"world") == b""  # early: held
    assert stream.segment(1000, b"hel") == b"hel"
    assert stream.segment(1001, b"ello ") == b"lo world"  # overlaps, fills the hole
    assert stream.segment(1000, b"hello") == b""  # retransmission
    assert stream.high == 11 and not stream.gap


def test_stream_wraps_around_sequence_space() -> None:
    stream = Stream()
    stream.syn(2**32 - 3)
    assert stream.segment(2**32 - 2, b"ab") + stream.segment(0, b"cd") == b"abcd"


def test_dns_timeout_icmp_refusal_and_garbage(tmp_path: Path) -> None:
    cap = Capture()
    dns_exchange(cap, 0.0, "silent.example", "A", [])
    port = cap._port + 1
    dns_exchange(cap, 0.1, "refused.example", "A", [])
    cap.add(0.11, IP(src=RESOLVER, dst=CLIENT) / ICMP(type=3, code=3)
            / IPerror(src=CLIENT, dst=RESOLVER) / UDPerror(sport=port, dport=53))
    garbage_port = cap._port + 1
    dns_exchange(cap, 0.2, "garbage.example", "A", [])
    cap.add(0.21, ip(RESOLVER, CLIENT) / UDP(sport=53, dport=garbage_port) / Raw(b"\x00\x01junk"))
    cap.add(9.0, ip(CLIENT, RESOLVER) / UDP(sport=1, dport=9) / Raw(b"end"))
    records, summary = run(cap, tmp_path)
    found = {r.name: dns_observation(r, SETTINGS, summary.duration)
             for r in records if isinstance(r, DNSExchange)}
    assert found["silent.example"].failure is Failure.GENERIC_TIMEOUT
    assert found["silent.example"].t == 5.0  # judged by the live DNS timeout
    assert found["refused.example"].failure is Failure.CONNECTION_REFUSED
    assert found["garbage.example"].failure is Failure.DNS_SERVER_MISBEHAVING


def test_late_responses_are_kept_but_not_observed(tmp_path: Path) -> None:
    cap = Capture()
    dns_exchange(cap, 0.0, "race.example", "A",
                 [(0.001, ["203.0.113.9"], 240), (0.002, ["203.0.113.9"], 240), (1.5, ["198.51.100.3"], 55)])
    records, summary = run(cap, tmp_path)
    (exchange,) = [r for r in records if isinstance(r, DNSExchange)]
    assert [r.ip_ttl for r in exchange.responses] == [240, 240, 55]
    assert [r.ip_id for r in exchange.responses] == [1000, 1001, 1002]
    # The live check stops listening 0.5 s after the first answer.
    assert len(dns_observation(exchange, SETTINGS, summary.duration).responses) == 2


def test_http_keep_alive_body_cap_and_title(tmp_path: Path) -> None:
    cap = Capture()
    conn = Conversation(cap, CLIENT, "198.51.100.60", 80)
    conn.handshake(0.0)
    conn.send(0.01, b"GET /a HTTP/1.1\r\nHost: web.example\r\n\r\n")
    conn.receive(0.02, b"HTTP/1.1 301 Moved\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n")
    conn.send(0.03, b"GET /b HTTP/1.1\r\nHost: web.example\r\n\r\n")
    page = b"<title>Big page</title>" + b"x" * 5000
    conn.receive(0.04, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(page) + page)
    conn.close(0.05)
    records, _ = run(cap, tmp_path, body_cap=1000, needles=("Big", "absent"))
    (tcp,) = [r for r in records if isinstance(r, TCPConnection)]
    first, second = tcp.http
    assert (first.status, first.target, second.status, second.target) == (301, "/a", 200, "/b")
    assert second.body_length == 1000 and second.body_truncated and second.title == "Big page"
    assert dict(second.needles) == {"Big": True, "absent": None}  # unknowable past the cap


def test_finished_flows_are_forgotten(tmp_path: Path) -> None:
    """Memory follows open flows: closed connections leave the tables."""
    cap = Capture()
    for i in range(50):
        conn = Conversation(cap, CLIENT, "198.51.100.70", 443)
        conn.handshake(i * 2.0)
        conn.close(i * 2.0 + 0.01)
    path = cap.write(tmp_path / "many.pcap")
    sizes: list[int] = []
    extractor = Extractor(ExtractOptions(), lambda record: sizes.append(len(extractor._tcp)))
    extractor.run(CaptureReader(path))
    assert len(sizes) == 50 and max(sizes) <= 4


def test_connection_outcomes(tmp_path: Path) -> None:
    cap = Capture()
    Conversation(cap, CLIENT, "198.51.100.80", 443).refuse(0.0)
    reset = Conversation(cap, CLIENT, "198.51.100.81", 443, server_ttl=50)
    reset.handshake(1.0)
    reset.server_reset(1.1, ttl=60)
    records, _ = run(cap, tmp_path)
    by_server = {r.server: r for r in records if isinstance(r, TCPConnection)}
    assert by_server["198.51.100.80"].refused
    late = by_server["198.51.100.81"]
    assert not late.refused and late.resets[0].established and late.resets[0].ttl == 60
    assert late.server_ttls == (50,)


def test_flows_leave_no_reference_cycles(tmp_path: Path) -> None:
    """The extraction runs with the cyclic collector off: every flow must be
    freed by reference counting alone."""
    import gc

    cap = Capture()
    for i in range(20):
        conn = Conversation(cap, CLIENT, "198.51.100.90", 80)
        conn.handshake(i * 3.0)
        conn.send(i * 3.0 + 0.01, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        conn.receive(i * 3.0 + 0.02, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.close(i * 3.0 + 0.03)
        tls = Conversation(cap, CLIENT, "198.51.100.91", 443)
        tls.handshake(i * 3.0 + 1)
        tls.send(i * 3.0 + 1.01, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
        tls.server_reset(i * 3.0 + 1.02)
        dns_exchange(cap, i * 3.0 + 2, "c.example", "A", [(0.01, ["198.51.100.1"], 64)])
    path = cap.write(tmp_path / "cycles.pcap")
    gc.collect()
    gc.disable()
    try:
        Extractor(ExtractOptions(), lambda record: None).run(CaptureReader(path))
        assert gc.collect() < 20
    finally:
        gc.enable()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=6)), max_size=8),
       st.sampled_from(["censored.pcap", "loopback.pcapng"]))
def test_damaged_captures_never_crash_the_replay(tmp_path: Path, edits: list[tuple[int, bytes]],
                                                 name: str) -> None:
    """Hostile bytes anywhere in a capture: a ReplayError or a (partial) replay."""
    data = bytearray((FIXTURES / name).read_bytes())
    for where, noise in edits:
        at = 32 + where % (len(data) - 32)  # the file header stays sane
        data[at : at + len(noise)] = noise
    path = tmp_path / name
    path.write_bytes(bytes(data))
    try:
        flow_account(path, lambda entry: entry.to_dict())
        replay_report(path, load_testlist(FIXTURES / name.replace(".pcapng", ".yaml")
                                          .replace(".pcap", ".yaml")))
    except ReplayError as error:
        assert "\n" not in str(error)
