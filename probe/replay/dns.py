"""DNS exchanges from a capture: every query, every response matched to it.

A response belongs to a query when it comes back to the query's address
and port from the address and port the query went to, carries the same ID,
has QR set, the same opcode and the same question: dnspython's
``Message.is_response`` rules, the ones the live check applies. Several
responses to one query (an injector racing the resolver) are all kept, in
arrival order, each with the IP TTL and IP ID of its packet, because
forged answers often give themselves away there.

Messages are decoded by ``probe.wire.dns`` (fast, common shapes) and by
dnspython when that declines; answers are then read the way the live
check reads them (``probe.dnsanswers``: follow CNAMEs from the question).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.ipv4
import dns.ipv6
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype

from probe.dnsanswers import answer_chain
from probe.model import DNSAnswer, DNSResponse
from probe.replay.records import DNSExchange, ICMPError
from probe.wire import WireError
from probe.wire import dns as wiredns

DNS_PORT = 53
# Rcodes for which dnspython accepts a response without a question
# (``Message.is_response``).
_QUESTIONLESS_OK = frozenset({1, 2, 4, 5})  # FORMERR, SERVFAIL, NOTIMP, REFUSED
_UNPARSABLE = (dns.exception.DNSException, ValueError, IndexError, UnicodeError, struct.error)

Key = tuple[bytes, int, bytes, int]  # client address, client port, server address, server port


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the tracker needs of one DNS message."""

    id: int
    response: bool
    opcode: int
    rcode: int
    # (name folded to lower case, type, class); None for a question-less message
    question: tuple[wiredns.Labels, int, int] | None
    name: str  # question name as sent, without the final dot
    rtype: str
    answers: tuple[DNSAnswer, ...]  # the stub's answer chain (responses only)


def decode(payload: bytes) -> Decoded | None:
    """A DNS message, or None if it is not one (dnspython would refuse it)."""
    try:
        return _fast(wiredns.parse_message(payload))
    except WireError:
        pass
    try:
        message = dns.message.from_wire(payload)
    except _UNPARSABLE:
        return None
    return _slow(message)


def looks_like_query(payload: bytes) -> bool:
    """A cheap test for DNS queries on ports other than 53: QR clear,
    opcode QUERY, one question, no answer or authority records."""
    if len(payload) < 17:
        return False
    _, flags, qd, an, ns, _ = wiredns.HEADER.unpack_from(payload)
    return not flags & 0xF800 and qd == 1 and an == 0 and ns == 0


def _fast(message: wiredns.Message) -> Decoded:
    question = message.question
    return Decoded(
        id=message.id,
        response=message.response,
        opcode=message.opcode,
        rcode=message.rcode,
        question=(_fold(question.name), question.rtype, question.rclass),
        name=_text(question.name, final_dot=False),
        rtype=type_text(question.rtype),
        answers=_chain(message) if message.response else (),
    )


@dataclass(slots=True)
class _RRset:
    ttl: int
    records: dict[object, wiredns.Answer] = field(default_factory=dict)


def _chain(message: wiredns.Message) -> tuple[DNSAnswer, ...]:
    """``probe.dnsanswers.answer_chain`` over the fast decoder's records.

    Records are grouped as dnspython groups them: one RRset per owner and
    type, with the lowest TTL and without duplicate data (one CNAME: the
    last); then CNAMEs are
    followed from the question (RFC 1034 section 3.6.2) until the asked
    type is found or a name repeats.
    """
    rrsets: dict[tuple[wiredns.Labels, int], _RRset] = {}
    for answer in message.answers:
        key = (_fold(answer.name), answer.rtype)
        rrset = rrsets.get(key)
        if rrset is None:
            rrsets[key] = rrset = _RRset(answer.ttl)
        else:
            rrset.ttl = min(rrset.ttl, answer.ttl)
        if answer.rtype == wiredns.TYPE_CNAME:
            # A singleton type: dnspython keeps only the last one it reads.
            rrset.records.clear()
        rrset.records.setdefault(answer.address or _fold(answer.target), answer)
    wanted = message.question.rtype
    name = _fold(message.question.name)
    found: list[DNSAnswer] = []
    visited: set[wiredns.Labels] = set()
    while name not in visited:
        visited.add(name)
        rrset = rrsets.get((name, wanted))
        if rrset is not None:
            kind = type_text(wanted)
            found += [DNSAnswer(kind, _rdata_text(a), rrset.ttl) for a in rrset.records.values()]
            break
        cname = rrsets.get((name, wiredns.TYPE_CNAME))
        if cname is None:
            break
        first = next(iter(cname.records.values()))
        found.append(DNSAnswer("CNAME", _text(first.target, final_dot=True), cname.ttl))
        name = _fold(first.target)
    return tuple(found)


