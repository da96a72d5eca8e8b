"""TLS on the wire: records, handshake messages, hellos, certificates, alerts.

Sans-I/O (the h11 way): the record and handshake readers take bytes as
they come (a reassembled TCP stream, in pieces of any size) and hand back
whole records and whole handshake messages, so a ClientHello split over
several records or segments parses the same as one in a single packet.
The message parsers take one message body. Everything raises only
:class:`WireError`.

Only what a censorship measurement needs is decoded: SNI and ALPN offered,
the version and cipher the server chose, the certificates it presented,
and alerts. Section numbers are RFC 8446 (TLS 1.3) unless said otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from probe.wire.cursor import Cursor, WireError


class ContentType(enum.IntEnum):
    """Record content types (section 5.1; heartbeat from RFC 6520)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


class HandshakeType(enum.IntEnum):
    """The handshake messages this module looks at (section 4)."""

    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20


# Extension code points (section 4.2; RFC 6066 section 3, RFC 7301 section 3.1).
EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43

TLS12 = 0x0303
TLS13 = 0x0304

# Section 5.2: a TLSCiphertext fragment is at most 2^14 + 256 bytes; TLS 1.2
# (RFC 5246 section 6.2.3) allowed 2^14 + 2048. The larger bound is kept so
# that no valid record of either version is refused.
MAX_RECORD = (1 << 14) + 2048
# A handshake message may claim up to 2^24 bytes; real certificate chains
# stay far below this cap, which bounds what one flow may buffer.
MAX_HANDSHAKE = 1 << 20

# Section 4.1.3: a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)

_VERSION_NAMES = {
    0x0300: "SSLv3",
    0x0301: "TLSv1",
    0x0302: "TLSv1.1",
    TLS12: "TLSv1.2",
    TLS13: "TLSv1.3",
}

# OpenSSL's names, the ones the live check records (ssl.SSLObject.cipher()),
# so that a replayed handshake reads like a live one. TLS 1.3 names are the
# IANA names; older suites have OpenSSL's own spelling.
_CIPHER_NAMES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
    0xCCAA: "DHE-RSA-CHACHA20-POLY1305",
    0x009E: "DHE-RSA-AES128-GCM-SHA256",
    0x009F: "DHE-RSA-AES256-GCM-SHA384",
    0xC009: "ECDHE-ECDSA-AES128-SHA",
    0xC00A: "ECDHE-ECDSA-AES256-SHA",
    0xC013: "ECDHE-RSA-AES128-SHA",
    0xC014: "ECDHE-RSA-AES256-SHA",
    0xC023: "ECDHE-ECDSA-AES128-SHA256",
    0xC024: "ECDHE-ECDSA-AES256-SHA384",
    0xC027: "ECDHE-RSA-AES128-SHA256",
    0xC028: "ECDHE-RSA-AES256-SHA384",
    0x009C: "AES128-GCM-SHA256",
    0x009D: "AES256-GCM-SHA384",
    0x002F: "AES128-SHA",
    0x0035: "AES256-SHA",
    0x003C: "AES128-SHA256",
    0x003D: "AES256-SHA256",
    0x000A: "DES-CBC3-SHA",
}

# Section 6 (and RFC 8446 section 6.2 for the certificate ones).
ALERT_NAMES = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}


def version_name(version: int) -> str:
    """``TLSv1.3`` etc., as Python's ``SSLObject.version()`` spells them."""
    return _VERSION_NAMES.get(version, f"0x{version:04x}")


def cipher_name(suite: int) -> str:
    return _CIPHER_NAMES.get(suite, f"0x{suite:04X}")


