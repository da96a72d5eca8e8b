"""A fast DNS message decoder for the common case (RFC 1035 section 4).

dnspython parses a typical response in 100-200 microseconds, which on a
capture of a million packets is minutes; this decoder reads the shapes
that make up nearly all of the traffic (one question; A, AAAA and CNAME
answers; SOA or NS authority; A, AAAA and EDNS OPT additional records) in
a few microseconds. Anything else raises :class:`WireError`, and the
caller hands the message to dnspython instead, so rare record types cost
time, never correctness. Like dnspython, it insists on a well-formed
message: compression pointers that point backwards (RFC 1035 section
4.1.4), names of at most 255 bytes, no trailing bytes, rdata of exactly
its declared length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from probe.wire.cursor import WireError

HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_QUESTION = struct.Struct("!HH")

QR = 0x8000
TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

_MAX_NAME = 255  # RFC 1035 section 3.1, wire length
_MAX_POINTERS = 16

# Record types this decoder reads, by section (the rest go to dnspython).
_ANSWER_TYPES = frozenset({TYPE_A, TYPE_AAAA, TYPE_CNAME})
_AUTHORITY_TYPES = frozenset({TYPE_SOA, TYPE_NS})
_ADDITIONAL_TYPES = frozenset({TYPE_A, TYPE_AAAA, TYPE_OPT})

Labels = tuple[bytes, ...]  # without the empty root label


@dataclass(frozen=True, slots=True)
class Question:
    name: Labels
    rtype: int
    rclass: int


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer record; ``target`` for CNAME, ``address`` bytes for A/AAAA."""

    name: Labels
    rtype: int
    rclass: int
    ttl: int
    address: bytes = b""
    target: Labels = ()


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    flags: int
    rcode: int  # with the EDNS extended bits (RFC 6891 section 6.1.3)
    question: Question
    answers: tuple[Answer, ...]

    @property
    def response(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0x0F


def parse_message(data: bytes) -> Message:
    """Decode ``data``; WireError if malformed or outside the common case."""
    if len(data) < 12:
        raise WireError(f"DNS message of {len(data)} bytes (header is 12)")
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if qdcount != 1:
        raise WireError(f"DNS message with {qdcount} questions")
    name, pos = read_name(data, 12)
    if pos + 4 > len(data):
        raise WireError("DNS question truncated")
    rtype, rclass = _QUESTION.unpack_from(data, pos)
    pos += 4
    answers: list[Answer] = []
    rcode = flags & 0x0F
    opt_seen = False
    for section, count, allowed in (
        (1, ancount, _ANSWER_TYPES),
        (2, nscount, _AUTHORITY_TYPES),
        (3, arcount, _ADDITIONAL_TYPES),
    ):
        for _ in range(count):
            owner, pos = read_name(data, pos)
            if pos + 10 > len(data):
                raise WireError("DNS record header truncated")
            kind, klass, ttl, length = _RR.unpack_from(data, pos)
            pos += 10
            end = pos + length
            if end > len(data):
                raise WireError("DNS rdata runs past the message")
            if kind not in allowed:
                raise WireError(f"DNS record type {kind} in section {section}")
            if kind == TYPE_OPT:
                # RFC 6891 section 6.1.1: one OPT, owned by the root.
                if opt_seen or owner:
                    raise WireError("DNS OPT record misplaced")
                opt_seen = True
                rcode |= (ttl >> 24) << 4
                _check_options(data, pos, end)
            elif klass != CLASS_IN:
                raise WireError(f"DNS record class {klass}")
            elif kind == TYPE_A or kind == TYPE_AAAA:
                if length != (4 if kind == TYPE_A else 16):
                    raise WireError(f"DNS address record of {length} bytes")
                if section == 1:
                    answers.append(Answer(owner, kind, klass, ttl, address=data[pos:end]))
            elif kind == TYPE_CNAME or kind == TYPE_NS:
                target, after = read_name(data, pos)
                if after != end:
                    raise WireError("DNS name rdata does not fill its length")
                if section == 1:
                    answers.append(Answer(owner, kind, klass, ttl, target=target))
            else:  # SOA: two names and five 32-bit numbers (RFC 1035 section 3.3.13)
                _, after = read_name(data, pos)
                _, after = read_name(data, after)
                if after + 20 != end:
                    raise WireError("DNS SOA rdata does not fill its length")
            pos = end
    if pos != len(data):
        raise WireError(f"{len(data) - pos} trailing bytes after the DNS message")
    return Message(ident, flags, rcode, Question(name, rtype, rclass), tuple(answers))


def read_name(data: bytes, pos: int) -> tuple[Labels, int]:
    """A possibly compressed name at ``pos``; returns it and the offset after it."""
    labels: list[bytes] = []
    length = 1
    after = -1
    lowest = pos  # compression pointers must point strictly backwards
    hops = 0
    while True:
        if pos >= len(data):
            raise WireError("DNS name runs past the message")
        count = data[pos]
        if count == 0:
            pos += 1
            break
        if count < 64:
            label = data[pos + 1 : pos + 1 + count]
            if len(label) != count:
                raise WireError("DNS label runs past the message")
            length += count + 1
            if length > _MAX_NAME:
                raise WireError("DNS name longer than 255 bytes")
            labels.append(label)
            pos += 1 + count
        elif count >= 0xC0:
            if pos + 1 >= len(data):
                raise WireError("DNS compression pointer truncated")
            target = ((count & 0x3F) << 8) | data[pos + 1]
            if target >= lowest:
                raise WireError("DNS compression pointer does not point backwards")
            hops += 1
            if hops > _MAX_POINTERS:
                raise WireError("DNS compression pointer chain too long")
            if after < 0:
                after = pos + 2
            lowest = target
            pos = target
        else:
            raise WireError(f"DNS label type 0x{count:02x}")
    return tuple(labels), (after if after >= 0 else pos)


def _check_options(data: bytes, pos: int, end: int) -> None:
    """EDNS options: code, length, value (RFC 6891 section 6.1.2)."""
    while pos < end:
        if pos + 4 > end:
            raise WireError("EDNS option header truncated")
        length = (data[pos + 2] << 8) | data[pos + 3]
        pos += 4 + length
        if pos > end:
            raise WireError("EDNS option runs past its record")
