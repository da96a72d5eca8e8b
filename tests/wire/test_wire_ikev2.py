"""probe.wire.ikev2: the IKE_SA_INIT request and the outline of its replies."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from environment import require
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.wire import WireError
from probe.wire.ikev2 import (
    IKEMessage,
    answers,
    ike_sa_init,
    key_exchange_for,
    nat_detection_hash,
    parse_message,
)

SPI = bytes.fromhex("0102030405060708")
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
FIXTURES = {
    name: (bytes.fromhex(spi), bytes.fromhex(data))
    for name, spi, data in (
        line.split() for line in (Path(__file__).parent / "fixtures" / "ikev2_strongswan.txt")
        .read_text().splitlines() if line and not line.startswith("#")
    )
}


def request(**options: object) -> bytes:
    return ike_sa_init(SPI, nonce=b"\x11" * 32, dh_group=31, key_exchange=b"\x22" * 32,
                       **options)  # type: ignore[arg-type]


def test_request_header_and_payload_chain() -> None:
    data = request()
    spi_i, spi_r, first, version, exchange, flags, message_id, length = struct.unpack_from(
        "!8s8sBBBBII", data)
    assert (spi_i, spi_r, first, version, exchange, flags, message_id, length) == (
        SPI, bytes(8), 33, 0x20, 34, 0x08, 0, len(data))
    message = parse_message(data)
    assert message.payloads == ("SA", "KE", "Ni", "N", "N")
    assert message.notifies == ((16430, "IKEV2_FRAGMENTATION_SUPPORTED"),
                                (16431, "SIGNATURE_HASH_ALGORITHMS"))
    assert (message.dh_group, message.is_response, message.exchange_name) == (31, False,
                                                                              "IKE_SA_INIT")
    assert b"\x00\x1f\x00\x00" + b"\x22" * 32 in data  # KE: group 31, reserved, the value
    assert b"\x11" * 32 in data


def test_security_association_proposals_byte_for_byte() -> None:
    # RFC 7296 section 3.3: proposal 1 AES-GCM-16 (20) 256/128, PRF SHA2-256 (5) and
    # SHA2-384 (6), DH 31/19/14; proposal 2 AES-CBC (12) 256/128, integrity
    # SHA2-256-128 (12) and SHA2-384-192 (13), the same PRFs and groups.
    key_256, key_128 = "800e0100", "800e0080"
    dh = "030000080400001f" "0300000804000013" "000000080400000e"
    prf = "0300000802000005" "0300000802000006"
    aead = "0300000c01000014" + key_256 + "0300000c01000014" + key_128 + prf + dh
    cbc = ("0300000c0100000c" + key_256 + "0300000c0100000c" + key_128
           + "030000080300000c" "030000080300000d" + prf + dh)
    expected = (f"0200{8 + len(aead) // 2:04x}01010007" + aead
                + f"0000{8 + len(cbc) // 2:04x}02010009" + cbc)
    data = request()
    sa_length = struct.unpack_from("!H", data, 28 + 2)[0]
    assert data[28 + 4 : 28 + sa_length].hex() == expected


def test_group_of_the_key_exchange_is_offered_first() -> None:
    data = ike_sa_init(SPI, nonce=b"\x11" * 16, dh_group=14, key_exchange=b"\x01" * 256)
    assert data.index(bytes.fromhex("0400000e")) < data.index(bytes.fromhex("0400001f"))
    assert parse_message(data).dh_group == 14


def test_cookie_goes_first_and_nat_detection_hashes() -> None:
    data = request(cookie=b"\xc0" * 20, nat_detection=(("127.0.0.1", 500), ("::1", 4500)))
    message = parse_message(data)
    assert message.payloads[:2] == ("N", "SA")
    assert message.notifies[0] == (16390, "COOKIE") and message.cookie == b"\xc0" * 20
    assert [n for n, _ in message.notifies[1:3]] == [16388, 16389]
    expected = hashlib.sha1(SPI + bytes(8) + bytes([127, 0, 0, 1]) + b"\x01\xf4").digest()
    assert nat_detection_hash(SPI, bytes(8), "127.0.0.1", 500) == expected
    assert expected in data


def test_nat_t_marker() -> None:
    plain, marked = request(), request(nat_t=True)
    assert marked == b"\x00\x00\x00\x00" + plain
    assert parse_message(marked, nat_t=True) == parse_message(plain)
    with pytest.raises(WireError, match="non-ESP marker"):
        parse_message(plain, nat_t=True)


@pytest.mark.parametrize(("name", "payloads", "notifies", "dh_group", "requested"), [
    ("response", ("SA", "KE", "Nr", "N", "N", "N", "N", "N", "N"),
     (16388, 16389, 16430, 16431, 16418, 16404), 31, None),
    ("response_nat_t", ("SA", "KE", "Nr", "N", "N", "N", "N", "N", "N"),
     (16388, 16389, 16430, 16431, 16418, 16404), 31, None),
    ("invalid_ke", ("N",), (17,), None, 31),
    ("cookie", ("N",), (16390,), None, None),
    ("no_proposal", ("N",), (14,), None, None),
])
def test_strongswan_replies(name: str, payloads: tuple[str, ...], notifies: tuple[int, ...],
                            dh_group: int | None, requested: int | None) -> None:
    spi, data = FIXTURES[name]
    message = parse_message(data, nat_t=name.endswith("nat_t"))
    assert message.payloads == payloads
    assert tuple(n for n, _ in message.notifies) == notifies
    assert (message.dh_group, message.requested_dh_group) == (dh_group, requested)
    assert message.is_response and message.exchange_name == "IKE_SA_INIT"
    assert answers(message, spi) and not answers(message, SPI)
    assert (message.cookie is not None) == (name == "cookie")


def test_notify_names() -> None:
    names = dict(parse_message(FIXTURES["response"][1]).notifies)
    assert names[16388] == "NAT_DETECTION_SOURCE_IP"
    assert names[16418] == "CHILDLESS_IKEV2_SUPPORTED"
    assert dict(parse_message(FIXTURES["invalid_ke"][1]).notifies) == {17: "INVALID_KE_PAYLOAD"}
    assert dict(parse_message(FIXTURES["no_proposal"][1]).notifies) == {14: "NO_PROPOSAL_CHOSEN"}


def test_answers_wants_a_response_to_ike_sa_init() -> None:
    base = parse_message(FIXTURES["response"][1])
    spi = base.initiator_spi
    fields = {f: getattr(base, f) for f in IKEMessage.__slots__}  # type: ignore[attr-defined]
    assert answers(IKEMessage(**fields), spi)
    assert not answers(IKEMessage(**{**fields, "is_response": False}), spi)
    assert not answers(IKEMessage(**{**fields, "exchange": 37}), spi)
    assert not answers(IKEMessage(**{**fields, "message_id": 1}), spi)


def test_encrypted_payload_stays_opaque() -> None:
    # IKE_AUTH response: HDR, SK {IDr, AUTH, ...}; the SK body is ciphertext.
    sk = struct.pack("!BBH", 36, 0, 4 + 40) + os.urandom(40)
    header = struct.pack("!8s8sBBBBII", SPI, b"\x09" * 8, 46, 0x20, 35, 0x20, 1, 28 + len(sk))
    message = parse_message(header + sk)
    assert (message.payloads, message.exchange_name, message.message_id) == (("SK",), "IKE_AUTH", 1)


@pytest.mark.parametrize(("data", "error"), [
    (b"", "shorter than the header"),
    (FIXTURES["response"][1][:27], "shorter than the header"),
    (FIXTURES["response"][1] + b"\x00", "length field"),
    (FIXTURES["response"][1][:17] + b"\x10" + FIXTURES["response"][1][18:], "major version 1"),
    # Notify payload whose length (3) is below its own header.
    (struct.pack("!8s8sBBBBII", SPI, bytes(8), 41, 0x20, 34, 0x20, 0, 32) + b"\x00\x00\x00\x03",
     "below its header"),
    # A payload running past the end of the message.
    (struct.pack("!8s8sBBBBII", SPI, bytes(8), 41, 0x20, 34, 0x20, 0, 32) + b"\x00\x00\x00\x20",
     "needs 28 bytes"),
    # INVALID_KE_PAYLOAD whose data is one byte, not a two-byte group.
    (struct.pack("!8s8sBBBBII", SPI, bytes(8), 41, 0x20, 34, 0x20, 0, 37)
     + struct.pack("!BBHBBH", 0, 0, 9, 0, 0, 17) + b"\x13", "INVALID_KE_PAYLOAD data"),
])
def test_malformed_messages(data: bytes, error: str) -> None:
    with pytest.raises(WireError, match=error):
        parse_message(data)


def test_trailing_bytes_after_the_chain() -> None:
    # Next Payload 0 after a notify, yet 4 more bytes inside the stated length.
    body = struct.pack("!BBHBBH", 0, 0, 8, 0, 0, 16430) + b"\x00\x00\x00\x00"
    data = struct.pack("!8s8sBBBBII", SPI, bytes(8), 41, 0x20, 34, 0x20, 0, 28 + len(body)) + body
    with pytest.raises(WireError, match="trailing"):
        parse_message(data)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"initiator_spi": bytes(8)}, "SPI"),
    ({"initiator_spi": b"\x01" * 4}, "SPI"),
    ({"nonce": b"\x01" * 15}, "nonce"),
])
def test_request_arguments_are_checked(kwargs: dict[str, bytes], error: str) -> None:
    arguments: dict[str, object] = {"initiator_spi": SPI, "nonce": b"\x11" * 32, "dh_group": 31,
                                    "key_exchange": b"\x22" * 32, **kwargs}
    with pytest.raises(ValueError, match=error):
        ike_sa_init(arguments.pop("initiator_spi"), **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [bytes(32), b"\xff" * 32, bytes(range(32))])
def test_key_exchange_values_match_cryptography(seed: bytes) -> None:
    assert key_exchange_for(31, seed) == (
        x25519.X25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw())
    point = key_exchange_for(19, seed)
    # A real P-256 point: cryptography refuses coordinates that are off the curve.
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + point)
    scalar = int.from_bytes(seed, "big") % (P256_ORDER - 1) + 1  # the scalar it documents
    reference = ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert point == reference[1:]
    modp = int.from_bytes(key_exchange_for(14, seed), "big")
    assert len(key_exchange_for(14, seed)) == 256 and 1 < modp


def test_modp_2048_prime_is_rfc_3526s() -> None:
    from probe.wire import ikev2
    p = ikev2._MODP_2048
    # RFC 3526 section 3: p = 2^2048 - 2^1984 - 1 + 2^64 * (floor(2^1918 pi) + 124476), a safe
    # prime; its top and bottom 64 bits are all ones and both p and (p-1)/2 pass Fermat tests.
    assert p.bit_length() == 2048 and p >> 1984 == 2**64 - 1 and p % 2**64 == 2**64 - 1
    q = (p - 1) // 2
    assert all(pow(a, p - 1, p) == 1 and pow(a, q - 1, q) == 1 for a in (2, 3, 5, 7, 11))
    with pytest.raises(ValueError, match="DH group 20"):
        key_exchange_for(20, bytes(32))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_hostile_bytes_raise_only_wire_error(data: bytes, nat_t: bool) -> None:
    try:
        parse_message(data, nat_t=nat_t)
    except WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FIXTURES)), st.binary(min_size=1, max_size=40),
       st.integers(0, 2**16))
def test_mutated_replies_raise_only_wire_error(name: str, noise: bytes, where: int) -> None:
    data = bytearray(FIXTURES[name][1])
    at = where % len(data)
    data[at : at + len(noise)] = noise
    try:
        parse_message(bytes(data), nat_t=name.endswith("nat_t"))
    except WireError:
        pass


# -- interop with a real responder -------------------------------------------

CHARON = Path("/usr/lib/ipsec/charon")  # Debian's strongswan-charon
STRONGSWAN_CONF = """\
charon {{
  port = 500
  port_nat_t = 4500
  # Only what IKE_SA_INIT needs; no bypass-lan, no routes: nothing touches the host.
  load_modular = no
  load = random nonce openssl pem pkcs1 x509 pubkey aes gcm sha1 sha2 hmac kdf gmp \
kernel-netlink socket-default vici
  install_routes = no
  install_virtual_ip = no
  filelog {{
    test {{
      path = {dir}/charon.log
      default = 1
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{dir}/charon.vici
    }}
  }}
}}
"""
# One connection per server address, each with its own proposals, so that every
# group's key exchange value gets computed with: default proposals (curve25519 first)
# on 127.0.0.1, ecp256 only on 127.0.0.2, modp2048 only on 127.0.0.3.
SWANCTL_CONF = """\
connections {{
{connections}
}}
secrets {{
  ike-lab {{
    secret = lab-only-not-a-secret
  }}
}}
"""
CONNECTION = """\
  {name} {{
    version = 2
    proposals = {proposals}
    local_addrs = {address}
    local {{
      auth = psk
      id = server.lab
    }}
    remote {{
      auth = psk
    }}
    children {{
      net {{
        local_ts = {address}/32
      }}
    }}
  }}"""
SERVERS = {"127.0.0.1": "default", "127.0.0.2": "aes256gcm16-prfsha384-ecp256",
           "127.0.0.3": "aes128-sha256-modp2048"}


@pytest.fixture
def strongswan(tmp_path: Path) -> Iterator[Path]:
    require(root=True, tools=("swanctl",))
    if not CHARON.exists():
        pytest.fail(f"{CHARON} is missing although swanctl is installed")
    (tmp_path / "strongswan.conf").write_text(STRONGSWAN_CONF.format(dir=tmp_path))
    (tmp_path / "swanctl.conf").write_text(SWANCTL_CONF.format(connections="\n".join(
        CONNECTION.format(name=f"lab{i}", address=address, proposals=proposals)
        for i, (address, proposals) in enumerate(SERVERS.items()))))
    env = {**os.environ, "STRONGSWAN_CONF": str(tmp_path / "strongswan.conf")}
    charon = subprocess.Popen([str(CHARON)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):  # charon is ready once its vici socket exists
            if (tmp_path / "charon.vici").exists() or charon.poll() is not None:
                break
            time.sleep(0.05)
        subprocess.run(["swanctl", "--load-all", "--file", str(tmp_path / "swanctl.conf"),
                        "--uri", f"unix://{tmp_path}/charon.vici"],
                       env=env, check=True, capture_output=True, timeout=30)
        yield tmp_path
    finally:
        charon.terminate()
        charon.wait(timeout=20)


def exchange(group: int, server: str, port: int = 500, nat_t: bool = False
             ) -> tuple[list[str], IKEMessage]:
    """IKE_SA_INIT until the responder takes it: echo a COOKIE, switch to
    the group an INVALID_KE_PAYLOAD asks for (RFC 7296 sections 2.6, 2.7)."""
    spi = os.urandom(8)
    cookie: bytes | None = None
    steps: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        for _ in range(4):
            udp.sendto(ike_sa_init(
                spi, nonce=os.urandom(32), dh_group=group, nat_t=nat_t, cookie=cookie,
                key_exchange=key_exchange_for(group, os.urandom(32)),
                nat_detection=(("127.0.0.1", udp.getsockname()[1]), (server, port)),
            ), (server, port))
            message = parse_message(udp.recvfrom(65535)[0], nat_t=nat_t)
            assert answers(message, spi)
            if message.cookie is not None:
                # strongSwan asks for cookies once 3 setups from one address are half-open.
                cookie = message.cookie
            elif message.requested_dh_group is not None:
                steps.append(f"INVALID_KE_PAYLOAD {message.requested_dh_group}")
                group, cookie = message.requested_dh_group, None
            else:
                return steps, message
    raise AssertionError(f"no answer after {steps}")


@pytest.mark.parametrize(("server", "group"), [("127.0.0.1", 31), ("127.0.0.2", 19),
                                               ("127.0.0.3", 14)])
def test_strongswan_accepts_each_key_exchange(strongswan: Path, server: str, group: int) -> None:
    # Each server takes only (or first) this group, so it computes a shared secret from our value.
    for first in (31, 19, 14):
        steps, message = exchange(first, server)
        assert steps == ([] if first == group else [f"INVALID_KE_PAYLOAD {group}"])
        assert message.payloads[:3] == ("SA", "KE", "Nr") and message.dh_group == group


def test_strongswan_answers_on_the_nat_t_port(strongswan: Path) -> None:
    steps, message = exchange(31, "127.0.0.1", port=4500, nat_t=True)
    assert steps == [] and message.payloads[:3] == ("SA", "KE", "Nr")
    assert message.notifies[:2] == ((16388, "NAT_DETECTION_SOURCE_IP"),
                                    (16389, "NAT_DETECTION_DESTINATION_IP"))
