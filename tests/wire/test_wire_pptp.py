"""probe.wire.pptp: Start-Control-Connection-Request out, the reply parsed."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from environment import require
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.pptp import (
    ControlMessage,
    is_start_reply,
    parse_control_message,
    split_messages,
    start_control_connection_reply,
    start_control_connection_request,
)

# pptpd 1.4.0 (Debian bookworm) answering start_control_connection_request() on loopback.
PPTPD_REPLY = bytes.fromhex(
    "009c00011a2b3c4d000200000100010000000000000000000001000"
    "16c6f63616c" + "00" * 59 + "6c696e7578" + "00" * 59
)
STOP_REPLY = struct.pack("!HHIHHBBH", 16, 1, 0x1A2B3C4D, 4, 0, 1, 0, 0)
ECHO_REQUEST = struct.pack("!HHIHHI", 16, 1, 0x1A2B3C4D, 5, 0, 7)


def test_request_layout() -> None:
    data = start_control_connection_request(hostname="probe", vendor="lab")
    assert len(data) == 156
    # RFC 2637 section 2.1, field by field.
    assert struct.unpack_from("!HHIHHHHIIHH", data) == (
        156, 1, 0x1A2B3C4D, 1, 0, 0x0100, 0, 3, 3, 0, 0)
    assert data[28:92] == b"probe" + bytes(59) and data[92:156] == b"lab" + bytes(61)


def test_request_round_trip() -> None:
    message = parse_control_message(start_control_connection_request(hostname="h", vendor="v"))
    assert message == ControlMessage(1, "Start-Control-Connection-Request", 0x0100, None, None,
                                     "h", "v")
    assert not is_start_reply(message)


def test_pptpd_reply() -> None:
    message = parse_control_message(PPTPD_REPLY)
    assert message == ControlMessage(2, "Start-Control-Connection-Reply", 0x0100, 1, 0,
                                     "local", "linux")
    assert is_start_reply(message)


@pytest.mark.parametrize(("data", "name", "result"), [
    (start_control_connection_reply(result_code=5), "Start-Control-Connection-Reply", 5),
    (STOP_REPLY, "Stop-Control-Connection-Reply", 1),
    (ECHO_REQUEST, "Echo-Request", None),
])
def test_other_messages(data: bytes, name: str, result: int | None) -> None:
    message = parse_control_message(data)
    assert (message.name, message.result_code) == (name, result)


@pytest.mark.parametrize("chunk", [1, 5, 155, 156, 1000])
def test_split_messages_from_a_stream(chunk: int) -> None:
    stream = PPTPD_REPLY + ECHO_REQUEST + STOP_REPLY[:9]
    buffer, found = b"", []
    for i in range(0, len(stream), chunk):
        messages, buffer = split_messages(buffer + stream[i : i + chunk])
        found += messages
    assert found == [PPTPD_REPLY, ECHO_REQUEST] and buffer == STOP_REPLY[:9]


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 400 Bad Request\r\n",  # length 0x4854
    b"\x00\x05" + bytes(10),  # shorter than a header
])
def test_split_refuses_what_is_not_pptp(data: bytes) -> None:
    with pytest.raises(WireError, match="not PPTP"):
        split_messages(data)


@pytest.mark.parametrize(("data", "error"), [
    (PPTPD_REPLY[:11], "shorter than the header"),
    (PPTPD_REPLY[:4] + b"\x1a\x2b\x3c\x4e" + PPTPD_REPLY[8:], "magic cookie"),
    (PPTPD_REPLY[:2] + b"\x00\x02" + PPTPD_REPLY[4:], "not a control message"),
    (PPTPD_REPLY + b"\x00", "length field"),
    (PPTPD_REPLY[:8] + b"\x00\x10" + PPTPD_REPLY[10:], "unknown control message type 16"),
    (b"\x00\x14" + ECHO_REQUEST[2:] + bytes(4), "Echo-Request: 20 bytes"),
])
def test_malformed_messages(data: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        parse_control_message(data)


def test_names_must_fit() -> None:
    with pytest.raises(ValueError, match="63"):
        start_control_connection_request(hostname="x" * 64)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_hostile_bytes_raise_only_wire_error(data: bytes) -> None:
    for parse in (parse_control_message, split_messages):
        try:
            parse(data)
        except WireError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=20), st.integers(0, 2**16))
def test_mutated_replies_raise_only_wire_error(noise: bytes, where: int) -> None:
    data = bytearray(PPTPD_REPLY)
    at = where % len(data)
    data[at : at + len(noise)] = noise
    try:
        for message in split_messages(bytes(data))[0]:
            parse_control_message(message)
    except WireError:
        pass


# -- interop with pptpd --------------------------------------------------------


@pytest.fixture
def pptpd(tmp_path: Path) -> Iterator[None]:
    require(root=True, tools=("pptpd",))
    # pptpd only ever listens on TCP 1723; `listen` keeps it on loopback. The
    # addresses are handed to pppd only for calls, which this test never makes.
    (tmp_path / "pptpd.conf").write_text(
        f"listen 127.0.0.1\noption {tmp_path}/ppp-options\n"
        "localip 198.51.100.1\nremoteip 198.51.100.2-9\n")
    (tmp_path / "ppp-options").write_text("name pptpd\nrefuse-pap\n")
    server = subprocess.Popen(
        ["pptpd", "--fg", "-c", str(tmp_path / "pptpd.conf"), "-o", str(tmp_path / "ppp-options"),
         "-p", str(tmp_path / "pptpd.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        server.terminate()
        server.wait(timeout=20)


def connect(port: int) -> socket.socket:
    for _ in range(200):  # until the server listens (it starts in the background)
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_pptpd_answers_start_control_connection_request(pptpd: None) -> None:
    with connect(1723) as tcp:
        tcp.sendall(start_control_connection_request(hostname="probe", vendor="probe"))
        buffer, messages = b"", ()
        while not messages:
            data = tcp.recv(4096)
            assert data, "pptpd closed the connection without a reply"
            messages, buffer = split_messages(buffer + data)
    message = parse_control_message(messages[0])
    assert is_start_reply(message)
    assert (message.protocol_version, message.result_code, message.error_code) == (0x0100, 1, 0)
