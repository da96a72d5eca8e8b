"""WireGuard's first exchange: the handshake initiation and the server's reply.

WireGuard's handshake is Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (whitepaper
section 5.4, "Protocol & Cryptography"; wireguard-go device/noise-protocol.go
reads the same). A probe knows the server's public key, so it can build a
real initiation; a server that answers with a response whose empty payload
decrypts under the keys of *our* initiation proves it holds the matching
private key, which no middlebox can fake.

Messages are little-endian: a type byte, three zero bytes, 32-bit indices.
Sizes: initiation 148, response 92, cookie reply 64 (section 5.4.2-5.4.7).
The probe never has a pre-shared key, so psk is 32 zero bytes (section
5.4.3 says that is the value when none is configured). Nothing here does
I/O; every parser raises only :class:`WireError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from probe.wire.cursor import Cursor, WireError

__all__ = [
    "COOKIE_REPLY",
    "HANDSHAKE_INITIATION",
    "HANDSHAKE_RESPONSE",
    "CookieReply",
    "HandshakeResponse",
    "InitiatorState",
    "initiation",
    "parse_initiation",
    "parse_key",
    "parse_reply",
    "public_key",
    "tai64n",
]

HANDSHAKE_INITIATION = 1
HANDSHAKE_RESPONSE = 2
COOKIE_REPLY = 3
INITIATION_SIZE = 148
RESPONSE_SIZE = 92
COOKIE_REPLY_SIZE = 64
KEY_SIZE = 32
_NAMES = {HANDSHAKE_INITIATION: "initiation", HANDSHAKE_RESPONSE: "response",
          COOKIE_REPLY: "cookie reply"}
_TAG = 16  # Poly1305
_MAC = 16  # mac1 and mac2: keyed BLAKE2s-128

# Section 5.4: the protocol name and identifier that seed the hash chain,
# and the label that keys mac1 (section 5.4.4).
_CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
_IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
_LABEL_MAC1 = b"mac1----"
_PSK = bytes(KEY_SIZE)
_ZERO_NONCE = bytes(12)  # every handshake AEAD uses counter 0 (section 5.4.2)
# TAI64 labels second s as 2^62 + 10 + s (the 10 s of TAI-UTC at 1970).
_TAI64_EPOCH = 0x400000000000000A
# wireguard-go (tai64n.go) and Linux (noise.c) round the nanoseconds down to
# 2^24 ns, so the initiation does not publish the sender's precise clock.
_WHITENER = (1 << 24) - 1


def parse_key(text: str) -> bytes:
    """A WireGuard key as ``wg genkey``/``wg pubkey`` print it: base64 of 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"WireGuard key: {text.strip()[:60]!r} is not base64") from None
    if len(key) != KEY_SIZE:
        raise WireError(f"WireGuard key: {len(key)} bytes, expected {KEY_SIZE}")
    return key


