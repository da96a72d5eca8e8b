"""OpenVPN's first exchange: the client's hard reset and the server's reply.

OpenVPN has no published specification; the layout below is the one
OpenVPN 2.x reads and writes (src/openvpn/ssl_pkt.h for the opcodes,
reliable.c for the ack array, ssl_pkt.c for tls-auth, tls_crypt.c for
tls-crypt). Every control packet starts with one byte, opcode << 3 | key_id,
and the sender's 8-byte session id. What follows depends on the wrapping::

    none       op sid                                  | control
    tls-auth   op sid HMAC  packet-id time             | control
    tls-crypt  op sid packet-id time tag(32)           | AES-256-CTR(control)

    control =  ack count (1) | acked message ids (4 each)
               | remote session id (8, only when count > 0)
               | message packet-id (4, absent in P_ACK_V1) | payload

tls-auth's HMAC covers ``packet-id time op sid control``: OpenVPN computes
it with the HMAC and packet-id in front and then swaps them behind the
session id (ssl_pkt.c ``swap_hmac``). tls-crypt's tag is HMAC-SHA256 over
``op sid packet-id time control`` and its first 16 bytes are the CTR IV
(tls_crypt.c ``tls_crypt_wrap``). The packet-id and time pair is the
replay protection of the wrapping, not the reliability layer's message id.

Over TCP every packet is preceded by its length in two bytes (socket.c
``stream_buf``). Nothing here does I/O; every parser raises only
:class:`WireError`.
"""

from __future__ import annotations

import hmac
import re
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from probe.wire.cursor import Cursor, WireError, split_frames

__all__ = [
    "OPCODE_NAMES",
    "OPCODE_SHIFT",
    "P_ACK_V1",
    "P_CONTROL_HARD_RESET_CLIENT_V1",
    "P_CONTROL_HARD_RESET_CLIENT_V2",
    "P_CONTROL_HARD_RESET_CLIENT_V3",
    "P_CONTROL_HARD_RESET_SERVER_V1",
    "P_CONTROL_HARD_RESET_SERVER_V2",
    "P_CONTROL_SOFT_RESET_V1",
    "P_CONTROL_V1",
    "P_CONTROL_WKC_V1",
    "P_DATA_V1",
    "P_DATA_V2",
    "ControlChannelKey",
    "Header",
    "Packet",
    "answers_reset",
    "client_hard_reset",
    "parse_header",
    "parse_packet",
    "parse_static_key",
    "tcp_frame",
    "tcp_unframe",
]

# ssl_pkt.h. The V1 resets are obsolete (2.6 refuses them) but still named,
# so that a capture of an old peer reads as OpenVPN rather than noise.
P_CONTROL_HARD_RESET_CLIENT_V1 = 1
P_CONTROL_HARD_RESET_SERVER_V1 = 2
P_CONTROL_SOFT_RESET_V1 = 3
P_CONTROL_V1 = 4
P_ACK_V1 = 5
P_DATA_V1 = 6
P_CONTROL_HARD_RESET_CLIENT_V2 = 7
P_CONTROL_HARD_RESET_SERVER_V2 = 8
P_DATA_V2 = 9
P_CONTROL_HARD_RESET_CLIENT_V3 = 10  # tls-crypt-v2: a wrapped client key follows
P_CONTROL_WKC_V1 = 11  # tls-crypt-v2 key resent with the third packet (2.6)

# Read off the constants above, so that a name can never disagree with its code.
OPCODE_NAMES = {
    code: name for name, code in globals().items()
    if name.startswith("P_") and isinstance(code, int)
}

# ssl_pkt.h P_OPCODE_SHIFT and P_KEY_ID_MASK: a packet's first byte.
OPCODE_SHIFT = 3
_KEY_ID_MASK = 0x07
SESSION_ID_SIZE = 8
# reliable.h RELIABLE_ACK_SIZE: a peer that lists more acks is refused (reliable.c).
MAX_ACKS = 8
_DATA_OPCODES = (P_DATA_V1, P_DATA_V2)
# tls-crypt-v2 packets end in a wrapped client key that only the server can
# open, so their body is kept opaque.
_CRYPT_V2_OPCODES = (P_CONTROL_HARD_RESET_CLIENT_V3, P_CONTROL_WKC_V1)
_SERVER_RESETS = (P_CONTROL_HARD_RESET_SERVER_V2, P_CONTROL_HARD_RESET_SERVER_V1)