def is_grease(value: int) -> bool:
    """RFC 8701 section 2: 0x0A0A, 0x1A1A ... 0xFAFA are placeholders."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


# --------------------------------------------------------------------------
# Records and handshake messages from a byte stream


@dataclass(frozen=True, slots=True)
class Record:
    content_type: int
    version: int  # legacy_record_version
    fragment: bytes


class RecordReader:
    """Whole TLS records from a stream of bytes (section 5.1).

    A record header that cannot be TLS (unknown content type, a major
    version other than 3, an oversized length) raises WireError: the
    stream is not TLS, or is no longer in step with its records.
    """

    __slots__ = ("_buffer", "offset")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.offset = 0  # stream offset of the first byte not yet returned

    def feed(self, data: bytes) -> list[Record]:
        buffer = self._buffer
        buffer += data
        records: list[Record] = []
        start = 0
        while len(buffer) - start >= 5:
            content_type = buffer[start]
            version = (buffer[start + 1] << 8) | buffer[start + 2]
            length = (buffer[start + 3] << 8) | buffer[start + 4]
            if content_type not in _CONTENT_TYPES or buffer[start + 1] != 3:
                raise WireError(
                    f"not a TLS record at stream offset {self.offset + start}: "
                    f"header {bytes(buffer[start:start + 5]).hex()}"
                )
            if length > MAX_RECORD:
                raise WireError(
                    f"TLS record at stream offset {self.offset + start} claims "
                    f"{length} bytes (at most {MAX_RECORD})"
                )
            if len(buffer) - start < 5 + length:
                break
            records.append(
                Record(content_type, version, bytes(buffer[start + 5 : start + 5 + length]))
            )
            start += 5 + length
        if start:
            del buffer[:start]
            self.offset += start
        return records

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a record."""
        return len(self._buffer)


_CONTENT_TYPES = frozenset(ContentType)


@dataclass(frozen=True, slots=True)
class Handshake:
    msg_type: int
    body: bytes


class HandshakeReader:
    """Whole handshake messages from the fragments of handshake records.

    Section 5.1: a message may span several records and a record may hold
    several messages; this joins and splits them (section 4 framing: one
    type byte and a 24-bit length).
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, fragment: bytes) -> list[Handshake]:
        buffer = self._buffer
        buffer += fragment
        messages: list[Handshake] = []
        start = 0
        while len(buffer) - start >= 4:
            length = int.from_bytes(buffer[start + 1 : start + 4], "big")
            if length > MAX_HANDSHAKE:
                raise WireError(
                    f"handshake message type {buffer[start]} claims {length} bytes "
                    f"(at most {MAX_HANDSHAKE})"
                )
            if len(buffer) - start < 4 + length:
                break
            messages.append(Handshake(buffer[start], bytes(buffer[start + 4 : start + 4 + length])))
            start += 4 + length
        if start:
            del buffer[:start]
        return messages

    @property
    def pending(self) -> int:
        return len(self._buffer)


# --------------------------------------------------------------------------
# Messages


@dataclass(frozen=True, slots=True)
class ClientHello:
    legacy_version: int
    random: bytes
    cipher_suites: tuple[int, ...]
    sni: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]  # GREASE values left out
    extensions: tuple[int, ...]  # extension types in the order sent


@dataclass(frozen=True, slots=True)
class ServerHello:
    legacy_version: int
    random: bytes
    cipher_suite: int
    version: int  # the negotiated version: supported_versions if present
    alpn: str | None  # TLS 1.2 only; TLS 1.3 sends it encrypted
    hello_retry: bool  # a HelloRetryRequest (section 4.1.3), not a real hello

    @property
    def version_name(self) -> str:
        return version_name(self.version)

    @property
    def cipher_name(self) -> str:
        return cipher_name(self.cipher_suite)


@dataclass(frozen=True, slots=True)
class Alert:
    level: int  # 1 warning, 2 fatal
    description: int

    @property
    def name(self) -> str:
        return ALERT_NAMES.get(self.description, f"alert_{self.description}")

    @property
    def fatal(self) -> bool:
        return self.level == 2


def _extensions(cursor: Cursor) -> dict[int, bytes]:
    """The extensions block, if present (TLS 1.2 hellos may omit it)."""
    found: dict[int, bytes] = {}
    if cursor.remaining == 0:
        return found
    block = cursor.sub(2, "extensions")
    cursor.end()
    while block.remaining:
        kind = block.uint(2)
        data = block.vector(2)
        # Section 4.2: at most one extension of each type.
        if kind in found:
            raise WireError(f"extension {kind} appears twice")
        found[kind] = data
    return found


def _ascii(data: bytes, what: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise WireError(f"{what} is not ASCII: {data[:64]!r}") from None


def _server_name(data: bytes) -> str | None:
    """RFC 6066 section 3: the host_name entry of the server_name list."""
    names = Cursor(data, "server_name").sub(2, "server_name_list")
    while names.remaining:
        name_type = names.uint(1)
        name = names.vector(2)
        if name_type == 0:
            if not name:
                raise WireError("server_name: empty host_name")
            return _ascii(name, "server_name")
    return None


def _alpn(data: bytes) -> tuple[str, ...]:
    """RFC 7301 section 3.1: ProtocolName protocol_name_list<2..2^16-1>."""
    outer = Cursor(data, "ALPN")
    names = outer.sub(2, "protocol_name_list")
    outer.end()
    protocols: list[str] = []
    while names.remaining:
        name = names.vector(1)
        if not name:
            raise WireError("ALPN: empty protocol name")
        protocols.append(_ascii(name, "ALPN protocol"))
    return tuple(protocols)


def parse_client_hello(body: bytes) -> ClientHello:
    """Section 4.1.2."""
    cursor = Cursor(body, "ClientHello")
    legacy_version = cursor.uint(2)
    random = cursor.take(32)
    cursor.vector(1)  # legacy_session_id
    suites = cursor.vector(2)
    if len(suites) % 2:
        raise WireError("ClientHello: odd cipher_suites length")
    cursor.vector(1)  # legacy_compression_methods
    extensions = _extensions(cursor)
    versions: tuple[int, ...] = ()
    if EXT_SUPPORTED_VERSIONS in extensions:
        listed = Cursor(extensions[EXT_SUPPORTED_VERSIONS], "supported_versions")
        raw = listed.vector(1)
        listed.end()
        if len(raw) % 2:
            raise WireError("supported_versions: odd length")
        versions = tuple(
            v for v in (int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
            if not is_grease(v)
        )
    return ClientHello(
        legacy_version=legacy_version,
        random=random,
        cipher_suites=tuple(
            int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2)
        ),
        sni=_server_name(extensions[EXT_SERVER_NAME]) if EXT_SERVER_NAME in extensions else None,
        alpn=_alpn(extensions[EXT_ALPN]) if EXT_ALPN in extensions else (),
        supported_versions=versions,
        extensions=tuple(extensions),
    )


def parse_server_hello(body: bytes) -> ServerHello:
    """Section 4.1.3; the version is supported_versions' when present (4.2.1)."""
    cursor = Cursor(body, "ServerHello")
    legacy_version = cursor.uint(2)
    random = cursor.take(32)
    cursor.vector(1)  # legacy_session_id_echo
    suite = cursor.uint(2)
    cursor.uint(1)  # legacy_compression_method
    extensions = _extensions(cursor)
    version = legacy_version
    if EXT_SUPPORTED_VERSIONS in extensions:
        selected = Cursor(extensions[EXT_SUPPORTED_VERSIONS], "supported_versions")
        version = selected.uint(2)
        selected.end()
    alpn = _alpn(extensions[EXT_ALPN]) if EXT_ALPN in extensions else ()
    if len(alpn) > 1:
        raise WireError("ServerHello: ALPN must name exactly one protocol")
    return ServerHello(
        legacy_version=legacy_version,
        random=random,
        cipher_suite=suite,
        version=version,
        alpn=alpn[0] if alpn else None,
        hello_retry=random == HELLO_RETRY_RANDOM,
    )


