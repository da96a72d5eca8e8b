"""probe.replay.capfile: pcap and pcapng, whole, damaged, or not captures at all."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcap_builders import write_pcap

from probe.capture import write_pcapng
from probe.replay.capfile import CaptureReader
from probe.replay.errors import ReplayError

FRAMES = [(1_800_000_000_123_456_789, b"\x01" * 60), (1_800_000_001_000_000_000, b"\x02" * 1514)]


def read(path: Path) -> tuple[list[tuple[int, int, bytes]], CaptureReader]:
    reader = CaptureReader(path)
    return list(reader), reader


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nanoseconds", [True, False])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, endian: str, nanoseconds: bool) -> None:
    path = write_pcap(tmp_path / "a.pcap", FRAMES, linktype=1, nanoseconds=nanoseconds, endian=endian)
    packets, reader = read(path)
    expected_ns = FRAMES[0][0] if nanoseconds else FRAMES[0][0] // 1000 * 1000
    assert packets[0] == (expected_ns, 1, FRAMES[0][1])
    assert packets[1][2] == FRAMES[1][1]
    assert (reader.packets, reader.format, reader.warnings) == (2, "pcap", [])


def test_pcapng_round_trip_with_secrets(tmp_path: Path) -> None:
    source = write_pcap(tmp_path / "a.pcap", FRAMES, linktype=113)
    out = tmp_path / "a.pcapng"
    write_pcapng(source, out, b"CLIENT_RANDOM aa bb\nSERVER_HANDSHAKE_TRAFFIC_SECRET cc dd\n")
    packets, reader = read(out)
    assert packets == [(ns, 113, frame) for ns, frame in FRAMES]
    assert reader.format == "pcapng"
    assert reader.secrets == [b"CLIENT_RANDOM aa bb", b"SERVER_HANDSHAKE_TRAFFIC_SECRET cc dd"]


def _block(kind: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack(endian + "II", kind, 12 + len(body)) + body + struct.pack(endian + "I", 12 + len(body))


def _shb(endian: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def test_pcapng_big_endian_interfaces_resolutions_and_simple_blocks(tmp_path: Path) -> None:
    e = ">"
    tsresol_ms = struct.pack(e + "HHB3x", 9, 1, 3) + struct.pack(e + "HH", 0, 0)
    data = (_shb(e)
            + _block(1, struct.pack(e + "HHI", 1, 0, 0), e)  # Ethernet, microseconds
            + _block(1, struct.pack(e + "HHI", 101, 0, 0) + tsresol_ms, e)  # raw IP, milliseconds
            + _block(6, struct.pack(e + "IIIII", 1, 0, 5000, 3, 3) + b"abc", e)
            + _block(6, struct.pack(e + "IIIII", 0, 0, 7, 2, 2) + b"de", e)
            + _block(3, struct.pack(e + "I", 4) + b"wxyz", e)  # simple: interface 0, no time
            + _block(0x0BAD, b"unknown blocks are skipped", e))
    path = tmp_path / "be.pcapng"
    path.write_bytes(data)
    packets, reader = read(path)
    assert packets == [(5_000_000_000, 101, b"abc"), (7000, 1, b"de"), (7000, 1, b"wxyz")]
    assert reader.warnings == []


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file"),
    (b"hello, this is not a capture\n", "a text file"),
    (gzip.compress(b"x" * 100), "gzip"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header"),
    (b"\x00\x01\x02\x03" * 10, "not a pcap or pcapng capture"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147), "unsupported link type 147"),
    (_shb()[:10], "truncated"),
])
def test_unreadable_files_are_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(ReplayError) as error:
        list(CaptureReader(path))
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="No such file"):
        list(CaptureReader(tmp_path / "absent.pcap"))


def test_truncated_capture_keeps_what_was_read(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "cut.pcap", FRAMES)
    path.write_bytes(path.read_bytes()[:-100])
    packets, reader = read(path)
    assert len(packets) == 1
    (warning,) = reader.warnings
    assert "packet 2 at byte 100" in warning and "truncated packet" in warning


def test_corrupt_record_header_part_way(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "bad.pcap", FRAMES)
    data = bytearray(path.read_bytes())
    data[24 + 16 + 60 + 8 : 24 + 16 + 60 + 12] = struct.pack("<I", 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    packets, reader = read(path)
    assert len(packets) == 1 and "corrupt header" in reader.warnings[0]


def test_corrupt_pcapng_block_part_way(tmp_path: Path) -> None:
    source = write_pcap(tmp_path / "a.pcap", FRAMES)
    out = tmp_path / "a.pcapng"
    write_pcapng(source, out, b"")
    data = out.read_bytes()
    out.write_bytes(data[:-4] + b"\xff\xff\xff\xff")  # trailing length wrong
    packets, reader = read(out)
    assert len(packets) == 1 and "trailing length" in reader.warnings[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64), st.integers(0, 2000), st.sampled_from(["pcap", "pcapng"]))
def test_fuzzed_captures_only_raise_replay_error(tmp_path: Path, noise: bytes, where: int,
                                                   kind: str) -> None:
    source = write_pcap(tmp_path / "f.pcap", FRAMES)
    if kind == "pcapng":
        write_pcapng(source, tmp_path / "f.pcapng", b"KEY aa bb\n")
        source = tmp_path / "f.pcapng"
    data = bytearray(source.read_bytes())
    at = where % len(data)
    data[at : at + len(noise)] = noise
    path = tmp_path / f"fuzzed.{kind}"
    path.write_bytes(bytes(data))
    try:
        list(CaptureReader(path))
    except ReplayError as error:
        assert "\n" not in str(error)
