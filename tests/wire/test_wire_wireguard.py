"""probe.wire.wireguard: the handshake initiation and the server's reply.

RESPONSE below is what wireguard-go (Debian 0.0.20220316) answered to the
pinned INITIATION, whose inputs are all fixed here; so the offline tests
check our response processing against a real implementation, and the live
test at the end repeats the exchange against a wireguard-go started here.
"""

from __future__ import annotations

import base64
import secrets
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from environment import require
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.wireguard import (
    CookieReply,
    HandshakeResponse,
    InitiatorState,
    initiation,
    parse_initiation,
    parse_key,
    parse_reply,
    public_key,
    tai64n,
)
from probe_lab.servers.ready import wait_for_text
from probe_lab.topology import child_env, popen_in, run_in

SERVER_PRIVATE = bytes(range(64, 96))
SERVER_PUBLIC = parse_key("eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo=")
CLIENT_PRIVATE = bytes(range(32))
CLIENT_PUBLIC = parse_key("j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=")
EPHEMERAL = bytes(range(32, 64))
INDEX = 0x11223344
TIMESTAMP = tai64n(1_700_000_000.5)


def pinned() -> tuple[bytes, InitiatorState]:
    return initiation(SERVER_PUBLIC, static_private=CLIENT_PRIVATE, ephemeral_private=EPHEMERAL,
                      sender_index=INDEX, timestamp=TIMESTAMP)


HANDSHAKE = dict(
    line.split() for line in (Path(__file__).parent / "fixtures" / "wireguard-handshake.txt")
    .read_text().splitlines() if not line.startswith("#")
)
INITIATION = bytes.fromhex(HANDSHAKE["initiation"])
RESPONSE = bytes.fromhex(HANDSHAKE["response"])
COOKIE = struct.pack("<II", 3, INDEX) + bytes(range(24)) + bytes(32)


def test_keys_in_wg_format() -> None:
    assert public_key(SERVER_PRIVATE) == SERVER_PUBLIC
    assert public_key(CLIENT_PRIVATE) == CLIENT_PUBLIC
    assert parse_key(" " + base64.b64encode(SERVER_PRIVATE).decode() + "\n") == SERVER_PRIVATE


@pytest.mark.parametrize(("text", "message"), [
    ("", "0 bytes, expected 32"),
    ("not base64!", "is not base64"),
    (base64.b64encode(bytes(31)).decode(), "31 bytes, expected 32"),
    ("eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo", "is not base64"),  # padding missing
])
def test_bad_keys(text: str, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_key(text)


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, "400000000000000a00000000"),
    (1_700_000_000.5, "400000006553f10a1d000000"),  # 500 ms, whitened to 2^24 ns
    (1_700_000_000.9, "400000006553f10a35000000"),
])
def test_tai64n(seconds: float, expected: str) -> None:
    assert tai64n(seconds).hex() == expected


def test_initiation_is_pinned_and_parses() -> None:
    message, state = pinned()
    assert message == INITIATION
    assert len(message) == 148 and message[:4] == b"\x01\x00\x00\x00"
    assert message[-16:] == bytes(16)  # mac2: no cookie
    assert parse_initiation(message) == INDEX
    assert (state.sender_index, state.ephemeral_private, state.static_private) == (
        INDEX, EPHEMERAL, CLIENT_PRIVATE)


def test_initiation_depends_on_every_input() -> None:
    message = pinned()[0]
    others = [
        initiation(CLIENT_PUBLIC, static_private=CLIENT_PRIVATE, ephemeral_private=EPHEMERAL,
                   sender_index=INDEX, timestamp=TIMESTAMP),
        initiation(SERVER_PUBLIC, static_private=EPHEMERAL, ephemeral_private=EPHEMERAL,
                   sender_index=INDEX, timestamp=TIMESTAMP),
        initiation(SERVER_PUBLIC, static_private=CLIENT_PRIVATE, ephemeral_private=CLIENT_PRIVATE,
                   sender_index=INDEX, timestamp=TIMESTAMP),
        initiation(SERVER_PUBLIC, static_private=CLIENT_PRIVATE, ephemeral_private=EPHEMERAL,
                   sender_index=INDEX + 1, timestamp=TIMESTAMP),
        initiation(SERVER_PUBLIC, static_private=CLIENT_PRIVATE, ephemeral_private=EPHEMERAL,
                   sender_index=INDEX, timestamp=tai64n(1_700_000_001)),
    ]
    assert all(other[0] != message for other in others)


def authenticated(data: bytes, state: InitiatorState | None) -> bool:
    reply = parse_reply(data, state)
    assert isinstance(reply, HandshakeResponse)
    assert reply.receiver_index == INDEX
    return reply.authenticated