def public_key(private: bytes) -> bytes:
    """The Curve25519 public key of ``private`` (what ``wg pubkey`` prints, undecoded)."""
    return _private(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def tai64n(unix_seconds: float) -> bytes:
    """The 12-byte TAI64N timestamp that an initiation carries (section 5.4.2).

    Servers only accept a timestamp later than the last one they saw from
    this client key; the nanoseconds are whitened as real clients do.
    """
    seconds = math.floor(unix_seconds)
    nanoseconds = min(int((unix_seconds - seconds) * 1e9), 999_999_999) & ~_WHITENER
    return struct.pack("!QI", _TAI64_EPOCH + seconds, nanoseconds)


@dataclass(frozen=True, slots=True)
class InitiatorState:
    """What the initiator keeps to check the response (section 5.4.3)."""

    sender_index: int
    chaining_key: bytes
    hash: bytes
    ephemeral_private: bytes
    static_private: bytes


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    sender_index: int  # the server's index
    receiver_index: int  # ours, echoed
    authenticated: bool  # the empty payload opened with the keys of our initiation


@dataclass(frozen=True, slots=True)
class CookieReply:
    """The server is under load and wants mac2 (section 5.4.7); not an answer to the key."""

    receiver_index: int


def initiation(
    server_public: bytes,
    *,
    static_private: bytes,
    ephemeral_private: bytes,
    sender_index: int,
    timestamp: bytes,
) -> tuple[bytes, InitiatorState]:
    """A handshake initiation to ``server_public``, with mac1 set and mac2 zero.

    Deterministic: the caller supplies the randomness (ephemeral key,
    sender index) and the clock (``timestamp``, see :func:`tai64n`).
    Section 5.4.2, step by step; C is the chaining key, H the hash.
    """
    if len(server_public) != KEY_SIZE or len(timestamp) != 12:
        raise WireError("WireGuard initiation: server key must be 32 bytes, timestamp 12")
    if not 0 <= sender_index <= 0xFFFFFFFF:
        raise WireError(f"WireGuard initiation: sender index {sender_index} is not 32-bit")
    ephemeral_public = public_key(ephemeral_private)
    chaining = _hash(_CONSTRUCTION)
    digest = _hash(_hash(chaining + _IDENTIFIER) + server_public)
    chaining = _kdf(chaining, ephemeral_public, 1)[0]
    digest = _hash(digest + ephemeral_public)
    chaining, key = _kdf(chaining, _dh(ephemeral_private, server_public), 2)
    sealed_static = _seal(key, public_key(static_private), digest)
    digest = _hash(digest + sealed_static)
    chaining, key = _kdf(chaining, _dh(static_private, server_public), 2)
    sealed_time = _seal(key, timestamp, digest)
    digest = _hash(digest + sealed_time)
    body = (struct.pack("<II", HANDSHAKE_INITIATION, sender_index) + ephemeral_public
            + sealed_static + sealed_time)
    message = body + _mac1(server_public, body) + bytes(_MAC)
    return message, InitiatorState(sender_index, chaining, digest, ephemeral_private,
                                   static_private)


def parse_initiation(data: bytes) -> int:
    """The sender index of a handshake initiation (to pair it with its response)."""
    cursor = _message(data, HANDSHAKE_INITIATION, INITIATION_SIZE)
    return cursor.uint_le()


def parse_reply(data: bytes, state: InitiatorState | None) -> HandshakeResponse | CookieReply:
    """A server's answer to an initiation: a response or a cookie reply.

    With ``state`` (ours, from :func:`initiation`) a response is checked
    (section 5.4.3): ``authenticated`` says whether its empty payload opened.
    A response to another index, or any response when ``state`` is None,
    is parsed but not authenticated.
    """
    if data[:1] == bytes([COOKIE_REPLY]):
        return CookieReply(_message(data, COOKIE_REPLY, COOKIE_REPLY_SIZE).uint_le())
    cursor = _message(data, HANDSHAKE_RESPONSE, RESPONSE_SIZE)
    sender, receiver = cursor.uint_le(), cursor.uint_le()
    ephemeral, sealed_empty = cursor.take(KEY_SIZE), cursor.take(_TAG)
    authenticated = (
        state is not None
        and receiver == state.sender_index
        and _opens(state, ephemeral, sealed_empty)
    )
    return HandshakeResponse(sender, receiver, authenticated)


def _opens(state: InitiatorState, ephemeral: bytes, sealed_empty: bytes) -> bool:
    """Section 5.4.3, from the initiator's side: derive and try the response key."""
    chaining = _kdf(state.chaining_key, ephemeral, 1)[0]
    digest = _hash(state.hash + ephemeral)
    try:
        chaining = _kdf(chaining, _dh(state.ephemeral_private, ephemeral), 1)[0]
        chaining = _kdf(chaining, _dh(state.static_private, ephemeral), 1)[0]
    except WireError:  # a low-order point from the wire: no shared secret, no proof
        return False
    _, tau, key = _kdf(chaining, _PSK, 3)
    digest = _hash(digest + tau)
    try:
        ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, sealed_empty, digest)
    except InvalidTag:
        return False
    return True


class _LittleEndianCursor(Cursor):
    __slots__ = ()

    def uint_le(self) -> int:
        return int.from_bytes(self.take(4), "little")


def _message(data: bytes, kind: int, size: int) -> _LittleEndianCursor:
    """A cursor past the 4-byte type field, once type and length are right."""
    what = f"WireGuard {_NAMES[kind]}"
    if data[:4] != struct.pack("<I", kind):
        raise WireError(f"{what}: type field {data[:4].hex() or 'missing'}, "
                        f"expected {kind:02x}000000")
    if len(data) != size:
        raise WireError(f"{what}: {len(data)} bytes, expected {size}")
    cursor = _LittleEndianCursor(data, what)
    cursor.take(4)
    return cursor


# --------------------------------------------------------------------------
# Section 5.4's primitives: Hash, HMAC, Kdf_n, Mac, DH, AEAD.


def _hash(data: bytes) -> bytes:
    return hashlib.blake2s(data).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, hashlib.blake2s)


def _kdf(chaining: bytes, material: bytes, n: int) -> tuple[bytes, ...]:
    """HKDF with HMAC-BLAKE2s: tau0 = HMAC(C, input), tau_i = HMAC(tau0, tau_{i-1} || i)."""
    secret = _hmac(chaining, material)
    outputs: list[bytes] = []
    previous = b""
    for i in range(1, n + 1):
        previous = _hmac(secret, previous + bytes([i]))
        outputs.append(previous)
    return tuple(outputs)


def _mac1(server_public: bytes, body: bytes) -> bytes:
    """Section 5.4.4: keyed BLAKE2s-128 over the message up to mac1."""
    key = _hash(_LABEL_MAC1 + server_public)
    return hashlib.blake2s(body, key=key, digest_size=_MAC).digest()


def _private(private: bytes) -> X25519PrivateKey:
    if len(private) != KEY_SIZE:
        raise WireError(f"WireGuard private key: {len(private)} bytes, expected {KEY_SIZE}")
    return X25519PrivateKey.from_private_bytes(private)


def _dh(private: bytes, public: bytes) -> bytes:
    ours = _private(private)
    try:
        return ours.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        # cryptography refuses an all-zero result (a low-order public key),
        # as WireGuard does (section 5.4.2's DH must not be zero).
        raise WireError("WireGuard: the public key is a low-order point") from None


def _seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, plaintext, associated)
