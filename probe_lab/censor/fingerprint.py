"""What the censor recognises of OpenVPN without any key: a client's first packet.

After Xue et al., "OpenVPN is Open to VPN Fingerprinting" (USENIX Security
2022): every OpenVPN session opens with the client's hard reset, whose
opcode and shape give it away whatever the wrapping. The censor reads
only what is in clear (the layouts are in :mod:`probe.wire.openvpn`);
after the opcode byte and the 8-byte session id come::

    wrapping      then                                                  packet
    none          ack count 0, message packet-id 0                      14 bytes
    tls-auth      HMAC (16-64), packet-id, time, ack count 0,           22 + HMAC
                  message packet-id 0
    tls-crypt     packet-id, time, tag (32), 5 encrypted bytes          54
    tls-crypt-v2  the tls-crypt layout, then the wrapped client key,    54 + key
                  which ends in its own length (290 to 1024 bytes)

The opcode is P_CONTROL_HARD_RESET_CLIENT_V2, or V3 with tls-crypt-v2
(ssl.c ``tls_session_init``), and the key id 0 (ssl_pkt.h: a session
starts with key 0). The wrapping's packet-id counts from 1 and every
resend of the reset takes the next one; tls-crypt-v2 clients of 2.6 and
later count from EARLY_NEG_START instead (ssl.c, ssl_pkt.h), so a first
packet's id is small. Other protocols can begin with the same byte (a DNS
id, an IKE SPI, a QUIC short header), so the session id must also look
drawn at random (session_id.c ``session_id_random``): a DNS header puts
its counts there, five zero bytes of eight.

Over TCP each packet follows its length in two bytes (socket.c). Sans-I/O;
every reader raises only :class:`WireError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.wire import WireError
from probe.wire.openvpn import (
    OPCODE_SHIFT,
    P_CONTROL_HARD_RESET_CLIENT_V2,
    P_CONTROL_HARD_RESET_CLIENT_V3,
    SESSION_ID_SIZE,
    parse_header,
)

__all__ = ["FIRST_BYTES", "MAX_RESET", "ClientReset", "client_reset", "tcp_client_reset"]

# The reset's first byte: its opcode with key id 0.
FIRST_BYTES = frozenset(
    op << OPCODE_SHIFT for op in (P_CONTROL_HARD_RESET_CLIENT_V2, P_CONTROL_HARD_RESET_CLIENT_V3)
)
_FIRST_CONTROL = bytes(5)  # ack count 0, message packet-id 0: the reset is message 0
_REPLAY = 8  # the wrapping's packet-id and time (packet_id.h, long form)
_TAG = 32  # tls_crypt.h TLS_CRYPT_TAG_SIZE
_CRYPT = _REPLAY + _TAG + len(_FIRST_CONTROL)  # what tls-crypt puts after the session id
# tls-auth's HMAC: MD5, SHA1 (or RIPEMD160), SHA224, SHA256, SHA384, SHA512 (--auth).
_HMAC_SIZES = frozenset({16, 20, 28, 32, 48, 64})
# tls_crypt.h: the wrapped client key holds a tag, the 2048-bit client key,
# metadata and its own 16-bit length, TLS_CRYPT_V2_MAX_WKC_LEN at most.
_MIN_WRAPPED_KEY = _TAG + 256 + 2
_MAX_WRAPPED_KEY = 1024
_EARLY_NEG_START = 0x0F000000
_FIRST_PACKET_IDS = range(1, 256)
# Zero bytes a random session id may hold: four or more of eight happen
# once in 60 million sessions; a DNS query header has at least four.
_MAX_ZERO_BYTES = 3
_HEAD = 1 + SESSION_ID_SIZE
_SMALLEST = _HEAD + len(_FIRST_CONTROL)
MAX_RESET = _HEAD + _CRYPT + _MAX_WRAPPED_KEY  # the longest client reset, in bytes


@dataclass(frozen=True, slots=True)
class ClientReset:
    """An OpenVPN client's first packet, as far as it shows without keys."""

    opcode: str  # P_CONTROL_HARD_RESET_CLIENT_V2 or _V3
    wrapping: str  # none | tls-auth | tls-crypt | tls-crypt-v2
    session_id: bytes

    def __str__(self) -> str:
        return f"{self.opcode} ({self.wrapping})"


def client_reset(packet: bytes) -> ClientReset:
    """``packet`` (a UDP payload) read as a client's hard reset; WireError when it is not one."""
    header = parse_header(packet)
    if header.opcode not in (P_CONTROL_HARD_RESET_CLIENT_V2, P_CONTROL_HARD_RESET_CLIENT_V3):
        raise WireError(f"OpenVPN fingerprint: {header.name} is not a client's first packet")
    if header.key_id:
        raise WireError(f"OpenVPN fingerprint: key id {header.key_id}, a session starts with 0")
    if header.session_id.count(0) > _MAX_ZERO_BYTES:
        raise WireError("OpenVPN fingerprint: the session id is not random")
    rest = packet[_HEAD:]
    if header.opcode == P_CONTROL_HARD_RESET_CLIENT_V3:
        wrapping = _crypt_v2(rest)
    else:
        wrapping = _wrapping(rest)
    return ClientReset(header.name, wrapping, header.session_id)


def tcp_client_reset(stream: bytes) -> ClientReset | None:
    """The reset that opens an OpenVPN TCP stream, read from the stream's first bytes.

    None while ``stream`` is too short to tell; WireError as soon as it
    cannot be one (the length or the opcode byte is wrong), so a censor
    holding the stream need not wait for bytes that never come.
    """
    if len(stream) < 2:
        return None
    length = int.from_bytes(stream[:2], "big")
    if not _SMALLEST <= length <= MAX_RESET:
        raise WireError(f"OpenVPN fingerprint: a {length}-byte packet is not a client reset")
    if len(stream) > 2 and stream[2] not in FIRST_BYTES:
        raise WireError(f"OpenVPN fingerprint: first byte {stream[2]:#04x}")
    if len(stream) < 2 + length:
        return None
    return client_reset(stream[2 : 2 + length])


def _wrapping(rest: bytes) -> str:
    """How a V2 reset is wrapped, from what follows its session id."""
    if rest == _FIRST_CONTROL:
        return "none"
    hmac = len(rest) - _REPLAY - len(_FIRST_CONTROL)
    if hmac in _HMAC_SIZES and rest.endswith(_FIRST_CONTROL) and _fresh(rest[hmac : hmac + 4]):
        return "tls-auth"
    if len(rest) == _CRYPT and _fresh(rest[:4]):
        return "tls-crypt"
    raise WireError(f"OpenVPN fingerprint: {_HEAD + len(rest)} bytes in no reset's shape")


def _crypt_v2(rest: bytes) -> str:
    wrapped_key = int.from_bytes(rest[-2:], "big")
    if not _MIN_WRAPPED_KEY <= wrapped_key <= _MAX_WRAPPED_KEY or len(rest) != _CRYPT + wrapped_key:
        raise WireError(f"OpenVPN fingerprint: {_HEAD + len(rest)} bytes in no V3 reset's shape")
    if not _fresh(rest[:4], early=True):
        raise WireError("OpenVPN fingerprint: not a session's first packet-id")
    return "tls-crypt-v2"


def _fresh(packet_id: bytes, *, early: bool = False) -> bool:
    """Whether a wrapping's packet-id is one of a new session's first."""
    number = int.from_bytes(packet_id, "big")
    if early and number & 0xFF000000 == _EARLY_NEG_START:
        number -= _EARLY_NEG_START
    return number in _FIRST_PACKET_IDS
