"""Timed downloads rebuilt from packet times (HTTPObservation.transfer), as
probe.net.http times them: from the end of the response head to the last
body byte read, cut at the download budget (the client then resets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcap_builders import CLIENT, Capture, Conversation, list_yaml
from pcap_scenarios import _lookups

from probe.lists import load_testlist
from probe.model import Transfer
from probe.replay import replay_report

FAST, SLOW = "198.51.100.10", "198.51.100.20"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 262144\r\n\r\n"
PIECE = 1 << 14  # 16 KiB of body per segment

LIST = list_yaml("timed", """\
controls:
  - {kind: dns, host: fast.example, expect: {prefixes: lab}}
  - {kind: http, url: "http://fast.example/big", throughput: true, expect: {prefixes: lab}}
features:
  - id: media
    name: Media
    targets: [{kind: http, url: "http://slow.example/big", throughput: true, expect: {prefixes: lab}}]
""")


def download(cap: Capture, t: float, host: str, address: str, pieces: list[float],
             reset: float | None) -> None:
    """The plan's lookups, then GET /big: the head at +0.02 s, 16 KiB of body
    at each of ``pieces`` (seconds after the head), and the client's RST at
    ``reset`` (after the head), else a FIN once the body is complete."""
    start = _lookups(cap, t, host, address)
    conn = Conversation(cap, CLIENT, address, 80)
    conn.handshake(start)
    conn.send(start + 0.01, f"GET /big HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = start + 0.02
    conn.receive(head, HEAD)
    for at in pieces:
        if reset is not None and at > reset:
            # Still in flight when the client reset: never read.
            conn.cap.add(head + at, conn._s("PA", b"x" * PIECE))
            conn.sseq += PIECE
            continue
        conn.receive(head + at, b"x" * PIECE)
    if reset is not None:
        conn.cap.add(head + reset, conn._c("R"))
    else:
        conn.close(head + pieces[-1] + 0.001)


def replay(tmp_path: Path, cap: Capture) -> dict[str, Any]:
    (tmp_path / "timed.yaml").write_text(LIST)
    return replay_report(cap.write(tmp_path / "timed.pcap"), load_testlist(tmp_path / "timed.yaml")).report


def fetch(report: dict[str, Any], scope: str) -> dict[str, Any]:
    """The one HTTP observation among the controls' or the targets'."""
    targets = report["controls"]["targets"] if scope == "controls" else report["targets"]
    (http,) = [o for t in targets for o in t["observations"] if o["kind"] == "http"]
    return http  # type: ignore[no-any-return]


def test_a_whole_body_is_timed_from_head_to_last_byte_and_a_cut_one_at_its_budget(
    tmp_path: Path,
) -> None:
    cap = Capture()
    download(cap, 0.0, "fast.example", FAST, [0.001 * (i + 1) for i in range(16)], None)
    # 64 kbit/s: 16 KiB every two seconds; the client gives up after 3 s.
    download(cap, 2.0, "slow.example", SLOW, [2.0, 4.0, 6.0], reset=3.002)
    report = replay(tmp_path, cap)
    fast_http = fetch(report, "controls")
    assert Transfer(**fast_http["transfer"]) == Transfer(262144, 0.016, False)
    assert fast_http["body_truncated"] is False and fast_http["failure"] is None
    slow_http = fetch(report, "targets")
    # Only what arrived before the client's reset was read.
    assert Transfer(**slow_http["transfer"]) == Transfer(PIECE, 3.0, True)
    assert slow_http["failure"] is None and slow_http["body_truncated"] is True
    assert slow_http["body_length"] == PIECE
    features = {f["id"]: (f["verdict"], f["method"]) for f in report["features"]}
    assert features == {"media": ("degraded", "throttled")}


def test_a_client_that_hung_up_before_its_budget_did_not_time_the_body(tmp_path: Path) -> None:
    cap = Capture()
    download(cap, 0.0, "fast.example", FAST, [0.001 * (i + 1) for i in range(16)], None)
    download(cap, 2.0, "slow.example", SLOW, [0.5, 2.0], reset=1.0)
    slow_http = fetch(replay(tmp_path, cap), "targets")
    # Not the budget running out: the download failed, and was not timed.
    assert slow_http["failure"] is not None and slow_http["transfer"] is None
