"""The censor's decisions: packets seen on the client link in, actions out.

Sans-I/O (the daemon does the sockets): :meth:`Inspector.feed` takes one
IP packet that arrived from the client side, and the time, and returns
what to do: :class:`Send` packets, add a :class:`Residual` 3-tuple to the
nftables set, or write a :class:`Note` to the log.

How TCP is held back: nftables drops every client-to-server segment with
payload on an inspected port (``rules.inspected_ports``), so nothing the
inspector has not seen reaches a server. Per flow the inspector holds the
first payload segments until the ClientHello (or HTTP request head) is
complete, read with the project's codecs (:mod:`probe.wire`), decides
once, and then either re-sends everything it held and every later segment
of the flow (allowed), or answers in the server's name and keeps the
flow's segments for ever (blocked). Only the first request of a flow is
read: a censor that looks at later ones is left for a scenario that needs it.

UDP is held back per datagram: nftables drops the client's datagrams that
may open an OpenVPN session (``rules._udp_handoff``), and the inspector
re-sends each one that is not a client reset (or that the dice spare).
Re-sent packets are :class:`Send` with ``relay`` set: the daemon marks
them so that nftables' drop rules still apply to them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rdatatype

from probe.wire import WireError
from probe.wire.http1 import (
    MessageReader,
    RequestHead,
    Role,
    header,
    looks_like_request,
)
from probe.wire.packets import (
    SYN,
    TCP,
    UDP,
    IPPacket,
    TCPSegment,
    UDPDatagram,
    build_tcp,
    build_udp,
    max_tcp_payload,
    parse_ip,
    parse_tcp,
    parse_udp,
    split_segment,
)
from probe.wire.tls import (
    ContentType,
    HandshakeReader,
    HandshakeType,
    RecordReader,
    parse_client_hello,
)
from probe_lab.censor.config import (
    CensorConfig,
    HostAction,
    HTTPHost,
    OpenVPNFingerprint,
    SNIReset,
    name_matches,
)
from probe_lab.censor.fingerprint import FIRST_BYTES, client_reset, tcp_client_reset
from probe_lab.censor.forge import dns_answer, http_blockpage, tcp_resets
from probe_lab.censor.rules import inspected_ports

__all__ = ["Action", "Inspector", "Note", "Residual", "Send"]

_DNS_PORT = 53
# Flows idle this long are forgotten; at most this many are remembered.
_FLOW_IDLE = 300.0
_MAX_FLOWS = 4096
_SWEEP_EVERY = 10.0


@dataclass(frozen=True, slots=True)
class Send:
    """An IP packet to write to the raw socket of its version (routed by ``dst``).

    ``relay``: a client's packet passed on (nftables' drops apply to it),
    not one the censor forged.
    """

    version: int
    dst: str
    packet: bytes
    relay: bool = False


@dataclass(frozen=True, slots=True)
class Residual:
    """Drop ``protocol`` from ``client`` to ``server``:``port`` for ``seconds`` (a set element)."""

    version: int
    client: str
    server: str
    port: int
    seconds: float
    protocol: int = TCP


@dataclass(frozen=True, slots=True)
class Note:
    text: str


Action = Send | Residual | Note
FlowKey = tuple[str, int, str, int]  # client, client port, server, server port
Penalty = tuple[int, str, str, int]  # protocol, client, server, server port
Trigger = SNIReset | HTTPHost | OpenVPNFingerprint


class _ServerName:
    """The SNI of the ClientHello at the start of a TLS stream, fed in pieces."""

    def __init__(self) -> None:
        self.records = RecordReader()
        self.handshakes = HandshakeReader()

    def feed(self, data: bytes) -> tuple[bool, str | None]:
        """(complete, name); raises WireError when the stream is not a ClientHello."""
        for record in self.records.feed(data):
            if record.content_type != ContentType.HANDSHAKE:
                raise WireError(f"record type {record.content_type} before the ClientHello")
            for message in self.handshakes.feed(record.fragment):
                if message.msg_type != HandshakeType.CLIENT_HELLO:
                    raise WireError(f"handshake type {message.msg_type}, not a ClientHello")
                sni = parse_client_hello(message.body).sni
                return True, sni.lower() if sni else None
        return False, None


class _RequestHost:
    """The Host of the first HTTP/1.x request of a stream, fed in pieces."""

    def __init__(self) -> None:
        self.reader = MessageReader(Role.REQUEST)

    def feed(self, data: bytes) -> tuple[bool, str | None]:
        for event in self.reader.feed(data):
            if isinstance(event, RequestHead):
                host = header(event.headers, "host")
                return True, _host_name(host) if host else None
        return False, None


class _OpenVPNReset:
    """An OpenVPN client's reset at the start of a TCP stream, fed in pieces."""

    def __init__(self) -> None:
        self.head = b""  # decided by fingerprint.MAX_RESET + 2 bytes at the latest

    def feed(self, data: bytes) -> tuple[bool, str | None]:
        self.head += data
        reset = tcp_client_reset(self.head)
        return (False, None) if reset is None else (True, str(reset))


