"""PPTP's control connection (RFC 2637 sections 1.4 and 2): the first exchange.

A PPTP client (the PNS) opens TCP port 1723 and sends a
Start-Control-Connection-Request; a server (the PAC) that speaks PPTP
answers with a Start-Control-Connection-Reply whose result code says
whether it accepts. Every control message carries its own length and the
magic cookie 0x1A2B3C4D (section 1.4), which is how a stream is split
into messages and how anything that is not PPTP is recognised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from probe.wire.cursor import WireError, split_frames

PPTP_PORT = 1723
MAGIC_COOKIE = 0x1A2B3C4D
PROTOCOL_VERSION = 0x0100  # 1.0
_CONTROL_MESSAGE = 1  # PPTP Message Type (section 1.4); 2 is management, never defined
# Length, PPTP Message Type, Magic Cookie, Control Message Type, Reserved0.
_HEADER = struct.Struct("!HHIHH")
HEADER_SIZE = _HEADER.size  # 12
# Protocol version, result, error, framing, bearer, channels, firmware, then
# the 64-byte host name and vendor (sections 2.1-2.2; SCCRQ has a
# two-byte Reserved1 where SCCRP has result and error codes).
_START_BODY = struct.Struct("!HBBIIHH64s64s")
_NAME_SIZE = 64

START_CONTROL_CONNECTION_REQUEST = 1
START_CONTROL_CONNECTION_REPLY = 2
# Control Message Type: (name, the message's fixed total length), section 2.
_MESSAGES = {
    1: ("Start-Control-Connection-Request", 156),
    2: ("Start-Control-Connection-Reply", 156),
    3: ("Stop-Control-Connection-Request", 16),
    4: ("Stop-Control-Connection-Reply", 16),
    5: ("Echo-Request", 16),
    6: ("Echo-Reply", 20),
    7: ("Outgoing-Call-Request", 168),
    8: ("Outgoing-Call-Reply", 32),
    9: ("Incoming-Call-Request", 220),
    10: ("Incoming-Call-Reply", 24),
    11: ("Incoming-Call-Connected", 28),
    12: ("Call-Clear-Request", 16),
    13: ("Call-Disconnect-Notify", 148),
    14: ("WAN-Error-Notify", 40),
    15: ("Set-Link-Info", 24),
}
MAX_MESSAGE = max(length for _, length in _MESSAGES.values())
# Where the Result Code and Error Code sit in the replies that have them
# (offsets after the 12-byte header).
_RESULT_AT = {2: 2, 4: 0, 6: 4, 8: 4, 10: 4, 13: 2}

# Start-Control-Connection-Reply result codes (section 2.2).
RESULT_NAMES = {
    1: "Successful channel establishment",
    2: "General error",
    3: "Command channel already exists",
    4: "Requester is not authorized",
    5: "The protocol version of the requester is not supported",
}
# General error codes (section 2.16).
ERROR_NAMES = {
    0: "None", 1: "Not-Connected", 2: "Bad-Format", 3: "Bad-Value", 4: "No-Resource",
    5: "Bad-Call ID", 6: "PAC-Error",
}

# Capabilities a PNS announces (section 2.1): both framings and bearers, no
# channels of its own ("SHOULD be set to 0" for a PNS).
FRAMING_ASYNC_SYNC = 0x3
BEARER_ANALOG_DIGITAL = 0x3


@dataclass(frozen=True, slots=True)
class ControlMessage:
    message_type: int
    name: str
    protocol_version: int | None  # Start-Control-Connection-Request and -Reply only
    result_code: int | None  # the replies only
    error_code: int | None
    hostname: str
    vendor: str


def _name_field(text: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) >= _NAME_SIZE:
        raise ValueError(f"{text!r}: host names and vendors are at most 63 ASCII characters")
    return raw  # struct pads with NULs


def _start_message(message_type: int, *, result_code: int, error_code: int, hostname: str,
                   vendor: str, max_channels: int, firmware_revision: int) -> bytes:
    body = _START_BODY.pack(
        PROTOCOL_VERSION, result_code, error_code, FRAMING_ASYNC_SYNC, BEARER_ANALOG_DIGITAL,
        max_channels, firmware_revision, _name_field(hostname), _name_field(vendor),
    )
    header = _HEADER.pack(HEADER_SIZE + len(body), _CONTROL_MESSAGE, MAGIC_COOKIE, message_type, 0)
    return header + body


def start_control_connection_request(*, hostname: str = "", vendor: str = "") -> bytes:
    """The PNS's first message (section 2.1), 156 bytes."""
    return _start_message(START_CONTROL_CONNECTION_REQUEST, result_code=0, error_code=0,
                          hostname=hostname, vendor=vendor, max_channels=0, firmware_revision=0)


def start_control_connection_reply(*, result_code: int = 1, error_code: int = 0,
                                   hostname: str = "", vendor: str = "") -> bytes:
    """The PAC's answer (section 2.2), for test servers and fixtures."""
    return _start_message(START_CONTROL_CONNECTION_REPLY, result_code=result_code,
                          error_code=error_code, hostname=hostname, vendor=vendor,
                          max_channels=1, firmware_revision=1)


def split_messages(buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
    """Whole control messages from the front of a TCP stream, and the rest.

    A length that no PPTP message has (shorter than the header, longer than
    the longest, section 2) means the stream is not PPTP: WireError.
    """
    return split_frames(buffer, 2, _message_length)


def _message_length(buffer: bytes, at: int) -> tuple[int, int]:
    (length,) = struct.unpack_from("!H", buffer, at)
    if not HEADER_SIZE <= length <= MAX_MESSAGE:
        raise WireError(f"PPTP stream at offset {at}: message length {length} is not PPTP's")
    return 0, length


def _text(field: bytes) -> str:
    """A NUL-padded string field; latin-1 so no byte can fail to decode."""
    return field.split(b"\x00", 1)[0].decode("latin-1")


def parse_control_message(data: bytes) -> ControlMessage:
    """One control message, checked against section 1.4's header and the
    fixed length of its type."""
    if len(data) < HEADER_SIZE:
        raise WireError(f"PPTP message: {len(data)} bytes, shorter than the header")
    length, pptp_type, magic, message_type, _ = _HEADER.unpack_from(data)
    if magic != MAGIC_COOKIE:
        raise WireError(f"PPTP message: magic cookie {magic:#010x}, not {MAGIC_COOKIE:#010x}")
    if pptp_type != _CONTROL_MESSAGE:
        raise WireError(f"PPTP message: message type {pptp_type}, not a control message")
    if length != len(data):
        raise WireError(f"PPTP message: length field {length}, {len(data)} bytes given")
    if message_type not in _MESSAGES:
        raise WireError(f"PPTP message: unknown control message type {message_type}")
    name, expected = _MESSAGES[message_type]
    if length != expected:
        raise WireError(f"PPTP {name}: {length} bytes, the message has {expected}")
    version = result = error = None
    hostname = vendor = ""
    if message_type in (START_CONTROL_CONNECTION_REQUEST, START_CONTROL_CONNECTION_REPLY):
        version, *_, host, vend = _START_BODY.unpack_from(data, HEADER_SIZE)
        hostname, vendor = _text(host), _text(vend)
    if message_type in _RESULT_AT:
        result, error = struct.unpack_from("!BB", data, HEADER_SIZE + _RESULT_AT[message_type])
    return ControlMessage(message_type, name, version, result, error, hostname, vendor)


def is_start_reply(message: ControlMessage) -> bool:
    return message.message_type == START_CONTROL_CONNECTION_REPLY
