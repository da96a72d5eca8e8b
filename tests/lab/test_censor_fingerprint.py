"""The censor's OpenVPN fingerprint on real first packets: OpenVPN's, and other protocols'.

The byte strings below are what real clients sent, captured once on
loopback in a throwaway network namespace (``unshare --net``): OpenVPN
2.6.14 (``--client``, UDP and TCP, without wrapping, with ``--tls-auth``
(SHA1 and ``--auth SHA512``), ``--tls-crypt`` and ``--tls-crypt-v2``),
wireguard-go's handshake initiation, xl2tpd's SCCRQ and strongSwan 5.9's
IKE_SA_INIT. DNS, TLS, HTTP and PPTP come from dnspython, Python's ssl, a
plain request and the probe's own PPTP codec.
"""

from __future__ import annotations

import contextlib
import ssl
import struct
from collections.abc import Iterator

import dns.message
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.pptp import start_control_connection_request
from probe_lab.censor.fingerprint import (
    FIRST_BYTES,
    MAX_RESET,
    ClientReset,
    client_reset,
    tcp_client_reset,
)

CAPTURED = {
    "openvpn udp": "38e6cfb7347ea85ecc0000000000",
    "openvpn udp tls-auth": (
        "387d719cde34da5c10bd4b3710835a8cc2b96f3f77659ff708757a8bd6000000016b04c5e80000000000"
    ),
    "openvpn udp tls-auth sha512": (
        "382cdd74b792a5128884ae5dec19fe7f99e3eda16758381d01206702f4009039a1d7f9ef5e82035dc457184e"
        "f3c5395b9ed628058c69d430b8ceaebbeeb8f644d3abf7eb1aecd7b3d4000000016b04c5eb0000000000"
    ),
    "openvpn udp tls-crypt": (
        "387f1010f3d94c1fb6000000016b04c5edca0f07d09752dc8b5b6ae626d42fd46edf80188fd6f2bb0ffee484"
        "06a9f64e283f9ae42afd"
    ),
    "openvpn udp tls-crypt-v2": (
        "500c79e48312deede90f0000016b04c5eef43aa15cd96d1b294f97a5eef61a26661d5c1774608e46f75f87de"
        "419ca0ffae8be201451956d752f1524e945be63cce2db3c50e3b654d53c70953ddc6853da40a518863449ed7"
        "4f96f9eead090a626adc72b19e7a8a7224330ebb45a5f79221d3bc61ce10f680b5ddd6534530292e3d9a98da"
        "32c17ccd64969566da6ad499a0c76797b12278fadb5a34f6f35aee7c78984da915b795b8ed588fcba5f76c10"
        "6856bb576cbc8102a264fafe8f88e8af65ed0944f9adc63b1e9954a60db33c2593158fd271d9555f9c292f20"
        "f4c152841518522afbff3ddf2ffc743ca3409bfdf482aa80363575c51d555f65123a375a2076bc9429c72164"
        "74f6fa3de218541b03a35864b9e7e45c4a5b358a99ace7414ccffd7f9882eb4a926051914d1271603fd44b28"
        "85f606f0b2fac0ceef9530fed2ec49d7959bf813b9f8ff94af3646a1161c7c4918f212a555b36e6c81484f01"
        "2b"
    ),
    "openvpn tcp": "000e382c4377cd2ccd32b20000000000",
    "openvpn tcp tls-auth": (
        "002a38855a84aa900576afb31673f4821afb268028e5c3ee8aa7465424fea2000000016b04c5e80000000000"
        "002a38855a84aa900576af22cf9abba941467b113734a8dc11c60cae9932c9000000026b04c5e80000000000"
    ),
    "wireguard initiation": (
        "0100000056b838f3dda19e7698932c4e80b97d3784559fd0b6f99cc72e7cd54217f9c48ee00809028d86da2c"
        "96d4d721d1c2f2f1d35c6f0536891d4974dd299f07199184ad4c7f1af3c7ba63212401130d0fbe6bb91ff7c1"
        "575d9d68702b2d5a0fb273faf4884390e4736ce88fc0cff389c0cc6e3e885b6052a61d070bb4573e0e623e57"
        "00000000000000000000000000000000"
    ),
    "l2tp sccrq": (
        "c8020063000000000000000080080000000000018008000000020100800a0000000300000003800a00000004"
        "000000000008000000060690800800000007766d00130000000878656c6572616e63652e636f6d8008000000"
        "0934c180080000000a0004"
    ),
    "ikev2 ike_sa_init": (
        "684f383a9a04a21e00000000000000002120220800000000000003ac220002ec02000168010100260300000c"
        "0100000c800e00800300000c0100000c800e00c00300000c0100000c800e01000300000c0100000d800e0080"
        "0300000c0100000d800e00c00300000c0100000d800e01000300000c01000017800e00800300000c01000017"
        "800e00c00300000c01000017800e01000300000c01000018800e00800300000c01000018800e00c00300000c"
        "01000018800e01000300000801000003030000080300000c030000080300000d030000080300000e03000008"
        "0300000503000008030000080300000803000002030000080200000503000008020000060300000802000007"
        "030000080200000403000008020000080300000802000002030000080400001f030000080400002003000008"
        "0400001303000008040000140300000804000015030000080400001c030000080400001d030000080400001e"
        "030000080400000f030000080400001003000008040000110300000804000012000000080400000e00000180"
        "020100260300000c01000010800e00800300000c01000010800e00c00300000c01000010800e01000300000c"
        "01000014800e00800300000c01000014800e00c00300000c01000014800e0100030000080100001c0300000c"
        "0100000e800e00800300000c0100000e800e00c00300000c0100000e800e01000300000c0100000f800e0080"
        "0300000c0100000f800e00c00300000c0100000f800e01000300000c01000012800e00800300000c01000012"
        "800e00c00300000c01000012800e01000300000c01000013800e00800300000c01000013800e00c00300000c"
        "01000013800e0100030000080200000503000008020000060300000802000007030000080200000403000008"
        "020000080300000802000002030000080400001f030000080400002003000008040000130300000804000014"
        "0300000804000015030000080400001c030000080400001d030000080400001e030000080400000f03000008"
        "0400001003000008040000110300000804000012000000080400000e28000028001f000034f5627014542837"
        "3810a8c4bc90b4c40b4073e6320a4218c4b67fcc873e343429000024a1f1950cea2c609a387cd6abecf9d996"
        "43ab37b09e24fcbf76741cfcab86e4922900001c00004004a9cac838cd7bdf48853df55531e23c89c8d0e697"
        "2900001c00004005e71b57db79332504b00c643e9be009ac38d17433290000080000402e290000100000402f"
        "00020003000400050000000800004016"
    ),
}
FIRST = {name: bytes.fromhex(hex_) for name, hex_ in CAPTURED.items()}
UDP_RESETS = {
    "openvpn udp": "none",
    "openvpn udp tls-auth": "tls-auth",
    "openvpn udp tls-auth sha512": "tls-auth",
    "openvpn udp tls-crypt": "tls-crypt",
    "openvpn udp tls-crypt-v2": "tls-crypt-v2",
}


