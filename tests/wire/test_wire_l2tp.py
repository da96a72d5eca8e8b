"""probe.wire.l2tp: SCCRQ out; SCCRP, StopCCN, ZLB and data messages parsed."""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from environment import require
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.l2tp import (
    AVP_ASSIGNED_TUNNEL_ID,
    AVP_HOST_NAME,
    AVP_RESULT_CODE,
    STOPCCN,
    answers,
    avp,
    control_message,
    message_type_avp,
    parse_message,
    sccrq,
)

# xl2tpd 1.3.18 (Debian bookworm) answering sccrq(4242, host_name="probe") on loopback:
# SCCRP to tunnel 4242, Ns 0 Nr 1, its own tunnel id 23179, host name "vm".
XL2TPD_SCCRP = bytes.fromhex(
    "c80200631092000000000001"
    "80080000000000028008000000020100800a0000000300000003800a000000040000000000080000"
    "00060690800800000007766d00130000000878656c6572616e63652e636f6d8008000000095a8b80"
    "080000000a0004"
)
STOPCCN_MESSAGE = control_message(tunnel_id=4242, ns=1, nr=1, avps=[
    message_type_avp(STOPCCN), avp(AVP_ASSIGNED_TUNNEL_ID, b"\x5a\x8b"),
    avp(AVP_RESULT_CODE, b"\x00\x06\x00\x00busy"),
])
ZLB = control_message(tunnel_id=4242, ns=1, nr=2)


def test_sccrq_layout() -> None:
    data = sccrq(4242, host_name="probe", vendor="lab")
    # RFC 2661 section 3.1: T, L, S and version 2; length; tunnel 0, session 0, Ns 0, Nr 0.
    assert struct.unpack_from("!HHHHHH", data) == (0xC802, len(data), 0, 0, 0, 0)
    # Section 4.4.1: the Message Type AVP first, mandatory, 8 bytes, value 1.
    assert data[12:20] == bytes.fromhex("8008000000000001")
    assert bytes.fromhex("800b00000007") + b"probe" in data  # Host Name, mandatory
    assert bytes.fromhex("8008000000091092") in data  # Assigned Tunnel ID 4242
    assert bytes.fromhex("0009000000086c6162") in data  # Vendor Name "lab", not mandatory


def test_sccrq_round_trip() -> None:
    message = parse_message(sccrq(4242, host_name="probe"))
    assert (message.name, message.tunnel_id, message.ns, message.nr) == ("SCCRQ", 0, 0, 0)
    assert message.assigned_tunnel_id == 4242
    assert (0, AVP_HOST_NAME, b"probe") in message.avps
    assert [kind for _, kind, _ in message.avps] == [0, 2, 7, 3, 4, 9, 10]


def test_xl2tpd_sccrp() -> None:
    message = parse_message(XL2TPD_SCCRP)
    assert (message.is_control, message.name, message.message_type) == (True, "SCCRP", 2)
    assert (message.tunnel_id, message.session_id, message.ns, message.nr) == (4242, 0, 0, 1)
    assert message.assigned_tunnel_id == 23179 and message.result_code is None
    assert (0, 8, b"xelerance.com") in message.avps
    assert answers(message, 4242) and not answers(message, 4243)


def test_stopccn_and_zlb() -> None:
    stop = parse_message(STOPCCN_MESSAGE)
    assert (stop.name, stop.result_code, stop.assigned_tunnel_id) == ("StopCCN", 6, 23179)
    assert answers(stop, 4242)
    zlb = parse_message(ZLB)
    assert (zlb.name, zlb.message_type, zlb.avps, zlb.nr) == ("ZLB", None, (), 2)
    assert not answers(zlb, 4242)
    assert not answers(parse_message(sccrq(4242, host_name="x")), 0)  # a request is no answer


def test_hidden_avps_stay_opaque() -> None:
    hidden = struct.pack("!HHH", 0xC000 | 14, 0, AVP_ASSIGNED_TUNNEL_ID) + b"\xee" * 8
    message = parse_message(control_message(tunnel_id=7, avps=[message_type_avp(2), hidden]))
    assert message.assigned_tunnel_id is None and message.avps[1] == (0, 9, b"\xee" * 8)


