"""TLS 1.3 and TLS 1.2 record decryption from a key log (SSLKEYLOGFILE format).

A TLS 1.3 server sends its certificate, its ALPN choice and any alert
after the ServerHello encrypted, and so does the client's alert when it
rejects the certificate; in both versions the HTTP inside HTTPS is
encrypted. Without keys a replay can only guess at them; with the key log
the probe wrote during its own run (``probe.capture`` and the lab turn it
on), the handshake and the HTTP inside HTTPS can be read exactly as the
live check saw them.

Key log format: NSS's, one ``LABEL <client_random hex> <secret hex>`` per
line. TLS 1.3: the labels of RFC 8446 section 7.1
(``CLIENT_HANDSHAKE_TRAFFIC_SECRET`` ...); record protection: sections
5.2-5.3; key derivation: section 7.3 (HKDF-Expand-Label). TLS 1.2:
``CLIENT_RANDOM`` with the master secret; keys from the PRF (RFC 5246
sections 5 and 6.3); AEAD records only (AES-GCM, RFC 5288 section 3;
ChaCha20-Poly1305, RFC 7905 section 2), as OpenSSL prefers them: CBC
suites are left to the size rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

CLIENT_HANDSHAKE = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
SERVER_HANDSHAKE = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
CLIENT_TRAFFIC = "CLIENT_TRAFFIC_SECRET_0"
SERVER_TRAFFIC = "SERVER_TRAFFIC_SECRET_0"
MASTER_SECRET = "CLIENT_RANDOM"  # TLS 1.2: the session's 48-byte master secret

_Aead = AESGCM | ChaCha20Poly1305 | AESCCM


@dataclass(frozen=True, slots=True)
class _Suite:
    key_length: int
    hash: type[hashes.HashAlgorithm]
    aead: str  # "gcm", "chacha", "ccm", "ccm8"


# RFC 8446 appendix B.4.
_SUITES = {
    0x1301: _Suite(16, hashes.SHA256, "gcm"),
    0x1302: _Suite(32, hashes.SHA384, "gcm"),
    0x1303: _Suite(32, hashes.SHA256, "chacha"),
    0x1304: _Suite(16, hashes.SHA256, "ccm"),
    0x1305: _Suite(16, hashes.SHA256, "ccm8"),
}


@dataclass(frozen=True, slots=True)
class _Suite12:
    key_length: int
    iv_length: int  # GCM: a 4-byte salt (RFC 5288 section 3); ChaCha20: 12 (RFC 7905)
    hash: type[hashes.HashAlgorithm]  # the PRF's (RFC 5246 section 5)
    aead: str  # "gcm" or "chacha"


_GCM128 = _Suite12(16, 4, hashes.SHA256, "gcm")
_GCM256 = _Suite12(32, 4, hashes.SHA384, "gcm")
_CHACHA = _Suite12(32, 12, hashes.SHA256, "chacha")
# The TLS 1.2 AEAD suites (IANA TLS Cipher Suites registry).
_SUITES12 = {
    0x009C: _GCM128, 0x009D: _GCM256,  # RSA
    0x009E: _GCM128, 0x009F: _GCM256,  # DHE-RSA
    0xC02B: _GCM128, 0xC02C: _GCM256,  # ECDHE-ECDSA
    0xC02F: _GCM128, 0xC030: _GCM256,  # ECDHE-RSA
    0xCCA8: _CHACHA, 0xCCA9: _CHACHA, 0xCCAA: _CHACHA,
}
_EXPLICIT_NONCE = 8  # RFC 5288 section 3: GCM records start with it
_TAG = 16


class DecryptError(Exception):
    """A record that does not open with the key we have."""


class KeyLog:
    """Secrets by client random; lines that do not parse are skipped, as
    Wireshark does (a key log may hold comments and other labels)."""

    def __init__(self) -> None:
        self._secrets: dict[bytes, dict[str, bytes]] = {}

    @classmethod
    def parse(cls, lines: Iterable[bytes]) -> KeyLog:
        log = cls()
        for line in lines:
            fields = line.strip().split()
            if len(fields) != 3 or fields[0].startswith(b"#"):
                continue
            try:
                label = fields[0].decode("ascii")
                random, secret = bytes.fromhex(fields[1].decode()), bytes.fromhex(fields[2].decode())
            except ValueError:
                continue
            if len(random) == 32:
                log._secrets.setdefault(random, {})[label] = secret
        return log

    def merge(self, other: KeyLog) -> None:
        for random, secrets in other._secrets.items():
            self._secrets.setdefault(random, {}).update(secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def secrets(self, client_random: bytes) -> dict[str, bytes]:
        return self._secrets.get(client_random, {})


def supported(suite: int) -> bool:
    return suite in _SUITES


def supported12(suite: int) -> bool:
    return suite in _SUITES12


class RecordDecryptor:
    """Opens the records of one direction protected with one traffic secret."""

    __slots__ = ("_aead", "_iv", "_seq")

    def __init__(self, suite: int, secret: bytes) -> None:
        spec = _SUITES[suite]
        key = _expand_label(spec.hash, secret, b"key", spec.key_length)
        self._iv = _expand_label(spec.hash, secret, b"iv", 12)
        self._aead: _Aead
        if spec.aead == "gcm":
            self._aead = AESGCM(key)
        elif spec.aead == "chacha":
            self._aead = ChaCha20Poly1305(key)
        else:
            self._aead = AESCCM(key, tag_length=8 if spec.aead == "ccm8" else 16)
        self._seq = 0

    def open(self, header: bytes, ciphertext: bytes) -> tuple[int, bytes]:
        """(inner content type, content) of one TLSCiphertext (section 5.2)."""
        # Section 5.3: the per-record nonce is the IV XOR the sequence number.
        nonce = (int.from_bytes(self._iv, "big") ^ self._seq).to_bytes(12, "big")
        try:
            inner = self._aead.decrypt(nonce, ciphertext, header)
        except (InvalidTag, ValueError):
            raise DecryptError("record does not authenticate") from None
        self._seq += 1
        # TLSInnerPlaintext: content, type, zero padding (section 5.2).
        stripped = inner.rstrip(b"\x00")
        if not stripped:
            raise DecryptError("record has no content type")
        return stripped[-1], stripped[:-1]


def _expand_label(
    algorithm: type[hashes.HashAlgorithm], secret: bytes, label: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (section 7.1) with an empty context."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(algorithm(), length, info).derive(secret)


class Record12Decryptor:
    """Opens the TLS 1.2 AEAD records one side sent after its ChangeCipherSpec."""

    __slots__ = ("_aead", "_gcm", "_iv", "_seq")

    def __init__(self, spec: _Suite12, key: bytes, iv: bytes) -> None:
        self._gcm = spec.aead == "gcm"
        self._aead: _Aead = AESGCM(key) if self._gcm else ChaCha20Poly1305(key)
        self._iv = iv
        self._seq = 0  # RFC 5246 section 6.1: zero at each ChangeCipherSpec

    def open(self, header: bytes, ciphertext: bytes) -> tuple[int, bytes]:
        """(content type, content) of one record: the type is the header's."""
        if self._gcm:
            # RFC 5288 section 3: salt || nonce_explicit, the latter sent first.
            explicit, ciphertext = ciphertext[:_EXPLICIT_NONCE], ciphertext[_EXPLICIT_NONCE:]
            nonce = self._iv + explicit
        else:
            # RFC 7905 section 2: the IV XOR the sequence number, left-padded.
            nonce = (int.from_bytes(self._iv, "big") ^ self._seq).to_bytes(12, "big")
        if len(nonce) != 12 or len(ciphertext) < _TAG:
            raise DecryptError("record too short")
        # RFC 5246 section 6.2.3.3: seq_num, type, version, plaintext length.
        aad = self._seq.to_bytes(8, "big") + header[:3] + (len(ciphertext) - _TAG).to_bytes(2, "big")
        try:
            content = self._aead.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            raise DecryptError("record does not authenticate") from None
        self._seq += 1
        return header[0], content