# crypto.c read_key_file / write_key_file.
_KEY_HEAD = "-----BEGIN OpenVPN Static key V1-----"
_KEY_FOOT = "-----END OpenVPN Static key V1-----"
_KEY_BODY = re.compile(r"[0-9a-fA-F\s]*")
STATIC_KEY_SIZE = 256  # two crypto.h `struct key`: cipher[64] then hmac[64] each
_HALF = STATIC_KEY_SIZE // 2
_CIPHER_PART = 64
_TLS_CRYPT_TAG = 32  # tls_crypt.h TLS_CRYPT_TAG_SIZE (HMAC-SHA256)
_AES256 = 32
_CTR_IV = 16  # the tag's 128 most significant bits
_TLS_AUTH_DIGESTS = {"sha1": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}
_TCP_MAX = 0xFFFF


def parse_static_key(text: str) -> bytes:
    """The 256 bytes of an "OpenVPN Static key V1" block (``openvpn --genkey secret``).

    Like OpenVPN's reader, anything before the header (the ``#`` comment
    that --genkey writes, or the rest of an inline config) is ignored;
    between header and footer only hex digits and white space may stand.
    """
    start = text.find(_KEY_HEAD)
    if start < 0:
        raise WireError(f"OpenVPN static key: no '{_KEY_HEAD}' line")
    body_start = start + len(_KEY_HEAD)
    end = text.find(_KEY_FOOT, body_start)
    if end < 0:
        raise WireError(f"OpenVPN static key: no '{_KEY_FOOT}' line")
    body = text[body_start:end]
    if not _KEY_BODY.fullmatch(body):
        bad = next(c for c in body if not (c.isspace() or c in "0123456789abcdefABCDEF"))
        raise WireError(f"OpenVPN static key: {bad!r} is not a hex digit")
    digits = "".join(body.split())
    if len(digits) != 2 * STATIC_KEY_SIZE:
        raise WireError(
            f"OpenVPN static key: {len(digits) / 2:g} bytes, expected {STATIC_KEY_SIZE} "
            "(a key from 'openvpn --genkey secret')"
        )
    return bytes.fromhex(digits)


@dataclass(frozen=True, slots=True)
class ControlChannelKey:
    """A tls-auth or tls-crypt key, and how the client uses it.

    ``direction`` is tls-auth's ``key-direction`` as the client's config
    says it (None: the key is used both ways); ``digest`` is tls-auth's
    ``auth``. tls-crypt fixes both: HMAC-SHA256 with AES-256-CTR, and the
    client always in key direction 1 (tls_crypt.c ``tls_crypt_init_key``),
    so they are ignored for it.
    """

    mode: str  # "tls-auth" | "tls-crypt"
    key: bytes
    direction: int | None = None
    digest: str = "sha1"

    def __post_init__(self) -> None:
        if self.mode not in ("tls-auth", "tls-crypt"):
            raise WireError(f"control channel key: mode {self.mode!r}, not tls-auth or tls-crypt")
        if len(self.key) != STATIC_KEY_SIZE:
            raise WireError(f"control channel key: {len(self.key)} bytes, not {STATIC_KEY_SIZE}")
        if self.direction not in (None, 0, 1):
            raise WireError(f"control channel key: key-direction {self.direction!r}, not 0 or 1")
        if self.digest not in _TLS_AUTH_DIGESTS:
            raise WireError(
                f"control channel key: digest {self.digest!r}, not one of "
                f"{', '.join(_TLS_AUTH_DIGESTS)}"
            )

    def material(self, *, sent_by_client: bool) -> tuple[bytes, bytes]:
        """(cipher key, HMAC key) that protect a packet sent in that direction.

        crypto.c ``key_direction_state_init``: direction 0 sends with key 0
        and receives with key 1, direction 1 the reverse, bidirectional uses
        key 0 both ways. An HMAC key is as long as its digest
        (``hmac_ctx_init``).
        """
        direction = 1 if self.mode == "tls-crypt" else self.direction
        index = 0 if direction is None else (direction if sent_by_client else 1 - direction)
        half = self.key[index * _HALF : (index + 1) * _HALF]
        digest = "sha256" if self.mode == "tls-crypt" else self.digest
        return half[:_AES256], half[_CIPHER_PART : _CIPHER_PART + _TLS_AUTH_DIGESTS[digest]]