def client_hello(name: str) -> bytes:
    """The first flight of Python's own TLS client for ``name``."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname=name)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the ServerHello
        tls.do_handshake()
    return outgoing.read()


def dns_queries(first_byte: int) -> Iterator[bytes]:
    """dnspython's A queries of every length from 27 to 137 bytes (each tls-auth length
    among them), with and without EDNS, their id starting with ``first_byte``."""
    for length in range(1, 64):
        for name in ("a" * length + ".example", "b" * length + "." + "c" * 40 + ".net"):
            for edns in (None, 0):
                query = dns.message.make_query(name, "A", use_edns=edns)
                query.id = first_byte << 8 | 0x2A
                yield query.to_wire()


def framed(packet: bytes) -> bytes:
    return struct.pack("!H", len(packet)) + packet


def others() -> Iterator[tuple[str, bytes]]:
    """First packets of other protocols, with first bytes an OpenVPN reset might have."""
    yield "wireguard", FIRST["wireguard initiation"]
    yield "l2tp", FIRST["l2tp sccrq"]
    ike = FIRST["ikev2 ike_sa_init"]
    yield "ikev2", ike
    yield "ikev2 nat-t", bytes(4) + ike  # UDP 4500: the non-ESP marker first
    for byte in sorted(FIRST_BYTES):  # the initiator SPI is random: any first byte happens
        yield f"ikev2 spi {byte:#x}", bytes([byte]) + ike[1:]
    yield "tls", client_hello("vpn.example.net")
    yield "http", b"GET / HTTP/1.1\r\nHost: vpn.example.net\r\n\r\n"
    yield "pptp", start_control_connection_request(hostname="client")
    for byte in sorted(FIRST_BYTES):
        for i, query in enumerate(dns_queries(byte)):
            yield f"dns {byte:#x} {i}", query


@pytest.mark.parametrize("name", list(UDP_RESETS))
def test_every_real_client_reset_is_recognised(name: str) -> None:
    reset = client_reset(FIRST[name])
    assert reset.wrapping == UDP_RESETS[name]
    assert reset.session_id == FIRST[name][1:9]
    v3 = name.endswith("v2")
    assert reset.opcode == f"P_CONTROL_HARD_RESET_CLIENT_V{3 if v3 else 2}"
    assert str(reset) == f"{reset.opcode} ({reset.wrapping})"


@pytest.mark.parametrize("name", list(UDP_RESETS))
def test_a_reset_over_tcp_is_read_as_soon_as_it_is_whole(name: str) -> None:
    stream = framed(FIRST[name])
    for cut in range(len(stream)):  # every way a segment boundary may fall
        assert tcp_client_reset(stream[:cut]) is None
    assert tcp_client_reset(stream) == client_reset(FIRST[name])


def test_real_tcp_streams() -> None:
    assert tcp_client_reset(FIRST["openvpn tcp"]) == ClientReset(
        "P_CONTROL_HARD_RESET_CLIENT_V2", "none", FIRST["openvpn tcp"][3:11]
    )
    # The client resent its reset before the capture ended: the first packet decides.
    stream = FIRST["openvpn tcp tls-auth"]
    assert len(stream) == 2 * 44
    assert str(tcp_client_reset(stream)) == "P_CONTROL_HARD_RESET_CLIENT_V2 (tls-auth)"


def test_no_other_protocol_is_taken_for_openvpn() -> None:
    checked = 0
    for name, packet in others():
        with pytest.raises(WireError):
            client_reset(packet)
        # Over TCP, and DNS over TCP has OpenVPN's very framing: the stream
        # is refused at once, not held waiting for more.
        for stream in (packet, framed(packet)):
            with pytest.raises(WireError):
                tcp_client_reset(stream)
        checked += 1
    assert checked == 9 + 2 * 63 * 2 * 2


def test_a_dns_query_in_tls_crypt_shape_is_told_apart_by_its_session_id() -> None:
    # 54 bytes, id 0x38..., no EDNS: bytes 9-12 are 00 00 00 <label length>,
    # a small packet-id where tls-crypt has one. Only the zero counts of the
    # DNS header, where OpenVPN's random session id stands, give it away.
    query = next(q for q in dns_queries(0x38) if len(q) == 54 and q[11] == 0)  # arcount 0
    assert query[9:12] == bytes(3) and 0 < query[12] < 64
    with pytest.raises(WireError, match="session id is not random"):
        client_reset(query)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda p: bytes([p[0] | 1]) + p[1:], "key id 1"),  # a soft reset's key
        (lambda p: bytes([4 << 3]) + p[1:], "P_CONTROL_V1 is not"),
        (lambda p: bytes([8 << 3]) + p[1:], "P_CONTROL_HARD_RESET_SERVER_V2 is not"),
        (lambda p: p + b"\0", "in no reset's shape"),  # tls-auth with a 21-byte HMAC
        (lambda p: p[:29] + struct.pack("!I", 0) + p[33:], "in no reset's shape"),  # packet-id 0
        (lambda p: p[:29] + struct.pack("!I", 4096) + p[33:], "in no reset's shape"),
        (lambda p: p[:-1] + b"\1", "in no reset's shape"),  # acks something
        (lambda p: p[:1] + bytes(4) + p[5:], "session id is not random"),
        (lambda p: p[:9], "in no reset's shape"),
    ],
)
def test_an_altered_tls_auth_reset_is_refused(change: object, why: str) -> None:
    packet = FIRST["openvpn udp tls-auth"]
    client_reset(packet)
    with pytest.raises(WireError, match=why):
        client_reset(change(packet))  # type: ignore[operator]


def test_tls_crypt_v2_needs_its_wrapped_key_length() -> None:
    packet = FIRST["openvpn udp tls-crypt-v2"]
    assert int.from_bytes(packet[-2:], "big") == len(packet) - 54  # 299: what 2.6 writes
    with pytest.raises(WireError, match="no V3 reset's shape"):
        client_reset(packet[:-3] + packet[-2:])  # a byte short
    with pytest.raises(WireError, match="no V3 reset's shape"):
        client_reset(packet[:54] + packet[-2:])  # no key at all
    early = packet[9:13]
    assert early == bytes.fromhex("0f000001")  # ssl.c EARLY_NEG_START, then counted up
    with pytest.raises(WireError, match="first packet-id"):
        client_reset(packet[:9] + bytes.fromhex("0f001000") + packet[13:])


def test_tcp_gives_up_early_on_impossible_lengths() -> None:
    for stream in (b"\x00\x0d", (MAX_RESET + 1).to_bytes(2, "big"), b"\x16\x03"):
        with pytest.raises(WireError, match="is not a client reset"):
            tcp_client_reset(stream)
    assert tcp_client_reset(b"\x00\x0e") is None  # plausible: wait for the opcode
    with pytest.raises(WireError, match="first byte 0x16"):
        tcp_client_reset(b"\x00\x0e\x16")


@given(st.binary(max_size=1200))
def test_the_fingerprint_raises_only_wire_error(data: bytes) -> None:
    for read in (client_reset, tcp_client_reset):
        try:
            read(data)
        except WireError:
            pass


@given(st.binary(min_size=8, max_size=8).filter(lambda sid: sid.count(0) <= 3))
def test_any_random_session_id_passes(session_id: bytes) -> None:
    for name in UDP_RESETS:
        packet = FIRST[name]
        assert client_reset(packet[:1] + session_id + packet[9:]).session_id == session_id