def decryptors12(
    suite: int, master_secret: bytes, client_random: bytes, server_random: bytes
) -> tuple[Record12Decryptor, Record12Decryptor]:
    """(client's, server's) record decryptors of a TLS 1.2 session.

    RFC 5246 section 6.3: key_block = PRF(master_secret, "key expansion",
    server_random + client_random), cut into MAC keys (none for AEAD),
    write keys and IVs, client's first.
    """
    spec = _SUITES12[suite]
    size = 2 * (spec.key_length + spec.iv_length)
    block = _prf12(spec.hash, master_secret, b"key expansion", server_random + client_random, size)
    k, v = spec.key_length, spec.iv_length
    client_key, server_key = block[:k], block[k : 2 * k]
    client_iv, server_iv = block[2 * k : 2 * k + v], block[2 * k + v :]
    return Record12Decryptor(spec, client_key, client_iv), Record12Decryptor(spec, server_key, server_iv)


def _prf12(
    algorithm: type[hashes.HashAlgorithm], secret: bytes, label: bytes, seed: bytes, length: int
) -> bytes:
    """RFC 5246 section 5: P_hash(secret, label + seed), ``length`` bytes.

    A(0) = seed, A(i) = HMAC(secret, A(i-1)); output HMAC(secret, A(i) + seed)...
    """
    seed = label + seed
    out = b""
    a = seed
    while len(out) < length:
        a = _hmac(algorithm, secret, a)
        out += _hmac(algorithm, secret, a + seed)
    return out[:length]


def _hmac(algorithm: type[hashes.HashAlgorithm], key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, algorithm())
    mac.update(data)
    return mac.finalize()