@dataclass(frozen=True, slots=True)
class Header:
    """What every OpenVPN packet shows in clear, wrapped or not."""

    opcode: int
    name: str
    key_id: int
    session_id: bytes  # empty for data packets, which carry none


@dataclass(frozen=True, slots=True)
class Packet:
    """One OpenVPN packet, unwrapped.

    Data packets and tls-crypt-v2 client packets keep everything after
    the header in ``payload`` (their acks and ids are not readable without
    keys we do not hold). ``packet_id`` and ``timestamp`` are the replay
    protection of tls-auth/tls-crypt (None without wrapping).
    """

    opcode: int
    name: str
    key_id: int
    session_id: bytes
    acks: tuple[int, ...]
    remote_session_id: bytes | None
    message_id: int | None
    payload: bytes
    packet_id: int | None = None
    timestamp: int | None = None


def client_hard_reset(
    session_id: bytes,
    *,
    packet_id: int = 1,
    timestamp: int = 0,
    wrap: ControlChannelKey | None = None,
) -> bytes:
    """The client's first packet: P_CONTROL_HARD_RESET_CLIENT_V2, key id 0.

    No acks, message packet-id 0 (ssl.c: the reset is always message 0)
    and no payload. ``packet_id`` must not be 0 when wrapped: OpenVPN's
    replay check refuses id 0 (packet_id.c ``packet_id_test``).
    ``timestamp`` is the wrapping's time field (OpenVPN puts its clock
    there; a server does not replay-check the first packet).
    """
    if len(session_id) != SESSION_ID_SIZE or not any(session_id):
        # session_id.h session_id_defined: an all-zero id means "none".
        raise WireError(f"OpenVPN session id: {len(session_id)} bytes; need 8, not all zero")
    if not (0 <= packet_id <= 0xFFFFFFFF and 0 <= timestamp <= 0xFFFFFFFF):
        raise WireError("OpenVPN packet-id and timestamp are 32-bit unsigned")
    header = bytes([P_CONTROL_HARD_RESET_CLIENT_V2 << OPCODE_SHIFT]) + session_id
    control = b"\x00" + struct.pack("!I", 0)  # no acks; message packet-id 0
    if wrap is None:
        return header + control
    replay = struct.pack("!II", packet_id, timestamp)
    cipher_key, hmac_key = wrap.material(sent_by_client=True)
    if wrap.mode == "tls-auth":
        mac = hmac.digest(hmac_key, replay + header + control, wrap.digest)
        return header + mac + replay + control
    tag = hmac.digest(hmac_key, header + replay + control, "sha256")
    return header + replay + tag + _ctr(cipher_key, tag[:_CTR_IV], control)


def parse_header(data: bytes) -> Header:
    """Opcode, key id and session id: readable without any key."""
    cursor = Cursor(data, "OpenVPN packet")
    first = cursor.uint(1)
    opcode = first >> OPCODE_SHIFT
    name = OPCODE_NAMES.get(opcode)
    if name is None:
        raise WireError(f"OpenVPN packet: unknown opcode {opcode}")
    session_id = b"" if opcode in _DATA_OPCODES else cursor.take(SESSION_ID_SIZE)
    return Header(opcode, name, first & _KEY_ID_MASK, session_id)