_Reader = _ServerName | _RequestHost | _OpenVPNReset


@dataclass(slots=True)
class _Flow:
    next_seq: int  # the client's sequence number after the contiguous bytes read so far
    first: int  # sequence number of the first payload byte
    held: list[tuple[IPPacket, TCPSegment]] = field(default_factory=list)
    state: str = "inspect"  # inspect | allow | block
    reader: _Reader | None = None
    rules: tuple[Trigger, ...] = ()  # the triggers that may fire on this flow
    seen: float = 0.0


class Inspector:
    """The decision engine; ``random`` returns floats in [0, 1) for the probabilities."""

    def __init__(self, config: CensorConfig, random: Callable[[], float], mtu: int = 1500) -> None:
        if any(r.selector.names for r in config.openvpn_fingerprint):
            raise ValueError("the inspector has no zone: resolve names first (rules.resolve_names)")
        self.config = config
        self.random = random
        self.mtu = mtu
        ports = inspected_ports(config)
        self.ports = None if ports is None else frozenset(ports)  # None: every TCP port
        self.flows: dict[FlowKey, _Flow] = {}
        self.residual: dict[Penalty, float] = {}  # -> until
        self.swept = 0.0

    def feed(self, data: bytes, now: float) -> list[Action]:
        """One packet that arrived from the client side."""
        self._sweep(now)
        try:
            packet = parse_ip(data)
            if packet.protocol == UDP:
                datagram = parse_udp(packet)
                return [*self._dns(packet, datagram), *self._openvpn(packet, datagram, now)]
            segment = parse_tcp(packet)
        except WireError:
            return []
        if self.ports is not None and segment.dport not in self.ports:
            return []
        key = (packet.src, segment.sport, packet.dst, segment.dport)
        if segment.flags & SYN:
            self.flows.pop(key, None)  # a new connection on a reused 4-tuple
            return []
        if not segment.payload:
            return []  # nftables lets payload-less segments through
        return self._tcp(key, packet, segment, now)

    # ---------------------------------------------------------------- DNS

    def _dns(self, packet: IPPacket, datagram: UDPDatagram) -> list[Action]:
        if not self.config.dns_inject or datagram.dport != _DNS_PORT:
            return []
        try:
            query = dns.message.from_wire(datagram.payload)
        except (dns.exception.DNSException, ValueError):
            return []
        if query.flags & dns.flags.QR or query.opcode() != dns.opcode.QUERY:
            return []
        if len(query.question) != 1:
            return []
        question = query.question[0]
        if question.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return []
        name = question.name.to_text(omit_final_dot=True).lower()
        rule = next((r for r in self.config.dns_inject if name_matches(name, r.names)), None)
        if rule is None:
            return []
        rtype = dns.rdatatype.to_text(question.rdtype)
        asked = f"{_endpoint(packet.src, datagram.sport)} asked {name} {rtype}"
        if self.random() >= rule.probability:
            return [Note(f"dns_inject: {asked}: let through (probability {rule.probability})")]
        client, resolver = (packet.src, datagram.sport), (packet.dst, datagram.dport)
        forged = [
            wire
            for addresses in rule.answers
            if (wire := dns_answer(query, addresses, rule.ttl, client=client, resolver=resolver))
        ]
        actions: list[Action] = [_send(wire) for wire in forged]
        return [*actions, Note(f"dns_inject: {asked}: {len(forged)} forged answer(s)")]

    # ------------------------------------------------------------ OpenVPN/UDP

    def _openvpn(self, packet: IPPacket, datagram: UDPDatagram, now: float) -> list[Action]:
        """Judge a datagram nftables withheld: the same test as ``rules._udp_handoff``."""
        server = ipaddress.ip_address(packet.dst)
        rules = [
            r
            for r in self.config.openvpn_fingerprint
            if r.protocol != "tcp" and _applies(r, server, datagram.dport)
        ]
        if not rules or not datagram.payload or datagram.payload[0] not in FIRST_BYTES:
            return []  # nftables let it through
        penalty = (UDP, packet.src, packet.dst, datagram.dport)
        if self.residual.get(penalty, 0.0) > now:
            return []
        wire = build_udp(packet.src, packet.dst, datagram.sport, datagram.dport, datagram.payload)
        relay = Send(packet.version, packet.dst, wire, relay=True)
        try:
            reset = client_reset(datagram.payload)
        except WireError:
            return [relay]
        rule = rules[0]
        what = (
            f"openvpn_fingerprint: {_endpoint(packet.src, datagram.sport)} -> "
            f"{_endpoint(packet.dst, datagram.dport)} udp {reset}"
        )
        if self.random() >= rule.probability:
            return [Note(f"{what}: let through (probability)"), relay]
        actions: list[Action] = []
        if rule.residual:
            self.residual[penalty] = now + rule.residual
            actions.append(Residual(packet.version, packet.src, packet.dst, datagram.dport,
                                    rule.residual, UDP))  # fmt: skip
        return [*actions, Note(f"{what}: drop")]

    # ---------------------------------------------------------------- TCP

    def _tcp(self, key: FlowKey, packet: IPPacket, segment: TCPSegment, now: float) -> list[Action]:
        flow = self.flows.get(key)
        if flow is None:
            flow = self.flows[key] = _Flow(segment.seq, segment.seq)
            if self.residual.get((TCP, packet.src, packet.dst, segment.dport), 0.0) > now:
                flow.state = "block"  # a penalty still running: nothing gets through
        flow.seen = now
        if flow.state == "allow":
            return self._resend(packet, segment)
        if flow.state == "block":
            return []
        flow.held.append((packet, segment))
        try:
            trigger = self._trigger(flow, packet, segment)
        except WireError:
            trigger = None  # not what the rules read: not this censor's business
        if isinstance(trigger, _Wait):
            return []  # hold on: the rest of the ClientHello or request head is on its way
        if trigger is None or self.random() >= trigger[0].probability:
            flow.state = "allow"
            held, flow.held = flow.held, []
            note = [Note(f"{trigger[1]}: let through (probability)")] if trigger else []
            return [*note, *(a for p, s in held for a in self._resend(p, s))]
        flow.state = "block"
        flow.held = []
        return self._block(key, flow, packet, segment, *trigger)

    def _trigger(
        self, flow: _Flow, packet: IPPacket, segment: TCPSegment
    ) -> tuple[Trigger, str] | None | _Wait:
        """The rule the flow's first bytes trigger (with words for the log), None, or _WAIT."""
        fresh = _advance(flow, segment)
        if flow.reader is None:
            flow.reader, flow.rules = self._reader(packet, segment, fresh)
            if flow.reader is None:
                return None
        if not fresh:
            return _WAIT
        complete, name = flow.reader.feed(fresh)
        if not complete:
            return _WAIT
        who = f"{_endpoint(packet.src, segment.sport)} -> {_endpoint(packet.dst, segment.dport)}"
        for rule in flow.rules:
            if name is None:
                break
            if isinstance(rule, OpenVPNFingerprint):  # its reader completes on a reset only
                return rule, f"openvpn_fingerprint: {who} tcp {name}"
            if isinstance(rule, SNIReset) and name_matches(name, rule.sni):
                return rule, f"sni_reset: {who} sni={name}"
            if isinstance(rule, HTTPHost) and name_matches(name, rule.hosts):
                return rule, f"http_host: {who} host={name}"
        return None

    def _reader(
        self, packet: IPPacket, segment: TCPSegment, start: bytes
    ) -> tuple[_Reader | None, tuple[Trigger, ...]]:
        """How to read a new flow, from its first bytes, and which rules apply to it.

        An OpenVPN stream opens with a length below 1100, never with a TLS
        record's 0x16 0x03 (5635 and up) nor an HTTP method's letters.
        """
        server = ipaddress.ip_address(packet.dst)
        reader: type[_Reader]
        rules: tuple[Trigger, ...]
        if start[:1] == bytes([ContentType.HANDSHAKE]):
            reader, rules = _ServerName, tuple(self.config.sni_reset)
        elif looks_like_request(start):
            reader, rules = _RequestHost, tuple(self.config.http_host)
        else:
            reader = _OpenVPNReset
            rules = tuple(r for r in self.config.openvpn_fingerprint if r.protocol != "udp")
        rules = tuple(r for r in rules if _applies(r, server, segment.dport))
        return (reader() if rules else None), rules

    def _block(
        self,
        key: FlowKey,
        flow: _Flow,
        packet: IPPacket,
        segment: TCPSegment,
        rule: Trigger,
        what: str,
    ) -> list[Action]:
        client, server = (key[0], key[1]), (key[2], key[3])
        actions: list[Action] = []
        if rule.residual:
            # Before the answer goes out: the client's next try must meet the penalty.
            self.residual[(TCP, client[0], server[0], server[1])] = flow.seen + rule.residual
            actions.append(Residual(packet.version, client[0], server[0], server[1], rule.residual))
        withheld = (flow.first, flow.next_seq)
        action = rule.action if isinstance(rule, HTTPHost) else HostAction.RST
        if action is HostAction.RST:
            forged = tcp_resets(client, server, withheld, segment.ack)
        elif action is HostAction.BLOCKPAGE:
            forged = http_blockpage(client, server, withheld, segment.ack)
        else:
            forged = []
        actions += [_send(wire) for wire in forged]
        actions.append(Note(f"{what}: {action.value}"))
        return actions

    def _resend(self, packet: IPPacket, segment: TCPSegment) -> list[Action]:
        pieces = split_segment(segment, max_tcp_payload(packet.version, segment, self.mtu))
        return [
            Send(packet.version, packet.dst, build_tcp(packet.src, packet.dst, piece), relay=True)
            for piece in pieces
        ]

    def _sweep(self, now: float) -> None:
        if now - self.swept < _SWEEP_EVERY and len(self.flows) <= _MAX_FLOWS:
            return
        self.swept = now
        self.flows = {k: f for k, f in self.flows.items() if now - f.seen < _FLOW_IDLE}
        while len(self.flows) > _MAX_FLOWS:
            del self.flows[next(iter(self.flows))]  # the oldest
        self.residual = {k: until for k, until in self.residual.items() if until > now}


