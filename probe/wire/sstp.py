"""SSTP's first exchange ([MS-SSTP]): an HTTP request, then SSTP packets.

Inside TLS on port 443 the client sends an ``SSTP_DUPLEX_POST`` request
whose Content-Length is 2^64-1 (section 3.2.5); a server that speaks SSTP
answers ``HTTP/1.1 200`` and from then on both directions carry SSTP
packets (section 2.2.1) instead of an HTTP body, exactly as a tunnel after
CONNECT does (RFC 9110 section 9.3.6). The client's first packet is a
Call Connect Request (section 2.2.9); the server answers with a Call
Connect Acknowledge carrying a crypto binding request (section 2.2.10) or
a Call Connect NAK (section 2.2.12).

The builders come in pairs (request and reply) so that the lab's SSTP
responder uses the same code as the probe.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from probe.wire.cursor import Cursor, WireError, split_frames
from probe.wire.http1 import (
    MAX_HEAD,
    BodyData,
    MessageReader,
    ResponseHead,
    Role,
    header,
)

SSTP_PORT = 443
METHOD = "SSTP_DUPLEX_POST"
PATH = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/"
CONTENT_LENGTH = "18446744073709551615"  # ULONGLONG_MAX: the body never ends

VERSION = 0x10  # 1.0 (section 2.2.1)
_HEADER = struct.Struct("!BBH")  # version, reserved + C bit, R + 12-bit length
HEADER_SIZE = _HEADER.size  # 4
_CONTROL = struct.Struct("!HH")  # message type, number of attributes (section 2.2.2)
_ATTRIBUTE = struct.Struct("!BBH")  # reserved, id, R + 12-bit length (section 2.2.4)
MAX_PACKET = 0x0FFF

# Control message types (section 2.2.2).
CALL_CONNECT_REQUEST = 1
CALL_CONNECT_ACK = 2
CALL_CONNECT_NAK = 3
_MESSAGE_NAMES = {
    1: "SSTP_MSG_CALL_CONNECT_REQUEST",
    2: "SSTP_MSG_CALL_CONNECT_ACK",
    3: "SSTP_MSG_CALL_CONNECT_NAK",
    4: "SSTP_MSG_CALL_CONNECTED",
    5: "SSTP_MSG_CALL_ABORT",
    6: "SSTP_MSG_CALL_DISCONNECT",
    7: "SSTP_MSG_CALL_DISCONNECT_ACK",
    8: "SSTP_MSG_ECHO_REQUEST",
    9: "SSTP_MSG_ECHO_RESPONSE",
}

# Attribute IDs (section 2.2.4) and their values' constants.
ATTRIB_ENCAPSULATED_PROTOCOL_ID = 1
ATTRIB_STATUS_INFO = 2
ATTRIB_CRYPTO_BINDING = 3
ATTRIB_CRYPTO_BINDING_REQ = 4
ENCAPSULATED_PROTOCOL_PPP = 1  # section 2.2.9
CERT_HASH_PROTOCOL_SHA1 = 0x01  # section 2.2.10
CERT_HASH_PROTOCOL_SHA256 = 0x02
ATTRIB_STATUS_VALUE_NOT_SUPPORTED = 4  # section 2.2.8


@dataclass(frozen=True, slots=True)
class SSTPPacket:
    is_control: bool
    message_type: int | None  # None for data packets
    name: str  # "SSTP_MSG_CALL_CONNECT_ACK", ... or "data"
    attributes: tuple[tuple[int, bytes], ...]  # (attribute id, value)


@dataclass(frozen=True, slots=True)
class DuplexPostRequest:
    host: str
    correlation_id: str  # as sent, braces included
    consumed: int  # bytes of the head; SSTP packets follow


# -- HTTP ------------------------------------------------------------------


def duplex_post_request(host: str, correlation_id: str) -> bytes:
    """The client's HTTP request (section 3.2.5), headers in the order
    sstp-client sends them; ``correlation_id`` is a GUID, sent upper-case
    in braces as Windows does."""
    guid = "{" + str(uuid.UUID(correlation_id)).upper() + "}"
    return (
        f"{METHOD} {PATH} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Content-Length: {CONTENT_LENGTH}\r\n"
        f"SSTPCORRELATIONID: {guid}\r\n"
        "\r\n"
    ).encode("ascii")


def duplex_post_response(status: int = 200, reason: str = "") -> bytes:
    """A server's answer: a 200 opens the SSTP stream, with the same
    endless Content-Length as the request, as Windows sends it; any other
    status is a refusal with an empty body."""
    line = f"HTTP/1.1 {status} {reason}".rstrip()
    length = CONTENT_LENGTH if status == 200 else "0"
    return (
        f"{line}\r\nContent-Length: {length}\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n"
    ).encode("ascii")


def parse_duplex_post_response(data: bytes) -> tuple[int, int] | None:
    """(status, bytes of HTTP before the SSTP stream) once the final
    response head is complete, None before.

    The response is read as the answer to a CONNECT, the HTTP exchange with
    the same shape: after a 2xx the stream stops being HTTP, so the huge
    Content-Length never frames a body. A refusal (4xx, 5xx) is framed as
    HTTP; the count then leaves out whatever body bytes followed.
    """
    reader = MessageReader(Role.RESPONSE)
    # Upgrade too: a 101 ends HTTP as well, rather than being an error.
    reader.request_sent("CONNECT", upgrade=True)
    events = reader.feed(data)
    # 101 also ends HTTP; like any status but 2xx, it is a refusal here.
    finals = [e for e in events
              if isinstance(e, ResponseHead) and (e.status >= 200 or e.status == 101)]
    if not finals:
        return None
    body = sum(len(e.data) for e in events if isinstance(e, BodyData))
    return finals[0].status, reader.offset - body


def parse_duplex_post_request(data: bytes) -> DuplexPostRequest | None:
    """The client's request as a server sees it, None until its head is
    complete; any other method, target or version is a WireError.

    Read here rather than with http1.MessageReader, which refuses a
    Content-Length of more than 18 digits and so this one.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD:
            raise WireError(f"SSTP request head longer than {MAX_HEAD} bytes")
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    if lines[0] != f"{METHOD} {PATH} HTTP/1.1":
        raise WireError(f"not an SSTP request: {lines[0][:80]!r}")
    fields = tuple((name.strip(), value.strip()) for name, _, value in
                   (line.partition(":") for line in lines[1:]))
    host, correlation = header(fields, "Host"), header(fields, "SSTPCORRELATIONID")
    if host is None or correlation is None:
        raise WireError("SSTP request without a Host or SSTPCORRELATIONID header")
    if header(fields, "Content-Length") != CONTENT_LENGTH:
        raise WireError("SSTP request: Content-Length is not 18446744073709551615")
    return DuplexPostRequest(host, correlation, end + 4)


