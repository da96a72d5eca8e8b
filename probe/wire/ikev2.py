"""IKEv2's first exchange: the IKE_SA_INIT request, and the reply's outline.

A probe learns whether an IKEv2 VPN server answers by sending the request a
stock client sends (RFC 7296 section 1.2: SA, KE, Ni) and reading the
header, payload chain and notifications of what comes back: an
IKE_SA_INIT response, or a refusal such as INVALID_KE_PAYLOAD,
NO_PROPOSAL_CHOSEN or a COOKIE demand (section 2.6). Nothing is decrypted:
the exchange stops before any key is derived. On UDP port 4500 every IKE
message starts with a four-byte zero non-ESP marker (RFC 3948 section 2.2).

The key exchange value must still be a real public value: the responder
computes the shared secret before it answers, and strongSwan refuses a
point that is off the curve or a MODP value outside (1, p-1). So
:func:`key_exchange_for` derives one from a private scalar, in plain Python
(the wire package imports nothing outside the standard library): nobody
ever uses the secret, so the arithmetic need not be constant-time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from dataclasses import dataclass

from probe.wire.cursor import Cursor, WireError

IKE_PORT = 500
NAT_T_PORT = 4500
NON_ESP_MARKER = b"\x00\x00\x00\x00"  # RFC 3948 section 2.2

_HEADER = struct.Struct("!8s8sBBBBII")  # RFC 7296 section 3.1
HEADER_SIZE = _HEADER.size  # 28
_VERSION = 0x20  # major 2, minor 0
FLAG_INITIATOR = 0x08
FLAG_RESPONSE = 0x20

EXCHANGE_IKE_SA_INIT = 34
_EXCHANGE_NAMES = {  # RFC 7296 section 3.1, RFC 5723, RFC 9242
    34: "IKE_SA_INIT",
    35: "IKE_AUTH",
    36: "CREATE_CHILD_SA",
    37: "INFORMATIONAL",
    38: "IKE_SESSION_RESUME",
    43: "IKE_INTERMEDIATE",
}

# Payload types (RFC 7296 section 3.2, RFC 7383 for SKF); the nonce's name
# depends on the sender (Ni or Nr), see _payload_name.
PAYLOAD_SA = 33
PAYLOAD_KE = 34
PAYLOAD_NONCE = 40
PAYLOAD_NOTIFY = 41
PAYLOAD_SK = 46
PAYLOAD_SKF = 53
_PAYLOAD_NAMES = {
    33: "SA", 34: "KE", 35: "IDi", 36: "IDr", 37: "CERT", 38: "CERTREQ", 39: "AUTH",
    41: "N", 42: "D", 43: "V", 44: "TSi", 45: "TSr", 46: "SK", 47: "CP", 48: "EAP",
    49: "GSPM", 53: "SKF",
}

# Notify message types (RFC 7296 section 3.10.1; RFC 4555, 4739, 5685,
# 6023, 7383, 7427 for the later status types).
NOTIFY_NO_PROPOSAL_CHOSEN = 14
NOTIFY_INVALID_KE_PAYLOAD = 17
NOTIFY_NAT_DETECTION_SOURCE_IP = 16388
NOTIFY_NAT_DETECTION_DESTINATION_IP = 16389
NOTIFY_COOKIE = 16390
NOTIFY_FRAGMENTATION_SUPPORTED = 16430
NOTIFY_SIGNATURE_HASH_ALGORITHMS = 16431
_NOTIFY_NAMES = {
    1: "UNSUPPORTED_CRITICAL_PAYLOAD", 4: "INVALID_IKE_SPI", 5: "INVALID_MAJOR_VERSION",
    7: "INVALID_SYNTAX", 9: "INVALID_MESSAGE_ID", 11: "INVALID_SPI", 14: "NO_PROPOSAL_CHOSEN",
    17: "INVALID_KE_PAYLOAD", 24: "AUTHENTICATION_FAILED", 34: "SINGLE_PAIR_REQUIRED",
    35: "NO_ADDITIONAL_SAS", 36: "INTERNAL_ADDRESS_FAILURE", 37: "FAILED_CP_REQUIRED",
    38: "TS_UNACCEPTABLE", 39: "INVALID_SELECTORS", 43: "TEMPORARY_FAILURE",
    44: "CHILD_SA_NOT_FOUND",
    16384: "INITIAL_CONTACT", 16385: "SET_WINDOW_SIZE", 16386: "ADDITIONAL_TS_POSSIBLE",
    16387: "IPCOMP_SUPPORTED", 16388: "NAT_DETECTION_SOURCE_IP",
    16389: "NAT_DETECTION_DESTINATION_IP", 16390: "COOKIE", 16391: "USE_TRANSPORT_MODE",
    16392: "HTTP_CERT_LOOKUP_SUPPORTED", 16393: "REKEY_SA",
    16394: "ESP_TFC_PADDING_NOT_SUPPORTED", 16395: "NON_FIRST_FRAGMENTS_ALSO",
    16396: "MOBIKE_SUPPORTED", 16404: "MULTIPLE_AUTH_SUPPORTED", 16418: "CHILDLESS_IKEV2_SUPPORTED",
    16405: "ANOTHER_AUTH_FOLLOWS", 16406: "REDIRECT_SUPPORTED", 16407: "REDIRECT",
    16430: "IKEV2_FRAGMENTATION_SUPPORTED", 16431: "SIGNATURE_HASH_ALGORITHMS",
}

# Transform types and IDs (RFC 7296 section 3.3.2, RFC 5282 for GCM,
# RFC 8031 for curve25519, RFC 5903 for the ECP groups).
_ENCR, _PRF, _INTEG, _DH = 1, 2, 3, 4
_ENCR_AES_CBC = 12
_ENCR_AES_GCM_16 = 20
_PRF_HMAC_SHA2_256, _PRF_HMAC_SHA2_384 = 5, 6
_AUTH_HMAC_SHA2_256_128, _AUTH_HMAC_SHA2_384_192 = 12, 13
_KEY_LENGTH = 0x800E  # attribute type 14 in TV format (AF bit set)
DH_MODP_2048 = 14
DH_ECP_256 = 19
DH_CURVE25519 = 31
DH_GROUPS = (DH_CURVE25519, DH_ECP_256, DH_MODP_2048)
# Hash algorithms for SIGNATURE_HASH_ALGORITHMS (RFC 7427 section 7):
# SHA2-256, SHA2-384, SHA2-512, Identity; what strongSwan 5.9 sends.
_SIGNATURE_HASHES = (2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class IKEMessage:
    initiator_spi: bytes
    responder_spi: bytes
    exchange: int
    exchange_name: str
    is_response: bool
    message_id: int
    payloads: tuple[str, ...]  # in order; an SK payload's contents stay opaque
    notifies: tuple[tuple[int, str], ...]
    # From the payloads that shape the next try: the group of the responder's
    # KE payload, the group an INVALID_KE_PAYLOAD asks for (section 2.7),
    # the data of a COOKIE to echo (section 2.6).
    dh_group: int | None = None
    requested_dh_group: int | None = None
    cookie: bytes | None = None


def exchange_name(exchange: int) -> str:
    return _EXCHANGE_NAMES.get(exchange, str(exchange))


def notify_name(notify_type: int) -> str:
    return _NOTIFY_NAMES.get(notify_type, str(notify_type))


# -- building the request --------------------------------------------------


def _payload(next_payload: int, body: bytes) -> bytes:
    """A generic payload header (section 3.2), critical bit clear."""
    return struct.pack("!BBH", next_payload, 0, 4 + len(body)) + body


def _chain(payloads: list[tuple[int, bytes]]) -> tuple[int, bytes]:
    """Payloads linked by their Next Payload fields; returns the first type."""
    out = b""
    for index, (_, body) in enumerate(payloads):
        following = payloads[index + 1][0] if index + 1 < len(payloads) else 0
        out += _payload(following, body)
    return payloads[0][0], out


def _transform(kind: int, transform_id: int, key_length: int | None, last: bool) -> bytes:
    """A transform substructure (section 3.3.2), with a Key Length attribute
    (section 3.3.5) for the ciphers whose key size varies."""
    attributes = b"" if key_length is None else struct.pack("!HH", _KEY_LENGTH, key_length)
    return struct.pack("!BBHBBH", 0 if last else 3, 0, 8 + len(attributes), kind, 0,
                       transform_id) + attributes


def _proposal(number: int, transforms: list[tuple[int, int, int | None]], last: bool) -> bytes:
    """An IKE proposal (section 3.3.1): protocol 1, no SPI in IKE_SA_INIT."""
    body = b"".join(
        _transform(kind, tid, length, i == len(transforms) - 1)
        for i, (kind, tid, length) in enumerate(transforms)
    )
    return struct.pack("!BBHBBBB", 0 if last else 2, 0, 8 + len(body), number, 1, 0,
                       len(transforms)) + body


def _security_association(dh_group: int) -> bytes:
    """Two proposals, since an AEAD cipher cannot share one with integrity
    algorithms (RFC 5282 section 8): AES-GCM-16, then AES-CBC with
    HMAC-SHA2. The group of our KE payload goes first so that a responder
    that honours the initiator's order needs no second round trip."""
    groups = [dh_group] + [g for g in DH_GROUPS if g != dh_group]
    prfs = [(_PRF, _PRF_HMAC_SHA2_256, None), (_PRF, _PRF_HMAC_SHA2_384, None)]
    dhs = [(_DH, g, None) for g in groups]
    aead = [(_ENCR, _ENCR_AES_GCM_16, 256), (_ENCR, _ENCR_AES_GCM_16, 128), *prfs, *dhs]
    cbc = [(_ENCR, _ENCR_AES_CBC, 256), (_ENCR, _ENCR_AES_CBC, 128),
           (_INTEG, _AUTH_HMAC_SHA2_256_128, None), (_INTEG, _AUTH_HMAC_SHA2_384_192, None),
           *prfs, *dhs]
    return _proposal(1, aead, last=False) + _proposal(2, cbc, last=True)


