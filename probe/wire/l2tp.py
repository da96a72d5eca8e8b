"""L2TPv2's first exchange (RFC 2661): SCCRQ out, SCCRP or StopCCN back.

A client (LAC) opens a tunnel by sending a Start-Control-Connection-Request
to UDP port 1701 with Tunnel ID 0 and the tunnel id it assigns itself in an
AVP (section 6.1); a server (LNS) answers with a Start-Control-Connection-
Reply sent *to* that tunnel id (section 3.1: the header's Tunnel ID is the
recipient's), or a StopCCN with a result code, or nothing. A zero-length
body (ZLB) message only acknowledges (section 5.8).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from probe.wire.cursor import Cursor, WireError

L2TP_PORT = 1701
VERSION = 2
# Header flag bits (section 3.1): Type, Length, Sequence, Offset, Priority.
_T, _L, _S, _O, _P = 0x8000, 0x4000, 0x0800, 0x0200, 0x0100
_CONTROL_HEADER = struct.Struct("!HHHHHH")  # flags, length, tunnel, session, Ns, Nr
CONTROL_HEADER_SIZE = _CONTROL_HEADER.size  # 12

# AVP header (section 4.1): M and H bits, a 10-bit length, vendor, type.
_M, _H = 0x8000, 0x4000
_AVP_HEADER = struct.Struct("!HHH")
AVP_MESSAGE_TYPE = 0
AVP_RESULT_CODE = 1
AVP_PROTOCOL_VERSION = 2
AVP_FRAMING_CAPABILITIES = 3
AVP_BEARER_CAPABILITIES = 4
AVP_FIRMWARE_REVISION = 6
AVP_HOST_NAME = 7
AVP_VENDOR_NAME = 8
AVP_ASSIGNED_TUNNEL_ID = 9
AVP_RECEIVE_WINDOW_SIZE = 10

# Control message types (section 3.2).
SCCRQ, SCCRP, SCCCN, STOPCCN = 1, 2, 3, 4
_MESSAGE_NAMES = {
    1: "SCCRQ", 2: "SCCRP", 3: "SCCCN", 4: "StopCCN", 6: "HELLO", 7: "OCRQ", 8: "OCRP",
    9: "OCCN", 10: "ICRQ", 11: "ICRP", 12: "ICCN", 14: "CDN", 15: "WEN", 16: "SLI",
}
# StopCCN result codes (section 4.4.2).
STOPCCN_RESULTS = {
    1: "General request to clear control connection",
    2: "General error, see Error Code",
    3: "Control channel already exists",
    4: "Requester is not authorized to establish a control channel",
    5: "The protocol version of the requester is not supported",
    6: "Requester is being shut down",
    7: "Finite State Machine error",
}


@dataclass(frozen=True, slots=True)
class L2TPMessage:
    is_control: bool
    tunnel_id: int  # the recipient's
    session_id: int
    ns: int | None
    nr: int | None
    message_type: int | None  # None for a ZLB and for data messages
    name: str  # "SCCRP", "StopCCN", "ZLB", "data" ...
    assigned_tunnel_id: int | None  # the sender's own tunnel id, if it sent one
    result_code: int | None
    # (vendor id, attribute type, value), in order; hidden values stay as sent
    avps: tuple[tuple[int, int, bytes], ...]


def avp(attribute_type: int, value: bytes, *, mandatory: bool = True, vendor_id: int = 0) -> bytes:
    """One AVP (section 4.1), never hidden."""
    length = _AVP_HEADER.size + len(value)
    if length > 0x3FF:
        raise ValueError(f"AVP {attribute_type}: {length} bytes, more than 10 bits hold")
    return _AVP_HEADER.pack((_M if mandatory else 0) | length, vendor_id, attribute_type) + value


def control_message(*, tunnel_id: int, session_id: int = 0, ns: int = 0, nr: int = 0,
                    avps: Iterable[bytes] = ()) -> bytes:
    """A control message (section 3.1: T, L and S set, O and P clear); no
    AVPs makes a ZLB acknowledgement."""
    body = b"".join(avps)
    return _CONTROL_HEADER.pack(_T | _L | _S | VERSION, CONTROL_HEADER_SIZE + len(body),
                                tunnel_id, session_id, ns, nr) + body


def message_type_avp(message_type: int) -> bytes:
    """The Message Type AVP, first in every control message (section 4.4.1)."""
    return avp(AVP_MESSAGE_TYPE, struct.pack("!H", message_type))


def sccrq(tunnel_id: int, *, host_name: str, vendor: str = "") -> bytes:
    """A Start-Control-Connection-Request (section 6.1) with the mandatory
    AVPs, plus bearer capabilities and a receive window as xl2tpd's own
    LAC sends them; ``tunnel_id`` is the one we assign ourselves."""
    if not 0 < tunnel_id <= 0xFFFF:
        raise ValueError("an assigned tunnel id is 1 to 65535 (RFC 2661 section 4.4.3)")
    if not host_name:
        raise ValueError("the Host Name AVP is at least one byte (RFC 2661 section 4.4.3)")
    avps = [
        message_type_avp(SCCRQ),
        avp(AVP_PROTOCOL_VERSION, b"\x01\x00"),  # version 1, revision 0
        avp(AVP_HOST_NAME, host_name.encode("ascii")),
        avp(AVP_FRAMING_CAPABILITIES, struct.pack("!I", 3)),  # synchronous and asynchronous
        avp(AVP_BEARER_CAPABILITIES, struct.pack("!I", 3), mandatory=False),  # digital, analog
        avp(AVP_ASSIGNED_TUNNEL_ID, struct.pack("!H", tunnel_id)),
        avp(AVP_RECEIVE_WINDOW_SIZE, struct.pack("!H", 4)),  # section 4.4.3's default
    ]
    if vendor:
        avps.append(avp(AVP_VENDOR_NAME, vendor.encode("ascii"), mandatory=False))
    return control_message(tunnel_id=0, avps=avps)


def _read_avps(cursor: Cursor) -> tuple[tuple[int, int, bool, bytes], ...]:
    avps = []
    while cursor.remaining:
        bits, vendor_id, attribute_type = struct.unpack("!HHH", cursor.take(_AVP_HEADER.size))
        length = bits & 0x3FF
        if length < _AVP_HEADER.size:
            raise WireError(f"L2TP AVP {attribute_type}: length {length} below its header")
        value = cursor.take(length - _AVP_HEADER.size)
        avps.append((vendor_id, attribute_type, bool(bits & _H), value))
    return tuple(avps)


def _uint16(value: bytes, what: str) -> int:
    if len(value) != 2:
        raise WireError(f"L2TP {what} AVP: {len(value)} bytes, not 2")
    return int.from_bytes(value, "big")


def parse_message(data: bytes) -> L2TPMessage:
    """One L2TPv2 datagram (section 3.1). Control messages must carry the
    L and S bits and start with an unhidden Message Type AVP (section
    4.4.1); hidden AVPs (section 4.3) are kept as they came."""
    cursor = Cursor(data, "L2TP message")
    flags = cursor.uint(2)
    if (flags & 0x000F) != VERSION:
        raise WireError(f"L2TP message: version {flags & 0x000F}, not 2")
    is_control = bool(flags & _T)
    # Reserved bits are ignored on receipt; a control message's are fixed.
    if is_control and (flags & (_L | _S | _O | _P)) != (_L | _S):
        raise WireError(f"L2TP control message: bad header bits {flags:#06x}")
    if flags & _L:
        length = cursor.uint(2)
        if length != len(data):
            raise WireError(f"L2TP message: length field {length}, datagram {len(data)} bytes")
    tunnel_id, session_id = cursor.uint(2), cursor.uint(2)
    ns = nr = None
    if flags & _S:
        ns, nr = cursor.uint(2), cursor.uint(2)
    if not is_control:
        if flags & _O:
            cursor.take(cursor.uint(2))  # offset padding
        return L2TPMessage(False, tunnel_id, session_id, ns, nr, None, "data", None, None, ())
    avps = _read_avps(cursor)
    message_type = assigned = result = None
    name = "ZLB"
    if avps:
        vendor_id, attribute_type, hidden, value = avps[0]
        if (vendor_id, attribute_type, hidden) != (0, AVP_MESSAGE_TYPE, False):
            raise WireError("L2TP control message: the first AVP is not the Message Type")
        message_type = _uint16(value, "Message Type")
        name = _MESSAGE_NAMES.get(message_type, str(message_type))
    for vendor_id, attribute_type, hidden, value in avps[1:]:
        if vendor_id or hidden:
            continue
        if attribute_type == AVP_ASSIGNED_TUNNEL_ID:
            assigned = _uint16(value, "Assigned Tunnel ID")
        elif attribute_type == AVP_RESULT_CODE:
            if len(value) < 2:
                raise WireError(f"L2TP Result Code AVP: {len(value)} bytes, at least 2")
            result = int.from_bytes(value[:2], "big")
    return L2TPMessage(
        is_control=True,
        tunnel_id=tunnel_id,
        session_id=session_id,
        ns=ns,
        nr=nr,
        message_type=message_type,
        name=name,
        assigned_tunnel_id=assigned,
        result_code=result,
        avps=tuple((vendor_id, kind, value) for vendor_id, kind, _, value in avps),
    )


def answers(message: L2TPMessage, tunnel_id: int) -> bool:
    """Whether ``message`` answers our SCCRQ: an SCCRP or StopCCN sent to
    the tunnel id we assigned."""
    return (
        message.is_control
        and message.message_type in (SCCRP, STOPCCN)
        and message.tunnel_id == tunnel_id
    )
