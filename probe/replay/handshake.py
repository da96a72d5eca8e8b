"""VPN first exchanges rebuilt from a capture, as the live check records them.

The live check (``probe.net.vpn``) talks through a conversation
(``probe.net.handshakes``) that names what arrives and says whether it
answers our message. Replay hears the captured replies through the same
conversations, built with the ids the capture shows: the client's first
message is parsed with the codecs for the session id (OpenVPN), initiator
SPI (IKEv2) or tunnel id (L2TP) that the live conversation drew at random,
and these are handed to it as its "random" draws. So a reply answers in
replay exactly when it answered live.

WireGuard is the exception: proving a response genuine takes the
initiator's ephemeral private key, which never leaves the probe. Replay
counts a response (or cookie reply) to one of our sender indices as the
answer, which an on-path injector that saw our initiation could fake.

Timing follows the live driver: over UDP every datagram the client sent
is an attempt, and silence is judged against the handshake timeout from
the first send; over TCP the connect is a ``tcp`` observation bounded by
that timeout, then the exchange gets the timeout again, and a reset, a
FIN, or silence ends it. SSTP's exchange is read inside TLS, which takes
the key log. docs/replay.md has the rules and limits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from probe.model import (
    Failure,
    HandshakeMessage,
    HandshakeObservation,
    Observation,
    Target,
    TargetKind,
    TCPObservation,
)
from probe.net import handshakes
from probe.net.plan import CheckSettings
from probe.replay.observe import (
    connect_outcome,
    deadline,
    handshake_outcome,
    icmp_failure,
)
from probe.replay.records import Chunk, ICMPError, TCPConnection, UDPFlow
from probe.wire import WireError, ikev2, l2tp, openvpn, pptp, sstp, wireguard

__all__ = ["fits", "handshake_observations"]

# The live check's name for its initiation (probe.net.handshakes.WireGuard.opening,
# which replay cannot call: it makes a new initiation each time).
_WIREGUARD_OPENING = "handshake initiation"

# ICMP errors a connected UDP socket reports without IP_RECVERR: the "hard"
# ones (net/ipv4/icmp.c icmp_err_convert, .fatal; net/ipv6/icmp.c tab_unreach).
# Others (host or net unreachable, time exceeded) leave the probe waiting.
_HARD_UNREACHABLE = {4: frozenset({2, 3, 6, 7, 8, 9, 10, 13, 14, 15}),
                     6: frozenset({1, 4, 5, 6})}
_UNREACHABLE = {4: 3, 6: 1}  # the destination unreachable type of ICMP and ICMPv6


def fits(target: Target, flow: TCPConnection | UDPFlow) -> bool:
    """Whether ``flow`` can be this target's handshake with its server:
    the client's first message is the protocol's opening, or over TCP the
    client never got to send one (the connect or TLS failed)."""
    if isinstance(flow, UDPFlow):
        sent = _sent(flow.datagrams)
        return bool(sent) and _opening_ids(target, sent[0].data) is not None
    if target.kind is TargetKind.SSTP and flow.tls is not None:
        hello = flow.tls.client_hello
        if hello is None or (hello.sni or "").lower() != target.host.lower() or hello.alpn:
            return False
    elif flow.bytes_client == 0:
        return True
    client = b"".join(chunk.data for chunk in _sent(flow.chunks))
    return not client or _opening_ids(target, client) is not None


def handshake_observations(
    target: Target, flow: TCPConnection | UDPFlow, keys: Mapping[str, str],
    settings: CheckSettings, capture_end: float,
) -> tuple[Observation, ...]:
    """What the live check recorded for ``flow`` (which ``fits`` the
    target): over UDP the handshake, over TCP its connect then the handshake.
    Empty when the capture cannot tell (SSTP without the TLS keys)."""
    if isinstance(flow, UDPFlow):
        observation = _datagrams(target, flow, keys, settings.handshake_timeout, capture_end)
        return () if observation is None else (observation,)
    return _stream(target, flow, keys, settings.handshake_timeout, capture_end)


# --------------------------------------------------------------------------
# The conversation, with the capture's ids


def _opening_ids(target: Target, data: bytes) -> dict[int, bytes] | None:
    """The ids the live conversation drew, by size, read off its first
    message; None when ``data`` is not the opening of the target's protocol."""
    try:
        return _ids(target, data)
    except WireError:
        return None