def parse_encrypted_extensions(body: bytes) -> str | None:
    """Section 4.3.1: the ALPN protocol a TLS 1.3 server chose, if any."""
    extensions = _extensions(Cursor(body, "EncryptedExtensions"))
    alpn = _alpn(extensions[EXT_ALPN]) if EXT_ALPN in extensions else ()
    if len(alpn) > 1:
        raise WireError("EncryptedExtensions: ALPN must name exactly one protocol")
    return alpn[0] if alpn else None


def parse_certificate(body: bytes, *, tls13: bool) -> tuple[bytes, ...]:
    """The DER certificates of a Certificate message, leaf first.

    TLS 1.2 (RFC 5246 section 7.4.2): a list of 24-bit vectors. TLS 1.3
    (section 4.4.2): a request context, then entries that each carry
    extensions after the certificate.
    """
    cursor = Cursor(body, "Certificate")
    if tls13:
        cursor.vector(1)  # certificate_request_context
    entries = cursor.sub(3, "certificate_list")
    cursor.end()
    certificates: list[bytes] = []
    while entries.remaining:
        der = entries.vector(3)
        if not der:
            raise WireError("Certificate: empty certificate entry")
        certificates.append(der)
        if tls13:
            entries.vector(2)  # per-certificate extensions
    return tuple(certificates)


def parse_alert(fragment: bytes) -> Alert:
    """Section 6: two bytes, level and description."""
    if len(fragment) != 2:
        raise WireError(f"alert of {len(fragment)} bytes (expected 2)")
    level, description = fragment
    if level not in (1, 2):
        raise WireError(f"alert level {level} (expected 1 or 2)")
    return Alert(level, description)