# -- SSTP packets ----------------------------------------------------------


def _length_field(length: int, what: str) -> int:
    if length > MAX_PACKET:
        raise ValueError(f"{what}: {length} bytes, more than 12 bits hold")
    return length


def control_packet(message_type: int, attributes: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """A control packet (section 2.2.2) with its attributes (section 2.2.4)."""
    pairs = list(attributes)
    body = _CONTROL.pack(message_type, len(pairs)) + b"".join(
        _ATTRIBUTE.pack(0, attribute_id,
                        _length_field(_ATTRIBUTE.size + len(value), "SSTP attribute")) + value
        for attribute_id, value in pairs
    )
    return _HEADER.pack(VERSION, 1, _length_field(HEADER_SIZE + len(body), "SSTP packet")) + body


def call_connect_request() -> bytes:
    """Section 2.2.9: the client asks for a PPP tunnel (14 bytes)."""
    return control_packet(CALL_CONNECT_REQUEST, [
        (ATTRIB_ENCAPSULATED_PROTOCOL_ID, struct.pack("!H", ENCAPSULATED_PROTOCOL_PPP)),
    ])


def call_connect_ack(nonce: bytes, *, hash_protocols: int = CERT_HASH_PROTOCOL_SHA256) -> bytes:
    """Section 2.2.10: acceptance, with a crypto binding request (three
    reserved bytes, the hash protocol bitmask, a 32-byte nonce)."""
    if len(nonce) != 32:
        raise ValueError("the crypto binding nonce is 32 bytes ([MS-SSTP] section 2.2.10)")
    return control_packet(CALL_CONNECT_ACK, [
        (ATTRIB_CRYPTO_BINDING_REQ, bytes(3) + bytes([hash_protocols]) + nonce),
    ])


def call_connect_nak(status: int = ATTRIB_STATUS_VALUE_NOT_SUPPORTED,
                     attribute_id: int = ATTRIB_ENCAPSULATED_PROTOCOL_ID) -> bytes:
    """Section 2.2.12: refusal, naming the attribute and why (a Status Info
    attribute, section 2.2.8: three reserved bytes, the attribute id, a
    32-bit status)."""
    return control_packet(CALL_CONNECT_NAK, [
        (ATTRIB_STATUS_INFO, bytes(3) + bytes([attribute_id]) + struct.pack("!I", status)),
    ])


def _packet_length(data: bytes, at: int) -> tuple[int, int]:
    version, _, bits = _HEADER.unpack_from(data, at)
    length: int = bits & MAX_PACKET
    if version != VERSION:
        raise WireError(f"SSTP packet at offset {at}: version {version:#04x}, not 0x10")
    if length < HEADER_SIZE:
        raise WireError(f"SSTP packet at offset {at}: length {length} below its header")
    return 0, length


def split_packets(buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
    """Whole packets from the front of the stream after the HTTP head, and
    the rest. A wrong version byte means the stream is not SSTP: the
    section 3.1.5.1 delineation failure."""
    return split_frames(buffer, HEADER_SIZE, _packet_length)


def parse_packet(data: bytes) -> SSTPPacket:
    """One SSTP packet (sections 2.2.1-2.2.4)."""
    if len(data) < HEADER_SIZE:
        raise WireError(f"SSTP packet: {len(data)} bytes, shorter than the header")
    _, length = _packet_length(data, 0)
    if length != len(data):
        raise WireError(f"SSTP packet: length field {length}, {len(data)} bytes given")
    if not data[1] & 0x01:
        return SSTPPacket(False, None, "data", ())
    cursor = Cursor(data[HEADER_SIZE:], "SSTP control packet")
    message_type, count = cursor.uint(2), cursor.uint(2)
    attributes = []
    for _ in range(count):
        _reserved, attribute_id, attribute_length = _ATTRIBUTE.unpack(cursor.take(_ATTRIBUTE.size))
        attribute_length &= MAX_PACKET
        if attribute_length < _ATTRIBUTE.size:
            raise WireError(
                f"SSTP attribute {attribute_id}: length {attribute_length} below its header")
        attributes.append((attribute_id, cursor.take(attribute_length - _ATTRIBUTE.size)))
    cursor.end()
    name = _MESSAGE_NAMES.get(message_type, f"{message_type:#06x}")
    return SSTPPacket(True, message_type, name, tuple(attributes))