def _ids(target: Target, data: bytes) -> dict[int, bytes]:
    kind = target.kind
    if kind is TargetKind.OPENVPN:
        if target.transport == "tcp":
            packets, _ = openvpn.tcp_unframe(data)
            data = packets[0] if packets else b""
        header = openvpn.parse_header(data)
        if header.opcode != openvpn.P_CONTROL_HARD_RESET_CLIENT_V2:
            raise WireError(f"OpenVPN: {header.name}, not the client's hard reset")
        return {openvpn.SESSION_ID_SIZE: header.session_id}
    if kind is TargetKind.WIREGUARD:
        wireguard.parse_initiation(data)
        return {}
    if kind is TargetKind.IKEV2:
        # RFC 3948 section 2.2: a zero marker, where an IKE header has its
        # initiator SPI, which is never zero (RFC 7296 section 3.1).
        ike = ikev2.parse_message(data, nat_t=data[:4] == ikev2.NON_ESP_MARKER)
        if ike.is_response or ike.exchange != ikev2.EXCHANGE_IKE_SA_INIT:
            raise WireError(f"IKE: {ike.exchange_name}, not an IKE_SA_INIT request")
        return {len(ike.initiator_spi): ike.initiator_spi}
    if kind is TargetKind.L2TP:
        control = l2tp.parse_message(data)
        if control.message_type != l2tp.SCCRQ or control.assigned_tunnel_id is None:
            raise WireError(f"L2TP: {control.name}, not an SCCRQ")
        return {2: control.assigned_tunnel_id.to_bytes(2, "big")}
    if kind is TargetKind.PPTP:
        messages, _ = pptp.split_messages(data)
        if not messages or pptp.parse_control_message(messages[0]).message_type != (
            pptp.START_CONTROL_CONNECTION_REQUEST
        ):
            raise WireError("PPTP: not a Start-Control-Connection-Request")
        return {}
    if kind is TargetKind.SSTP:
        if sstp.parse_duplex_post_request(data) is None:
            raise WireError("SSTP: the request head is incomplete")
        return {}
    raise ValueError(f"{kind} is not a VPN protocol")


def _drawn(ids: Mapping[int, bytes]) -> Callable[[int], bytes]:
    """A conversation's ``random`` that draws the captured ids (by size);
    what nothing reads back (nonces, key shares) comes out as zeros."""
    def draw(size: int) -> bytes:
        return ids.get(size, bytes(size))
    return draw


class _WireGuardByIndex(handshakes.WireGuard):
    """WireGuard's conversation as replay hears it: a response or cookie
    reply to one of our sender indices answers (see the module's doc)."""

    def __init__(self, indices: frozenset[int]) -> None:
        # Replay never initiates: the keys and the randomness go unused.
        super().__init__(bytes(wireguard.KEY_SIZE), bytes(wireguard.KEY_SIZE), os.urandom)
        self._indices = indices

    def read(self, data: bytes) -> tuple[str, bool]:
        reply = wireguard.parse_reply(data, None)  # WireError: not WireGuard
        name, _ = super().read(data)  # the live check's name for it
        return name, reply.receiver_index in self._indices


def _conversation(
    target: Target, port: int, keys: Mapping[str, str], sent: Sequence[bytes]
) -> tuple[handshakes.Conversation, str] | None:
    """The conversation that hears like the live one did, and the name of
    its opening; None when the client's messages are not the protocol's."""
    ids = _opening_ids(target, sent[0]) if sent else None
    if ids is None:
        return None
    if target.kind is TargetKind.WIREGUARD:
        indices = frozenset(wireguard.parse_initiation(data) for data in sent
                            if _opening_ids(target, data) is not None)
        return _WireGuardByIndex(indices), _WIREGUARD_OPENING
    try:
        conversation = handshakes.conversation_for(target, port, keys, _drawn(ids))
    except WireError:  # e.g. an all-zero session id: not a message our client makes
        return None
    return conversation, conversation.opening()[0]


# --------------------------------------------------------------------------
# The exchange


@dataclass(slots=True)
class _Exchange:
    """The messages of one exchange as the live driver records them."""

    conversation: handshakes.Conversation
    opening: str
    messages: list[HandshakeMessage] = field(default_factory=list)
    reply: str | None = None
    failure: Failure | None = None  # once over: how (None: answered)
    # What the client sends next in a stream, as the conversation asked (SSTP).
    next_names: list[str] = field(default_factory=list)

    def sent(self, chunk: Chunk) -> None:
        """A client message: the opening, a resend, or the reply a heard message asked for."""
        first = not any(m.sent for m in self.messages)
        if first or self.conversation.transport == "udp":
            name = self.opening
        elif self.next_names:
            name = self.next_names.pop(0)
        else:
            # No message was due: the rest of the previous write, split
            # across segments.
            last = max(i for i, m in enumerate(self.messages) if m.sent)
            message = self.messages[last]
            self.messages[last] = HandshakeMessage(
                message.t, True, message.name, message.size + len(chunk.data))
            return
        self.messages.append(HandshakeMessage(chunk.t, True, name, len(chunk.data)))

    def over(self, chunk: Chunk) -> bool:
        """Hear a server message; whether it ended the exchange (``failure`` says how)."""
        for heard in self.conversation.hear(chunk.data):
            self.messages.append(HandshakeMessage(chunk.t, False, heard.name, heard.size))
            if heard.answered:
                self.reply = heard.name
                return True
            if heard.unexpected:
                self.failure = Failure.UNEXPECTED_REPLY
                return True
            if heard.reply_name:
                self.next_names.append(heard.reply_name)
        return False


