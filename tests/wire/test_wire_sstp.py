"""probe.wire.sstp: the HTTP request and response, then SSTP packets, both ways."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time

import pytest
from environment import require
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import SERVER, Certs

from probe.wire import WireError
from probe.wire.sstp import (
    ATTRIB_CRYPTO_BINDING_REQ,
    ATTRIB_STATUS_INFO,
    DuplexPostRequest,
    SSTPPacket,
    call_connect_ack,
    call_connect_nak,
    call_connect_request,
    control_packet,
    duplex_post_request,
    duplex_post_response,
    parse_duplex_post_request,
    parse_duplex_post_response,
    parse_packet,
    split_packets,
)

GUID = "95ca8fa9-808f-4470-9581-d4067ba918e7"
REQUEST = (
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
    b"Host: vpn.example\r\n"
    b"Content-Length: 18446744073709551615\r\n"
    b"SSTPCORRELATIONID: {95CA8FA9-808F-4470-9581-D4067BA918E7}\r\n"
    b"\r\n"
)
# What sstp-client 1.0.18 sends: header order as ours, a correlation id that is not a GUID.
SSTPC_REQUEST = (
    b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\nContent-Length: 18446744073709551615\r\n"
    b"SSTPCORRELATIONID: {196369AA-C038-2E94-6EB47734}\r\n\r\n"
)
# [MS-SSTP] 2.2.9: version 1.0, control, 14 bytes; type 1, one attribute: protocol id 1 (PPP).
CONNECT_REQUEST = bytes.fromhex("1001000e" "00010001" "00010006" "0001")
WINDOWS_OK = (b"HTTP/1.1 200\r\nContent-Length: 18446744073709551615\r\n"
              b"Server: Microsoft-HTTPAPI/2.0\r\nDate: Mon, 23 Nov 2026 20:54:07 GMT\r\n\r\n")


def test_request_bytes_and_round_trip() -> None:
    assert duplex_post_request("vpn.example", GUID) == REQUEST
    assert duplex_post_request("vpn.example", "{" + GUID.upper() + "}") == REQUEST
    assert parse_duplex_post_request(REQUEST + CONNECT_REQUEST) == DuplexPostRequest(
        "vpn.example", "{95CA8FA9-808F-4470-9581-D4067BA918E7}", len(REQUEST))
    assert parse_duplex_post_request(SSTPC_REQUEST).correlation_id == (  # type: ignore[union-attr]
        "{196369AA-C038-2E94-6EB47734}")
    assert parse_duplex_post_request(REQUEST[:-1]) is None
    with pytest.raises(ValueError):
        duplex_post_request("vpn.example", "not-a-guid")


@pytest.mark.parametrize(("data", "error"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not an SSTP request"),
    (REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"), "not an SSTP request"),
    (REQUEST.replace(b"Host: vpn.example\r\n", b""), "without a Host"),
    (REQUEST.replace(b"18446744073709551615", b"0"), "Content-Length"),
    (b"SSTP_DUPLEX_POST " + b"x" * 110_000, "longer than"),
])
def test_bad_requests(data: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        parse_duplex_post_request(data)


@pytest.mark.parametrize(("data", "expected"), [
    (WINDOWS_OK + CONNECT_REQUEST, (200, len(WINDOWS_OK))),
    (duplex_post_response() + call_connect_ack(bytes(32)), (200, len(duplex_post_response()))),
    (b"HTTP/1.1 100 Continue\r\n\r\n" + WINDOWS_OK, (200, 25 + len(WINDOWS_OK))),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello", (404, 45)),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x10\x01", (101, 50)),
    (WINDOWS_OK[:-1], None),
    (b"HTTP/1.1 100 Continue\r\n\r\n", None),
])
def test_responses(data: bytes, expected: tuple[int, int] | None) -> None:
    assert parse_duplex_post_response(data) == expected


def test_response_builder() -> None:
    ok = b"HTTP/1.1 200\r\nContent-Length: 18446744073709551615\r\n"
    assert duplex_post_response().startswith(ok)
    refusal = duplex_post_response(403, "Forbidden")
    assert parse_duplex_post_response(refusal) == (403, len(refusal))


@pytest.mark.parametrize("data", [
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    b"\x15\x03\x03\x00\x02\x02\x28\r\n\r\n",  # a TLS alert where HTTP should be
])
def test_responses_that_are_not_http(data: bytes) -> None:
    with pytest.raises(WireError):
        parse_duplex_post_response(data)


def test_control_packets() -> None:
    assert call_connect_request() == CONNECT_REQUEST
    assert parse_packet(CONNECT_REQUEST) == SSTPPacket(
        True, 1, "SSTP_MSG_CALL_CONNECT_REQUEST", ((1, b"\x00\x01"),))
    ack = call_connect_ack(b"\x5a" * 32)
    # 2.2.10: 48 bytes; crypto binding request attribute of 40: 3 reserved, bitmask 2, nonce.
    assert ack[:12] == bytes.fromhex("10010030" "00020001" "00040028")
    assert parse_packet(ack).attributes == (
        (ATTRIB_CRYPTO_BINDING_REQ, b"\x00\x00\x00\x02" + b"\x5a" * 32),)
    nak = parse_packet(call_connect_nak())
    assert (nak.name, nak.attributes) == (
        "SSTP_MSG_CALL_CONNECT_NAK", ((ATTRIB_STATUS_INFO, bytes.fromhex("000000010000" "0004")),))
    assert parse_packet(control_packet(0x77)).name == "0x0077"
    with pytest.raises(ValueError):
        call_connect_ack(b"short")


def test_data_packets_and_reserved_bits() -> None:
    assert parse_packet(b"\x10\x00\x00\x06\xff\x03") == SSTPPacket(False, None, "data", ())
    # The four R bits above the 12-bit length are ignored on receipt (2.2.1).
    assert parse_packet(b"\x10\x01\xf0\x08\x00\x08\x00\x00").name == "SSTP_MSG_ECHO_REQUEST"


@pytest.mark.parametrize("chunk", [1, 3, 14, 100])
def test_split_packets_from_a_stream(chunk: int) -> None:
    ack = call_connect_ack(bytes(32))
    stream = ack + CONNECT_REQUEST + ack[:5]
    buffer, found = b"", []
    for i in range(0, len(stream), chunk):
        packets, buffer = split_packets(buffer + stream[i : i + chunk])
        found += packets
    assert found == [ack, CONNECT_REQUEST] and buffer == ack[:5]


@pytest.mark.parametrize(("data", "error"), [
    (b"\x10\x01\x00", "shorter than the header"),
    (b"\x11\x01\x00\x04", "version 0x11"),
    (b"\x10\x01\x00\x03", "below its header"),
    (CONNECT_REQUEST + b"\x00", "length field"),
    (b"\x10\x01\x00\x08\x00\x01\x00\x01", "needs 4 bytes"),  # one attribute announced, none there
    (b"\x10\x01\x00\x0c\x00\x01\x00\x01\x00\x01\x00\x03", "below its header"),
    (b"\x10\x01\x00\x0e\x00\x01\x00\x00\x00\x01\x00\x06\x00\x01", "trailing"),  # count 0
])
def test_malformed_packets(data: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        parse_packet(data)


def test_split_refuses_what_is_not_sstp() -> None:
    with pytest.raises(WireError, match="version"):
        split_packets(b"<html>")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_raise_only_wire_error(data: bytes) -> None:
    for parse in (parse_packet, split_packets, parse_duplex_post_response,
                  parse_duplex_post_request):
        try:
            parse(data)
        except WireError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([WINDOWS_OK + CONNECT_REQUEST, REQUEST, call_connect_ack(bytes(32))]),
       st.binary(min_size=1, max_size=20), st.integers(0, 2**16))
def test_mutated_messages_raise_only_wire_error(base: bytes, noise: bytes, where: int) -> None:
    data = bytearray(base)
    at = where % len(data)
    data[at : at + len(noise)] = noise
    for parse in (parse_packet, split_packets, parse_duplex_post_response,
                  parse_duplex_post_request):
        try:
            parse(bytes(data))
        except WireError:
            pass


# -- interop with sstp-client (Debian has no SSTP server) ---------------------


def serve_one(listener: socket.socket, context: ssl.SSLContext, seen: dict[str, object]) -> None:
    """The lab responder's first exchange, from this module's server-side codecs."""
    raw, _ = listener.accept()
    # sstpc 1.0.18 stops ("The event loop terminated unsuccessfully") when the server's
    # first TLS flight is already there at its first read, which a loopback server manages
    # and a real one across a network does not: answer its ClientHello a moment later.
    time.sleep(0.2)
    with context.wrap_socket(raw, server_side=True) as tls:
        tls.settimeout(20)
        buffer = b""
        while (request := parse_duplex_post_request(buffer)) is None:
            buffer += tls.recv(4096)
        seen["request"] = request
        tls.sendall(duplex_post_response())
        buffer = buffer[request.consumed :]
        packets: tuple[bytes, ...] = ()
        while not packets:
            data = tls.recv(4096)
            if not data:
                return
            packets, buffer = split_packets(buffer + data)
        seen["packet"] = packets[0]
        tls.sendall(call_connect_ack(bytes(range(32))))


def sstpc_once(certs: Certs, context: ssl.SSLContext) -> tuple[dict[str, object], str]:
    """One sstpc run against serve_one: what the server saw, and sstpc's log."""
    seen: dict[str, object] = {}
    with socket.socket() as listener:
        listener.bind((SERVER, 0))
        listener.listen(1)
        listener.settimeout(20)
        server = threading.Thread(target=serve_one, args=(listener, context, seen))
        server.start()
        # --nolaunchpppd: no pppd; sstpc reads PPP frames from stdin, so stdin is a pipe
        # kept open until the server is done (at end of file sstpc stops at once). It gives
        # up by itself once the server closes after its ACK.
        client = subprocess.Popen(
            ["sstpc", "--nolaunchpppd", "--log-stderr", "--log-level", "4",
             "--ca-cert", str(certs.ca), "--user", "probe", "--password", "probe",
             f"{SERVER}:{listener.getsockname()[1]}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        server.join(timeout=30)
        log, _ = client.communicate(timeout=60)
    return seen, log


def test_sstp_client_speaks_with_our_codecs(certs: Certs) -> None:
    require(tools=("sstpc",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certs.good)
    seen, log = sstpc_once(certs, context)
    request = seen["request"]
    assert isinstance(request, DuplexPostRequest) and request.host == SERVER
    assert "packet" in seen, log
    assert seen["packet"] == call_connect_request()  # byte for byte what sstpc sends
    assert "CONNECT ACK" in log and "CRYPTO BIND REQ" in log, log  # it read our 200 and ACK