def _notify(notify_type: int, data: bytes) -> bytes:
    """A Notify payload body about the IKE SA (section 3.10: protocol 0, no SPI)."""
    return struct.pack("!BBH", 0, 0, notify_type) + data


def nat_detection_hash(initiator_spi: bytes, responder_spi: bytes, address: str,
                       port: int) -> bytes:
    """SHA-1 of the SPIs, the IP address and the port (section 2.23)."""
    packed = ipaddress.ip_address(address).packed
    return hashlib.sha1(initiator_spi + responder_spi + packed + struct.pack("!H", port)).digest()


def ike_sa_init(initiator_spi: bytes, *, nonce: bytes, dh_group: int, key_exchange: bytes,
                nat_t: bool = False, cookie: bytes | None = None,
                nat_detection: tuple[tuple[str, int], tuple[str, int]] | None = None) -> bytes:
    """The IKE_SA_INIT request (section 1.2): HDR, SA, KE, Ni, N...

    ``cookie`` echoes a responder's COOKIE as the first payload (section
    2.6). ``nat_detection`` is ((source address, port), (destination
    address, port)) for the NAT_DETECTION_*_IP notifications every stock
    client sends (section 2.23). The fragmentation and signature-hash
    notifications are strongSwan's defaults, so the request looks like one.
    """
    if len(initiator_spi) != 8 or initiator_spi == bytes(8):
        raise ValueError("the initiator SPI is 8 bytes, not all zero (RFC 7296 section 3.1)")
    if not 16 <= len(nonce) <= 256:
        raise ValueError("a nonce is 16 to 256 bytes (RFC 7296 section 3.9)")
    payloads: list[tuple[int, bytes]] = []
    if cookie is not None:
        payloads.append((PAYLOAD_NOTIFY, _notify(NOTIFY_COOKIE, cookie)))
    payloads += [
        (PAYLOAD_SA, _security_association(dh_group)),
        (PAYLOAD_KE, struct.pack("!HH", dh_group, 0) + key_exchange),
        (PAYLOAD_NONCE, nonce),
    ]
    if nat_detection is not None:
        for kind, (address, port) in zip(
            (NOTIFY_NAT_DETECTION_SOURCE_IP, NOTIFY_NAT_DETECTION_DESTINATION_IP), nat_detection
        ):
            digest = nat_detection_hash(initiator_spi, bytes(8), address, port)
            payloads.append((PAYLOAD_NOTIFY, _notify(kind, digest)))
    payloads += [
        (PAYLOAD_NOTIFY, _notify(NOTIFY_FRAGMENTATION_SUPPORTED, b"")),
        (PAYLOAD_NOTIFY, _notify(NOTIFY_SIGNATURE_HASH_ALGORITHMS,
                                 b"".join(struct.pack("!H", h) for h in _SIGNATURE_HASHES))),
    ]
    first, body = _chain(payloads)
    header = _HEADER.pack(initiator_spi, bytes(8), first, _VERSION, EXCHANGE_IKE_SA_INIT,
                          FLAG_INITIATOR, 0, HEADER_SIZE + len(body))
    return (NON_ESP_MARKER if nat_t else b"") + header + body