def _observation(
    target: Target, address: str, port: int, keys: Mapping[str, str], transport: str,
    t0: float, t: float, failure: Failure | None, attempts: int = 1,
    exchange: _Exchange | None = None,
) -> HandshakeObservation:
    return HandshakeObservation(
        protocol=str(target.kind), transport=transport, address=address, port=port,
        t0=t0, t=round(t, 6), failure=failure, attempts=max(attempts, 1),
        reply=exchange.reply if exchange else None,
        answerable=handshakes.answerable(target, keys),
        messages=tuple(exchange.messages) if exchange else (),
    )


def _sent(chunks: Sequence[Chunk]) -> list[Chunk]:
    return [chunk for chunk in chunks if chunk.from_client]


def _datagrams(
    target: Target, flow: UDPFlow, keys: Mapping[str, str], timeout: float, capture_end: float,
) -> HandshakeObservation | None:
    """Resends, replies and ICMP errors in capture order, until an answer,
    an unexpected reply, a hard ICMP error, or the timeout."""
    sent = _sent(flow.datagrams)
    built = _conversation(target, flow.server_port, keys, [chunk.data for chunk in sent])
    if built is None:
        return None
    exchange = _Exchange(*built)
    t0 = sent[0].t
    icmp = flow.icmp if flow.icmp is not None and _hard(flow.icmp) else None
    attempts = 0

    def end(t: float, failure: Failure | None) -> HandshakeObservation:
        return _observation(target, flow.server, flow.server_port, keys, "udp", t0, t, failure,
                            attempts, exchange)

    for chunk in flow.datagrams:
        if chunk.t - t0 > timeout:
            break
        if icmp is not None and icmp.t < chunk.t:
            return end(icmp.t, icmp_failure(icmp))
        if chunk.from_client:
            attempts += 1
            exchange.sent(chunk)
            continue
        if exchange.over(chunk):
            return end(chunk.t, exchange.failure)
    if icmp is not None and icmp.t - t0 <= timeout:
        return end(icmp.t, icmp_failure(icmp))
    return end(deadline(t0, timeout, capture_end), Failure.GENERIC_TIMEOUT)


def _hard(error: ICMPError) -> bool:
    """An ICMP error the live check's socket reports (see _HARD_UNREACHABLE)."""
    return (error.type == _UNREACHABLE[error.version]
            and error.code in _HARD_UNREACHABLE[error.version])


def _stream(
    target: Target, conn: TCPConnection, keys: Mapping[str, str], timeout: float,
    capture_end: float,
) -> tuple[Observation, ...]:
    """The connect, then (inside TLS for SSTP) the messages both ways until
    an answer, an unexpected reply, a reset, a FIN, or the timeout."""
    connect = connect_outcome(conn, timeout, capture_end)
    t0 = conn.t_syn if conn.t_syn is not None else conn.t_first
    address, port = conn.server, conn.server_port
    tcp = TCPObservation(address, port, t0, connect.t, connect.failure)

    def end(t: float, failure: Failure | None, exchange: _Exchange | None = None) -> tuple[
            Observation, ...]:
        return tcp, _observation(target, address, port, keys, "tcp", t0, t, failure, 1, exchange)

    if connect.failure is not None:
        return end(connect.t, connect.failure)
    if target.kind is TargetKind.SSTP:
        tls = handshake_outcome(conn, timeout, capture_end)
        if tls.failure is not None:
            return end(tls.t, tls.failure)
        if not conn.chunks:
            return ()  # the exchange went encrypted and no key opened it
    built = _conversation(target, port, keys,
                          [b"".join(chunk.data for chunk in _sent(conn.chunks))])
    if built is None:
        return ()
    exchange = _Exchange(*built)
    stops = [(reset.t, Failure.CONNECTION_RESET) for reset in conn.resets if reset.by == "server"]
    if conn.t_fin_server is not None:
        stops.append((conn.t_fin_server, Failure.EOF))
    stop = min(stops, default=None, key=lambda s: s[0])
    limit = connect.t + timeout
    for chunk in conn.chunks:
        if chunk.t > limit or (stop is not None and chunk.t > stop[0]):
            break
        if chunk.from_client:
            exchange.sent(chunk)
            continue
        if exchange.over(chunk):
            return end(chunk.t, exchange.failure, exchange)
    if stop is not None and stop[0] <= limit:
        return end(stop[0], stop[1], exchange)
    return end(deadline(connect.t, timeout, capture_end), Failure.GENERIC_TIMEOUT, exchange)