def _rdata_text(answer: wiredns.Answer) -> str:
    if answer.rtype == wiredns.TYPE_A:
        return dns.ipv4.inet_ntoa(answer.address)
    if answer.rtype == wiredns.TYPE_AAAA:
        return dns.ipv6.inet_ntoa(answer.address)
    return _text(answer.target, final_dot=True)


@functools.lru_cache(maxsize=256)
def type_text(rtype: int) -> str:
    # An enum lookup, slow enough to cache.
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rtype))


@functools.lru_cache(maxsize=64)
def rcode_text(rcode: int) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode.make(rcode))


@functools.lru_cache(maxsize=1 << 14)
def _text(labels: wiredns.Labels, *, final_dot: bool) -> str:
    """dnspython's presentation form (escapes included); names repeat, so cached."""
    return dns.name.Name((*labels, b"")).to_text(omit_final_dot=not final_dot)


@functools.lru_cache(maxsize=1 << 14)
def _fold(labels: wiredns.Labels) -> wiredns.Labels:
    # Names compare case-insensitively, ASCII letters only (RFC 4343 section 3).
    return tuple(label.lower() for label in labels)


def _slow(message: dns.message.Message) -> Decoded:
    question = message.question[0] if len(message.question) == 1 else None
    response = bool(message.flags & dns.flags.QR)
    return Decoded(
        id=message.id,
        response=response,
        opcode=dns.opcode.from_flags(message.flags),
        rcode=message.rcode(),
        question=(
            (_fold(tuple(question.name.labels[:-1])), question.rdtype, question.rdclass)
            if question is not None else None
        ),
        name=question.name.to_text(omit_final_dot=True) if question is not None else "",
        rtype=dns.rdatatype.to_text(question.rdtype) if question is not None else "",
        answers=(
            answer_chain(message, question.name, question.rdtype)
            if question is not None and response else ()
        ),
    )


# --------------------------------------------------------------------------
# Matching queries and responses


@dataclass(slots=True)
class _Pending:
    transport: str
    key: Key
    query: Decoded
    t0: float
    responses: list[DNSResponse] = field(default_factory=list)
    ignored: int = 0
    icmp: ICMPError | None = None
    t_last: float = 0.0