# -- reading the reply -----------------------------------------------------


def _payload_name(kind: int, from_initiator: bool) -> str:
    if kind == PAYLOAD_NONCE:
        return "Ni" if from_initiator else "Nr"
    return _PAYLOAD_NAMES.get(kind, str(kind))


def parse_message(data: bytes, *, nat_t: bool = False) -> IKEMessage:
    """The header and payload chain of one IKE datagram (sections 3.1-3.2).

    Payloads inside an SK (or SKF) payload are encrypted and not read; the
    SK payload is always the last one (section 3.14).
    """
    if nat_t:
        if data[:4] != NON_ESP_MARKER:
            raise WireError("IKE over UDP 4500: no non-ESP marker (an ESP packet or a keepalive)")
        data = data[4:]
    if len(data) < HEADER_SIZE:
        raise WireError(f"IKE message: {len(data)} bytes, shorter than the header")
    ispi, rspi, next_payload, version, exchange, flags, message_id, length = _HEADER.unpack_from(
        data)
    if version >> 4 != 2:
        raise WireError(f"IKE message: major version {version >> 4}, not 2")
    if length != len(data):
        raise WireError(f"IKE message: length field {length}, datagram {len(data)} bytes")
    from_initiator = bool(flags & FLAG_INITIATOR)
    cursor = Cursor(data[HEADER_SIZE:], "IKE payload chain")
    names: list[str] = []
    notifies: list[tuple[int, str]] = []
    dh_group = requested = cookie = None
    while next_payload:
        kind = next_payload
        next_payload, _flags, payload_length = struct.unpack("!BBH", cursor.take(4))
        if payload_length < 4:
            raise WireError(f"IKE payload {kind}: length {payload_length} below its header")
        names.append(_payload_name(kind, from_initiator))
        body = Cursor(cursor.take(payload_length - 4), f"IKE payload {names[-1]}")
        if kind == PAYLOAD_NOTIFY:
            notify_type, notify_data = _read_notify(body)
            notifies.append((notify_type, notify_name(notify_type)))
            if notify_type == NOTIFY_INVALID_KE_PAYLOAD:
                requested = Cursor(notify_data, "INVALID_KE_PAYLOAD data").uint(2)
            elif notify_type == NOTIFY_COOKIE:
                cookie = notify_data
        elif kind == PAYLOAD_KE:
            dh_group = body.uint(2)
        if kind in (PAYLOAD_SK, PAYLOAD_SKF):
            break  # its Next Payload names the first encrypted one
    cursor.end()
    return IKEMessage(
        initiator_spi=ispi,
        responder_spi=rspi,
        exchange=exchange,
        exchange_name=exchange_name(exchange),
        is_response=bool(flags & FLAG_RESPONSE),
        message_id=message_id,
        payloads=tuple(names),
        notifies=tuple(notifies),
        dh_group=dh_group,
        requested_dh_group=requested,
        cookie=cookie,
    )


