"""probe.wire.openvpn: the client's hard reset, the server's reply, TCP framing.

The replies in fixtures/openvpn-exchanges.txt were sent by a real OpenVPN
2.6.14 server (Debian) to the pinned resets, keyed with
fixtures/openvpn-static.key; the live test at the end repeats the exchange
against a server started here, with a fresh key, over UDP and TCP.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from environment import require
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import Certs

from probe.wire import WireError
from probe.wire.openvpn import (
    OPCODE_NAMES,
    P_ACK_V1,
    P_CONTROL_HARD_RESET_CLIENT_V2,
    P_CONTROL_HARD_RESET_CLIENT_V3,
    P_CONTROL_HARD_RESET_SERVER_V2,
    P_CONTROL_V1,
    P_DATA_V2,
    ControlChannelKey,
    Packet,
    answers_reset,
    client_hard_reset,
    parse_header,
    parse_packet,
    parse_static_key,
    tcp_frame,
    tcp_unframe,
)
from probe_lab.servers.ready import wait_for_text
from probe_lab.topology import popen_in, run_in

FIXTURES = Path(__file__).parent / "fixtures"
KEY_TEXT = (FIXTURES / "openvpn-static.key").read_text()
KEY = parse_static_key(KEY_TEXT)
SID = bytes.fromhex("0102030405060708")
TIME = 0x6B04C5D1

WRAPS = {
    "none": None,
    "tls-auth": ControlChannelKey("tls-auth", KEY, direction=1),
    "tls-auth-sha256-bidir": ControlChannelKey("tls-auth", KEY, digest="sha256"),
    "tls-crypt": ControlChannelKey("tls-crypt", KEY),
}

# name -> (client_hard_reset(SID, packet_id=1, timestamp=TIME, wrap=WRAPS[name]),
#          the answer a real OpenVPN 2.6.14 server sent to it).
EXCHANGES = {
    name: (bytes.fromhex(reset), bytes.fromhex(reply))
    for name, reset, reply in (
        line.split() for line in (FIXTURES / "openvpn-exchanges.txt").read_text().splitlines()
        if not line.startswith("#")
    )
}
RESETS = {name: reset for name, (reset, _) in EXCHANGES.items()}
REPLIES = {name: reply for name, (_, reply) in EXCHANGES.items()}



def test_static_key_as_genkey_writes_it() -> None:
    assert len(KEY) == 256
    assert KEY[:4].hex() == KEY_TEXT.split("-----\n", 1)[1][:8]
    inline = "<tls-auth>\r\n" + KEY_TEXT.replace("\n", "\r\n") + "</tls-auth>\r\n"
    assert parse_static_key(inline) == KEY


@pytest.mark.parametrize(("text", "message"), [
    ("", "no '-----BEGIN OpenVPN Static key V1-----' line"),
    (KEY_TEXT.replace("-----END", "-----FIN"), "no '-----END OpenVPN Static key V1-----' line"),
    (KEY_TEXT.replace("-----\n", "-----\nzz", 1), "'z' is not a hex digit"),
    ("-----BEGIN OpenVPN Static key V1-----\nabcd\n-----END OpenVPN Static key V1-----",
     "2 bytes, expected 256"),
], ids=["empty", "no-footer", "not-hex", "short"])
def test_static_key_refusals_say_why(text: str, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_static_key(text)


@pytest.mark.parametrize("name", WRAPS)
def test_reset_is_pinned_and_reads_back(name: str) -> None:
    wrap = WRAPS[name]
    reset = client_hard_reset(SID, packet_id=1, timestamp=TIME, wrap=wrap)
    assert reset == RESETS[name]
    packet = parse_packet(reset, wrap, from_client=True)
    assert (packet.opcode, packet.key_id, packet.session_id) == (
        P_CONTROL_HARD_RESET_CLIENT_V2, 0, SID)
    assert (packet.acks, packet.remote_session_id, packet.message_id, packet.payload) == (
        (), None, 0, b"")
    assert (packet.packet_id, packet.timestamp) == ((None, None) if wrap is None else (1, TIME))


@pytest.mark.parametrize("name", WRAPS)
def test_server_reply_answers_our_reset(name: str) -> None:
    reply = parse_packet(REPLIES[name], WRAPS[name])
    assert reply.name == "P_CONTROL_HARD_RESET_SERVER_V2"
    assert (reply.key_id, reply.acks, reply.message_id) == (0, (0,), 0)
    assert answers_reset(reply, SID)
    assert not answers_reset(reply, bytes(reversed(SID)))
    assert parse_header(REPLIES[name]).session_id == reply.session_id


@pytest.mark.parametrize("name", ["tls-auth", "tls-crypt"])
def test_wrapped_reply_refuses_the_wrong_direction_key_or_byte(name: str) -> None:
    wrap = WRAPS[name]
    assert wrap is not None
    reply = REPLIES[name]
    with pytest.raises(WireError, match="authentication failed"):
        parse_packet(reply, wrap, from_client=True)  # the client's key, not the server's
    other = ControlChannelKey(wrap.mode, bytes(256), wrap.direction, wrap.digest)
    with pytest.raises(WireError, match="authentication failed"):
        parse_packet(reply, other)
    flipped = bytearray(reply)
    flipped[-1] ^= 1
    with pytest.raises(WireError, match="authentication failed"):
        parse_packet(bytes(flipped), wrap)


def test_unwrapped_control_packets() -> None:
    ack = parse_packet(bytes([P_ACK_V1 << 3 | 2]) + SID + b"\x02" + b"\x00\x00\x00\x01"
                       b"\x00\x00\x00\x02" + b"remotesi")
    assert (ack.name, ack.key_id, ack.acks, ack.remote_session_id, ack.message_id) == (
        "P_ACK_V1", 2, (1, 2), b"remotesi", None)
    control = parse_packet(bytes([P_CONTROL_V1 << 3]) + SID + b"\x00" + b"\x00\x00\x00\x05"
                           + b"\x16\x03\x01")
    assert (control.message_id, control.payload) == (5, b"\x16\x03\x01")


def test_data_and_tls_crypt_v2_packets_stay_opaque() -> None:
    data = parse_packet(bytes([P_DATA_V2 << 3 | 1]) + b"\x00\x00\x07ciphertext")
    assert (data.name, data.key_id, data.session_id, data.payload) == (
        "P_DATA_V2", 1, b"", b"\x00\x00\x07ciphertext")
    v3 = parse_packet(bytes([P_CONTROL_HARD_RESET_CLIENT_V3 << 3]) + SID + b"wrapped",
                      WRAPS["tls-crypt"])
    assert (v3.session_id, v3.payload, v3.message_id) == (SID, b"wrapped", None)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "needs 1 bytes"),
    (bytes([12 << 3]) + SID, "unknown opcode 12"),
    (bytes([0]) + SID, "unknown opcode 0"),
    (bytes([P_CONTROL_V1 << 3]) + SID[:5], "needs 8 bytes"),
    (bytes([P_CONTROL_V1 << 3]) + SID + b"\x09" + bytes(36) + SID + bytes(4), "9 acks, at most 8"),
    (bytes([P_CONTROL_V1 << 3]) + SID + b"\x01\x00\x00\x00\x00", "needs 8 bytes"),
], ids=["empty", "opcode-12", "opcode-0", "short-session-id", "nine-acks", "no-remote-id"])
def test_bad_packets(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_packet(data)


def test_only_a_server_reset_naming_us_answers() -> None:
    def packet(opcode: int, remote: bytes | None) -> Packet:
        return Packet(opcode, OPCODE_NAMES[opcode], 0, b"s" * 8, (0,) if remote else (), remote,
                      0, b"")

    assert answers_reset(packet(P_CONTROL_HARD_RESET_SERVER_V2, SID), SID)
    assert not answers_reset(packet(P_CONTROL_HARD_RESET_SERVER_V2, None), SID)
    assert not answers_reset(packet(P_CONTROL_V1, SID), SID)


def test_reset_arguments_are_checked() -> None:
    for sid in (b"short", bytes(8)):
        with pytest.raises(WireError, match="session id"):
            client_hard_reset(sid)
    with pytest.raises(WireError, match="32-bit"):
        client_hard_reset(SID, timestamp=1 << 32)
    for mode, key, direction, digest in [
        ("tls-crypt-v2", KEY, None, "sha1"), ("tls-auth", KEY[:128], None, "sha1"),
        ("tls-auth", KEY, 2, "sha1"), ("tls-auth", KEY, None, "md5"),
    ]:
        with pytest.raises(WireError, match="control channel key"):
            ControlChannelKey(mode, key, direction, digest)


@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
def test_tcp_framing_round_trip_in_pieces(chunk: int) -> None:
    packets = [client_hard_reset(SID), REPLIES["tls-crypt"], b"\x28"]
    stream = b"".join(tcp_frame(p) for p in packets)
    found: list[bytes] = []
    rest = b""
    for i in range(0, len(stream), chunk):
        done, rest = tcp_unframe(rest + stream[i : i + chunk])
        found += done
    assert found == packets and rest == b""
    assert tcp_unframe(b"\x00\x05abc") == ((), b"\x00\x05abc")


def test_tcp_framing_refusals() -> None:
    with pytest.raises(WireError, match="zero-length"):
        tcp_unframe(tcp_frame(b"x") + b"\x00\x00")
    for size in (0, 65536):
        with pytest.raises(WireError, match="cannot be framed"):
            tcp_frame(bytes(size))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(list(WRAPS)), st.booleans())
def test_hostile_packets_raise_only_wire_error(data: bytes, name: str, from_client: bool) -> None:
    for parse in (lambda d: parse_packet(d, WRAPS[name], from_client=from_client),
                  parse_header, tcp_unframe):
        try:
            parse(data)
        except WireError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 2**16 - 1), st.sampled_from(list(WRAPS)))
def test_mutated_replies_raise_only_wire_error(noise: bytes, where: int, name: str) -> None:
    reply = bytearray(REPLIES[name])
    at = where % len(reply)
    reply[at : at + len(noise)] = noise
    try:
        parse_packet(bytes(reply), WRAPS[name])
    except WireError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_hostile_key_files_raise_only_wire_error(text: str) -> None:
    try:
        parse_static_key("-----BEGIN OpenVPN Static key V1-----\n" + text)
    except WireError:
        pass


# --------------------------------------------------------------------------
# Live: a real OpenVPN server in a namespace of its own, on its 127.0.0.1.

# The client side, run inside the namespace: send one packet, print the
# first reply in hex. UDP retries while the port is closed (ICMP port
# unreachable); TCP reads until one whole framed packet has arrived.
CLIENT = """
import socket, sys, time
proto, port, packet = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
for _ in range(100):
    sock = socket.socket(socket.AF_INET, kind)
    sock.settimeout(10)
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(packet)
        reply = sock.recv(4096)
        while kind == socket.SOCK_STREAM and len(reply) < 2 + int.from_bytes(reply[:2], "big"):
            reply += sock.recv(4096)
        break
    except ConnectionRefusedError:
        sock.close()
        time.sleep(0.1)