def parse_packet(
    data: bytes, wrap: ControlChannelKey | None = None, *, from_client: bool = False
) -> Packet:
    """A server's packet (``from_client=True``: a client's), unwrapped with ``wrap``.

    A wrong HMAC or tag raises WireError: either the packet was forged or
    altered on the way, or the server holds another key.
    """
    header = parse_header(data)
    rest = data[1 + len(header.session_id) :]
    if header.opcode in _DATA_OPCODES or header.opcode in _CRYPT_V2_OPCODES:
        return Packet(header.opcode, header.name, header.key_id, header.session_id,
                      (), None, None, rest)
    packet_id = timestamp = None
    if wrap is not None:
        rest, packet_id, timestamp = _unwrap(data[: 1 + SESSION_ID_SIZE], rest, wrap,
                                             sent_by_client=from_client)
    control = Cursor(rest, f"OpenVPN {header.name}")
    count = control.uint(1)
    if count > MAX_ACKS:
        raise WireError(f"OpenVPN {header.name}: {count} acks, at most {MAX_ACKS}")
    acks = tuple(control.uint(4) for _ in range(count))
    remote = control.take(SESSION_ID_SIZE) if count else None
    message_id = None if header.opcode == P_ACK_V1 else control.uint(4)
    return Packet(header.opcode, header.name, header.key_id, header.session_id, acks, remote,
                  message_id, control.rest(), packet_id, timestamp)


def answers_reset(packet: Packet, session_id: bytes) -> bool:
    """Whether ``packet`` is the server's reset reply to our session ``session_id``.

    The reply acks our reset and names our session id as its remote
    session (ssl_pkt.c ``tls_reset_standalone``): an on-path injector
    that never saw our packet cannot echo it.
    """
    return packet.opcode in _SERVER_RESETS and packet.remote_session_id == session_id


def tcp_frame(packet: bytes) -> bytes:
    """One packet as OpenVPN sends it over TCP: a 16-bit length, then the packet."""
    if not 0 < len(packet) <= _TCP_MAX:
        raise WireError(f"OpenVPN over TCP: a packet of {len(packet)} bytes cannot be framed")
    return struct.pack("!H", len(packet)) + packet


def tcp_unframe(buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
    """The whole packets at the start of a TCP stream, and what is left over.

    A zero length is refused, as OpenVPN does (socket.c ``stream_buf_added``):
    the stream is not OpenVPN, or is out of step.
    """
    return split_frames(buffer, 2, _framed_length)


def _framed_length(buffer: bytes, at: int) -> tuple[int, int]:
    length = (buffer[at] << 8) | buffer[at + 1]
    if length == 0:
        raise WireError(f"OpenVPN over TCP: zero-length packet at stream offset {at}")
    return 2, length


def _unwrap(
    header: bytes, rest: bytes, wrap: ControlChannelKey, *, sent_by_client: bool
) -> tuple[bytes, int, int]:
    """(control bytes, packet-id, time) of a tls-auth or tls-crypt packet."""
    cipher_key, hmac_key = wrap.material(sent_by_client=sent_by_client)
    cursor = Cursor(rest, f"OpenVPN {wrap.mode}")
    if wrap.mode == "tls-auth":
        mac = cursor.take(_TLS_AUTH_DIGESTS[wrap.digest])
        replay = cursor.take(8)
        control = cursor.rest()
        expected = hmac.digest(hmac_key, replay + header + control, wrap.digest)
    else:
        replay = cursor.take(8)
        mac = cursor.take(_TLS_CRYPT_TAG)
        control = _ctr(cipher_key, mac[:_CTR_IV], cursor.rest())
        expected = hmac.digest(hmac_key, header + replay + control, "sha256")
    if not hmac.compare_digest(mac, expected):
        raise WireError(f"OpenVPN {wrap.mode}: authentication failed (wrong key or direction, "
                        "or the packet was altered)")
    packet_id, timestamp = struct.unpack("!II", replay)
    return control, packet_id, timestamp


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-256-CTR, the same both ways (tls-crypt's cipher)."""
    transform = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return transform.update(data) + transform.finalize()