def _applies(
    rule: Trigger, server: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> bool:
    """Whether ``rule`` watches ``server``:``port`` (no ports or addresses: every one)."""
    if isinstance(rule, OpenVPNFingerprint):
        ports, addresses = rule.selector.ports, rule.selector.addresses
    else:
        ports, addresses = rule.ports, rule.addresses
    if ports and port not in ports:
        return False
    return not addresses or any(server in ipaddress.ip_network(a) for a in addresses)


class _Wait:
    """The rules need more bytes of the flow."""


_WAIT = _Wait()


def _advance(flow: _Flow, segment: TCPSegment) -> bytes:
    """The segment's bytes that extend the flow's contiguous data (sequence numbers wrap)."""
    skip = (flow.next_seq - segment.seq) & 0xFFFFFFFF
    if skip >= len(segment.payload):  # a gap before it, or nothing new
        return b""
    fresh = segment.payload[skip:]
    flow.next_seq = (flow.next_seq + len(fresh)) & 0xFFFFFFFF
    return fresh


def _host_name(value: str) -> str:
    """RFC 9110 section 7.2: Host = uri-host [ ":" port ]; IPv6 literals are bracketed."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if ":" in value else value


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _send(wire: bytes) -> Send:
    """A packet this censor built, addressed from its own header."""
    packet = parse_ip(wire)
    return Send(packet.version, packet.dst, wire)