def test_real_response_authenticates_only_with_our_state() -> None:
    state = pinned()[1]
    assert authenticated(RESPONSE, state)
    assert not authenticated(RESPONSE, None)
    assert parse_reply(RESPONSE, None) == HandshakeResponse(0x72F0633E, INDEX, False)
    assert not authenticated(RESPONSE, replace(state, static_private=EPHEMERAL))
    assert not authenticated(RESPONSE, replace(state, sender_index=INDEX + 1))
    tampered = bytearray(RESPONSE)
    tampered[59] ^= 1  # the last byte of the sealed empty payload (bytes 44-59)
    assert not authenticated(bytes(tampered), state)


def test_low_order_ephemeral_in_a_response_is_not_authenticated() -> None:
    forged = RESPONSE[:12] + bytes(32) + RESPONSE[44:]
    assert parse_reply(forged, pinned()[1]) == HandshakeResponse(
        int.from_bytes(RESPONSE[4:8], "little"), INDEX, False)
    with pytest.raises(WireError, match="low-order"):
        initiation(bytes(32), static_private=CLIENT_PRIVATE, ephemeral_private=EPHEMERAL,
                   sender_index=INDEX, timestamp=TIMESTAMP)


def test_cookie_reply() -> None:
    assert parse_reply(COOKIE, pinned()[1]) == CookieReply(INDEX)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "type field missing"),
    (INITIATION, "type field 01000000, expected 02000000"),
    (RESPONSE[:-1], "91 bytes, expected 92"),
    (RESPONSE + b"\x00", "93 bytes, expected 92"),
    (COOKIE[:-1], "63 bytes, expected 64"),
    (b"\x02\x00\x01\x00" + RESPONSE[4:], "type field 02000100"),
    (b"\x04\x00\x00\x00" + bytes(28), "type field 04000000"),  # transport data
])
def test_bad_replies(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_reply(data, pinned()[1])


@pytest.mark.parametrize("data", [RESPONSE, INITIATION[:-1], b"\x01\x00\x00"])
def test_bad_initiations(data: bytes) -> None:
    with pytest.raises(WireError):
        parse_initiation(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_hostile_bytes_raise_only_wire_error(data: bytes, with_state: bool) -> None:
    state = pinned()[1] if with_state else None
    for parse in (lambda d: parse_reply(d, state), parse_initiation):
        try:
            parse(data)
        except WireError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2, 3]), st.binary(min_size=88, max_size=88),
       st.binary(min_size=144, max_size=144))
def test_well_framed_garbage_raises_only_wire_error(kind: int, short: bytes, long: bytes) -> None:
    for body in (short, short[:60], long):
        for parse in (lambda d: parse_reply(d, pinned()[1]), parse_initiation):
            try:
                parse(struct.pack("<I", kind) + body)
            except WireError:
                pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_hostile_key_text_raises_only_wire_error(text: str) -> None:
    try:
        parse_key(text)
    except WireError:
        pass


# --------------------------------------------------------------------------
# Live: wireguard-go in a namespace of its own, answering on its 127.0.0.1.

PORT = 51820

# The client side, run inside the namespace: one datagram out, the first
# reply printed in hex, resent while the port is still closed.
CLIENT = """
import socket, sys, time
port, packet = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    for _ in range(100):
        try:
            sock.send(packet)
            print(sock.recv(4096).hex())
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
"""


@contextmanager
def wireguard_go(server_private: bytes, peer: bytes, tmp_path: Path) -> Iterator[str]:
    """A fresh namespace running wireguard-go with one peer; yields the namespace."""
    ns, device = f"wgtest-{secrets.token_hex(4)}", f"wgp{secrets.token_hex(3)}"
    key_file = tmp_path / "server.key"
    key_file.write_text(base64.b64encode(server_private).decode() + "\n")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    process = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        process = popen_in(ns, ["wireguard-go", device], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT,
                           env=child_env(WG_PROCESS_FOREGROUND="1", LOG_LEVEL="debug"))
        assert process.stdout is not None
        assert wait_for_text(process.stdout, b"UAPI listener started", 30), "no wireguard-go"
        run_in(ns, ["wg", "set", device, "listen-port", str(PORT), "private-key", str(key_file),
                    "peer", base64.b64encode(peer).decode(),
                    "allowed-ips", "198.51.100.2/32"], check=True)
        run_in(ns, ["ip", "link", "set", device, "up"], check=True)
        yield ns
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        subprocess.run(["ip", "netns", "delete", ns], check=True)


def test_live_wireguard_go_authenticates_our_initiation(tmp_path: Path) -> None:
    require(root=True, tools=("wireguard-go", "wg", "ip"))
    server, client = secrets.token_bytes(32), secrets.token_bytes(32)
    message, state = initiation(public_key(server), static_private=client,
                                ephemeral_private=secrets.token_bytes(32),
                                sender_index=secrets.randbits(32), timestamp=tai64n(time.time()))
    with wireguard_go(server, public_key(client), tmp_path) as ns:
        answer = run_in(ns, [sys.executable, "-c", CLIENT, str(PORT), message.hex()],
                        capture_output=True, text=True, timeout=60, check=True)
    reply = parse_reply(bytes.fromhex(answer.stdout.strip()), state)
    assert isinstance(reply, HandshakeResponse)
    assert reply.receiver_index == state.sender_index and reply.authenticated