@pytest.mark.parametrize(("data", "session", "ns"), [
    (struct.pack("!HHH", 0x0002, 7, 9) + b"\xff\x03ppp", 9, None),  # no length, no sequence
    (struct.pack("!HHHHHH", 0x4802, 14, 7, 9, 3, 4) + b"\xff\x03", 9, 3),  # L and S
    (struct.pack("!HHHH", 0x0202, 7, 9, 2) + b"\x00\x00\xff\x03", 9, None),  # offset padding
])
def test_data_messages(data: bytes, session: int, ns: int | None) -> None:
    message = parse_message(data)
    assert (message.is_control, message.name, message.tunnel_id) == (False, "data", 7)
    assert (message.session_id, message.ns) == (session, ns)


@pytest.mark.parametrize(("data", "error"), [
    (b"\xc8", "needs 2 bytes"),
    (b"\xc8\x03" + XL2TPD_SCCRP[2:], "version 3"),
    (b"\x88\x02" + XL2TPD_SCCRP[4:], "bad header bits"),  # control without L
    (b"\xca\x02" + XL2TPD_SCCRP[2:], "bad header bits"),  # control with O
    (XL2TPD_SCCRP + b"\x00", "length field"),
    (control_message(tunnel_id=1, avps=[avp(AVP_HOST_NAME, b"x")]), "first AVP"),
    (control_message(tunnel_id=1, avps=[avp(0, b"\x00\x01\x02")]), "Message Type AVP: 3 bytes"),
    (control_message(tunnel_id=1, avps=[message_type_avp(2), b"\x80\x05\x00\x00\x00\x09"]),
     "below its header"),
    (control_message(tunnel_id=1, avps=[message_type_avp(2), b"\x80\x10\x00\x00\x00\x09"]),
     "needs 10 bytes"),
    (control_message(tunnel_id=1, avps=[message_type_avp(4), avp(AVP_RESULT_CODE, b"\x01")]),
     "Result Code AVP"),
])
def test_malformed_messages(data: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        parse_message(data)


@pytest.mark.parametrize(("tunnel", "host"), [(0, "probe"), (65536, "probe"), (1, "")])
def test_sccrq_arguments_are_checked(tunnel: int, host: str) -> None:
    with pytest.raises(ValueError):
        sccrq(tunnel, host_name=host)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        parse_message(data)
    except WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([XL2TPD_SCCRP, STOPCCN_MESSAGE]), st.binary(min_size=1, max_size=20),
       st.integers(0, 2**16))
def test_mutated_replies_raise_only_wire_error(base: bytes, noise: bytes, where: int) -> None:
    data = bytearray(base)
    at = where % len(data)
    data[at : at + len(noise)] = noise
    try:
        parse_message(bytes(data))
    except WireError:
        pass


# -- interop with xl2tpd -------------------------------------------------------

XL2TPD_CONF = """\
[global]
listen-addr = 127.0.0.1
port = {port}
access control = no

[lns default]
ip range = 198.51.100.10-198.51.100.20
local ip = 198.51.100.1
require authentication = no
"""


@pytest.fixture
def xl2tpd(tmp_path: Path) -> Iterator[int]:
    require(tools=("xl2tpd",))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a free UDP port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "xl2tpd.conf").write_text(XL2TPD_CONF.format(port=port))
    server = subprocess.Popen(
        ["xl2tpd", "-D", "-c", str(tmp_path / "xl2tpd.conf"), "-p", str(tmp_path / "xl2tpd.pid"),
         "-C", str(tmp_path / "l2tp-control")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_xl2tpd_answers_sccrq(xl2tpd: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(0.5)
        for _ in range(40):  # resend until the daemon, starting in the background, answers
            udp.sendto(sccrq(4242, host_name="probe"), ("127.0.0.1", xl2tpd))
            try:
                data = udp.recv(4096)
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("xl2tpd never answered")
        reply = parse_message(data)
        assert answers(reply, 4242) and reply.name == "SCCRP"
        assert reply.assigned_tunnel_id and reply.nr == 1
        # Close the tunnel politely (section 5.7), acknowledging its SCCRP.
        udp.sendto(control_message(tunnel_id=reply.assigned_tunnel_id, ns=1, nr=1, avps=[
            message_type_avp(STOPCCN), avp(AVP_ASSIGNED_TUNNEL_ID, struct.pack("!H", 4242)),
            avp(AVP_RESULT_CODE, b"\x00\x01"),
        ]), ("127.0.0.1", xl2tpd))