print(reply.hex())
"""

PORT = 1194
LIVE = {  # case: (transport, wrap, the server's own options for that wrap)
    "udp": ("udp", "none", []),
    "tcp": ("tcp", "none", []),
    "udp-tls-auth": ("udp", "tls-auth", ["--tls-auth", "{key}", "0"]),
    "udp-tls-auth-sha256-bidir": ("udp", "tls-auth-sha256-bidir",
                                  ["--tls-auth", "{key}", "--auth", "SHA256"]),
    "udp-tls-crypt": ("udp", "tls-crypt", ["--tls-crypt", "{key}"]),
    "tcp-tls-crypt": ("tcp", "tls-crypt", ["--tls-crypt", "{key}"]),
}


@contextmanager
def namespace(stem: str) -> Iterator[str]:
    """A fresh network namespace with only its loopback up; deleted afterwards."""
    name = f"{stem}-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


@contextmanager
def openvpn_server(ns: str, certs: Certs, transport: str, options: list[str]) -> Iterator[None]:
    process = popen_in(ns, [
        "openvpn", "--mode", "server", "--tls-server", "--dev", "tun", "--dh", "none",
        "--proto", "udp4" if transport == "udp" else "tcp4-server",
        "--local", "127.0.0.1", "--lport", str(PORT),
        "--ca", str(certs.ca), "--cert", str(certs.good[0]), "--key", str(certs.good[1]),
        "--verb", "3", *options,
    ], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        assert wait_for_text(process.stdout, b"Initialization Sequence Completed", 30), (
            "openvpn did not start")
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("case", LIVE)
def test_live_openvpn_server_answers_our_reset(case: str, certs: Certs, tmp_path: Path) -> None:
    require(root=True, tools=("openvpn", "ip"))
    transport, wrap_name, options = LIVE[case]
    key_file = tmp_path / "static.key"
    subprocess.run(["openvpn", "--genkey", "secret", str(key_file)], check=True,
                   capture_output=True)
    template = WRAPS[wrap_name]
    wrap = None if template is None else ControlChannelKey(
        template.mode, parse_static_key(key_file.read_text()), template.direction, template.digest)
    session_id = secrets.token_bytes(8)
    reset = client_hard_reset(session_id, timestamp=1, wrap=wrap)
    with namespace("ovpntest") as ns, openvpn_server(
            ns, certs, transport, [o.format(key=key_file) for o in options]):
        sent = reset if transport == "udp" else tcp_frame(reset)
        client = run_in(ns, [sys.executable, "-c", CLIENT, transport, str(PORT), sent.hex()],
                        capture_output=True, text=True, timeout=60, check=True)
    data = bytes.fromhex(client.stdout.strip())
    if transport == "tcp":
        (data,), rest = tcp_unframe(data)
        assert rest == b""
    reply = parse_packet(data, wrap)
    assert reply.opcode == P_CONTROL_HARD_RESET_SERVER_V2
    assert answers_reset(reply, session_id)
    assert (reply.acks, reply.message_id) == ((0,), 0)
