"""TLS 1.3 record decryption from a key log (SSLKEYLOGFILE format).

A TLS 1.3 server sends its certificate, its ALPN choice and any alert
after the ServerHello encrypted, and so does the client's alert when it
rejects the certificate. Without keys a replay can only guess at them;
with the key log the probe wrote during its own run (``probe.capture``
turns it on), the handshake and the HTTP inside HTTPS can be read exactly
as the live check saw them.

Key log format: NSS's, one ``LABEL <client_random hex> <secret hex>`` per
line, the labels of RFC 8446 section 7.1 (``CLIENT_HANDSHAKE_TRAFFIC_SECRET``
...). Record protection: RFC 8446 section 5.2-5.3; key derivation: section
7.3 (HKDF-Expand-Label).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

CLIENT_HANDSHAKE = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
SERVER_HANDSHAKE = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
CLIENT_TRAFFIC = "CLIENT_TRAFFIC_SECRET_0"
SERVER_TRAFFIC = "SERVER_TRAFFIC_SECRET_0"

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