class DNSTracker:
    """Pairs queries with their responses and emits finished exchanges.

    An exchange without an answer stays open for ``timeout`` seconds of
    capture time (the longest a client waits); one with an answer for
    ``answered`` seconds after it, so that racing forged and real answers
    join it (the live check itself listens ``dns_window`` seconds). Then
    it is emitted and forgotten.
    """

    def __init__(
        self, emit: Callable[[DNSExchange], None], timeout: float,
        address_text: Callable[[bytes], str], answered: float = 2.0,
    ) -> None:
        self._emit = emit
        self._timeout = timeout
        self._answered = answered
        self._text = address_text
        self._sockets: dict[Key, dict[int, _Pending]] = {}
        self._open: dict[tuple[Key, int], _Pending] = {}  # in query order
        # (server address, port) pairs seen answering DNS on a port other
        # than 53, so their TCP connections are read as DNS too.
        self.servers: set[tuple[bytes, int]] = set()

    def query(self, t: float, key: Key, transport: str, message: Decoded) -> None:
        if message.question is None or (key, message.id) in self._open:
            return  # a retransmission keeps the first query's time
        pending = _Pending(transport, key, message, t, t_last=t)
        self._sockets.setdefault(key, {})[message.id] = pending
        self._open[(key, message.id)] = pending

    def expects(self, key: Key) -> bool:
        return key in self._sockets

    def response(
        self, t: float, key: Key, message: Decoded | None, ttl: int | None, ip_id: int | None
    ) -> None:
        """A message from the server of ``key`` back to its client."""
        waiting = self._sockets.get(key)
        if not waiting:
            return
        pending = waiting.get(message.id) if message is not None else None
        if message is None or pending is None or not _is_response(pending.query, message):
            # A stub would read and drop it (probe.net.dns._parse).
            for other in waiting.values():
                other.ignored += 1
            return
        pending.responses.append(DNSResponse(
            t=round(t, 6),
            rcode=rcode_text(message.rcode),
            answers=message.answers,
            ip_ttl=ttl,
            ip_id=ip_id,
        ))
        pending.t_last = t
        self.servers.add((key[2], key[3]))

    def icmp(self, key: Key, error: ICMPError) -> None:
        for pending in self._sockets.get(key, {}).values():
            if pending.icmp is None:
                pending.icmp = error

    def expire(self, now: float) -> None:
        for pending in list(self._open.values()):
            if pending.responses:
                done = now - pending.responses[0].t > self._answered
            else:
                done = now - pending.t0 > self._timeout
            if done:
                self._close(pending)

    def flush(self) -> None:
        for pending in list(self._open.values()):
            self._close(pending)

    def _close(self, pending: _Pending) -> None:
        ident = pending.query.id
        del self._open[(pending.key, ident)]
        waiting = self._sockets[pending.key]
        del waiting[ident]
        if not waiting:
            del self._sockets[pending.key]
        client, client_port, server, server_port = pending.key
        self._emit(DNSExchange(
            transport=pending.transport,
            client=self._text(client),
            client_port=client_port,
            server=self._text(server),
            server_port=server_port,
            id=ident,
            name=pending.query.name,
            rtype=pending.query.rtype,
            t0=round(pending.t0, 6),
            responses=tuple(pending.responses),
            ignored=pending.ignored,
            icmp=pending.icmp,
            t_last=round(pending.t_last, 6),
        ))


def _is_response(query: Decoded, response: Decoded) -> bool:
    """dnspython's ``Message.is_response`` for one-question queries."""
    if not response.response or response.opcode != query.opcode:
        return False
    if response.question is None:
        return response.rcode in _QUESTIONLESS_OK
    return response.question == query.question


class DNSStream:
    """DNS over TCP (RFC 7766 section 8): two-byte length, then a message."""

    __slots__ = ("_buffers", "_key", "_tracker")

    def __init__(self, tracker: DNSTracker, key: Key) -> None:
        self._tracker = tracker
        self._key = key
        self._buffers = (bytearray(), bytearray())

    wants_data = True

    def data(self, from_client: bool, t: float, data: bytes, ttl: int, ip_id: int | None) -> None:
        buffer = self._buffers[0 if from_client else 1]
        buffer += data
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                return
            message = decode(bytes(buffer[2 : 2 + length]))
            del buffer[: 2 + length]
            if from_client:
                if message is not None and not message.response:
                    self._tracker.query(t, self._key, "tcp", message)
            else:
                self._tracker.response(t, self._key, message, ttl, ip_id)

    def eof(self, from_client: bool, t: float) -> None:
        """Nothing to finish: each message is complete when its bytes are."""

    def outcome(self) -> tuple[None, tuple[()], tuple[()]]:
        return None, (), ()  # the exchanges went to the tracker