def _read_notify(body: Cursor) -> tuple[int, bytes]:
    """Notify payload (section 3.10): protocol, SPI size, type, SPI, data."""
    body.take(1)
    spi_size = body.uint(1)
    notify_type = body.uint(2)
    body.take(spi_size)
    return notify_type, body.rest()


def answers(message: IKEMessage, initiator_spi: bytes) -> bool:
    """Whether ``message`` is the response to our IKE_SA_INIT (section 2.2:
    message ID 0, our SPI, the Response flag)."""
    return (
        message.initiator_spi == initiator_spi
        and message.is_response
        and message.exchange == EXCHANGE_IKE_SA_INIT
        and message.message_id == 0
    )


# -- key exchange values ---------------------------------------------------

# RFC 3526 section 3: the 2048-bit MODP group, generator 2.
_MODP_2048 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "95581718" "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)

# RFC 5903 section 3.1 (the NIST P-256 curve, a = -3).
_P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

_X25519_P = 2**255 - 19
_X25519_A24 = 121665  # (486662 - 2) / 4, RFC 7748 section 5


def key_exchange_for(dh_group: int, random_bytes: bytes) -> bytes:
    """The Key Exchange Data of a KE payload for ``dh_group``, from 32
    random bytes used as the private scalar (then forgotten):

    - 31, curve25519: X25519(k, 9), 32 bytes (RFC 7748 section 6.1, RFC 8031);
    - 19, ecp256: x || y of k*G, 64 bytes (RFC 5903 section 7);
    - 14, modp2048: 2^k mod p, 256 bytes (RFC 7296 section 3.4).
    """
    if len(random_bytes) != 32:
        raise ValueError("key_exchange_for takes 32 random bytes")
    scalar = int.from_bytes(random_bytes, "big")
    if dh_group == DH_CURVE25519:
        return _x25519_base(random_bytes)
    if dh_group == DH_ECP_256:
        x, y = _p256_multiply(scalar % (_P256_N - 1) + 1, _P256_G)
        return x.to_bytes(32, "big") + y.to_bytes(32, "big")
    if dh_group == DH_MODP_2048:
        return pow(2, scalar | 1 << 255, _MODP_2048).to_bytes(256, "big")
    raise ValueError(f"no key exchange value for DH group {dh_group}; use one of {DH_GROUPS}")


def _x25519_base(private: bytes) -> bytes:
    """RFC 7748 section 5: the Montgomery ladder on u = 9 with a clamped scalar."""
    k = int.from_bytes(private, "little")
    k &= ~7
    k &= (1 << 255) - 1
    k |= 1 << 254
    p = _X25519_P
    x1, x2, z2, x3, z3 = 9, 1, 0, 9, 1
    for bit in range(254, -1, -1):
        if (k >> bit) & 1:
            x2, x3, z2, z3 = x3, x2, z3, z2
        a, b = (x2 + z2) % p, (x2 - z2) % p
        aa, bb = a * a % p, b * b % p
        e = (aa - bb) % p
        c, d = (x3 + z3) % p, (x3 - z3) % p
        da, cb = d * a % p, c * b % p
        x3, z3 = (da + cb) ** 2 % p, x1 * (da - cb) ** 2 % p
        x2, z2 = aa * bb % p, e * (aa + _X25519_A24 * e) % p
        if (k >> bit) & 1:
            x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


_Point = tuple[int, int] | None  # None is the point at infinity


def _p256_add(left: _Point, right: _Point) -> _Point:
    """Affine addition on y^2 = x^3 - 3x + b over GF(p)."""
    if left is None:
        return right
    if right is None:
        return left
    p = _P256_P
    (x1, y1), (x2, y2) = left, right
    if x1 == x2:
        if (y1 + y2) % p == 0:
            return None
        slope = (3 * x1 * x1 - 3) * pow(2 * y1, -1, p) % p
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, p) % p
    x3 = (slope * slope - x1 - x2) % p
    return x3, (slope * (x1 - x3) - y1) % p


def _p256_multiply(scalar: int, point: tuple[int, int]) -> tuple[int, int]:
    result: _Point = None
    addend: _Point = point
    while scalar:
        if scalar & 1:
            result = _p256_add(result, addend)
        addend = _p256_add(addend, addend)
        scalar >>= 1
    assert result is not None  # 0 < scalar < n
    return result

