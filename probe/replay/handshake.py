"""VPN first exchanges rebuilt from a capture, as the live check records them.

The live check (``probe.net.vpn``) talks through a conversation and
records with a recorder (``probe.vpn``); replay uses the same ones. The
registry tells a target's first message in a flow (``fits``) and rebuilds
the conversation that sent it with the ids the capture shows
(``probe.vpn.registry.overheard``), so a captured reply is named, and
answers or not, exactly as it did live (WireGuard excepted: see
``probe.vpn.conversations.WireGuard.overheard``); the recorder names the
client's messages, counts attempts and ends the exchange as live.

Timing follows the live driver: over UDP every datagram the client sent
is an attempt, and silence is judged against the handshake timeout from
the first send; over TCP the connect is a ``tcp`` observation bounded by
that timeout, then the exchange gets the timeout again, and a reset, a
FIN, or silence ends it. SSTP's exchange is read inside TLS, which takes
the key log. docs/replay.md has the rules and limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from probe.model import (
    Failure,
    HandshakeObservation,
    Observation,
    Target,
    TCPObservation,
)
from probe.replay.observe import (
    connect_outcome,
    deadline,
    handshake_outcome,
    icmp_failure,
)
from probe.replay.records import Chunk, ICMPError, TCPConnection, UDPFlow
from probe.vpn.conversations import Conversation
from probe.vpn.recorder import HandshakeRecorder
from probe.vpn.registry import conversation_class, overheard, recognises

__all__ = ["fits", "handshake_observations"]

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
        return bool(sent) and recognises(target, sent[0].data)
    speaker = conversation_class(target)
    if speaker.tls and flow.tls is not None:
        # The live check's ClientHello: the conversation's server name, no ALPN.
        hello = flow.tls.client_hello
        if hello is None or hello.alpn or (hello.sni or "").lower() != (
                speaker.server_name(target) or "").lower():
            return False
    elif flow.bytes_client == 0:
        return True
    client = b"".join(chunk.data for chunk in _sent(flow.chunks))
    return not client or recognises(target, client)


def handshake_observations(
    target: Target, flow: TCPConnection | UDPFlow, keys: Mapping[str, str], timeout: float,
    capture_end: float,
) -> tuple[Observation, ...]:
    """What the live check recorded for ``flow`` (which ``fits`` the
    target) with a handshake ``timeout``: over UDP the handshake, over TCP
    its connect then the handshake. Empty when the capture cannot tell
    (SSTP without the TLS keys)."""
    if isinstance(flow, UDPFlow):
        observation = _datagrams(target, flow, keys, timeout, capture_end)
        return () if observation is None else (observation,)
    return _stream(target, flow, keys, timeout, capture_end)


def _sent(chunks: Sequence[Chunk]) -> list[Chunk]:
    return [chunk for chunk in chunks if chunk.from_client]


def _over(record: HandshakeRecorder, conversation: Conversation, chunk: Chunk) -> bool:
    """Hear a server's ``chunk``; whether it ended the exchange."""
    return any(record.heard(chunk.t, heard) for heard in conversation.hear(chunk.data))


def _datagrams(
    target: Target, flow: UDPFlow, keys: Mapping[str, str], timeout: float, capture_end: float,
) -> HandshakeObservation | None:
    """Resends, replies and ICMP errors in capture order, until an answer,
    an unexpected reply, a hard ICMP error, or the timeout."""
    sent = _sent(flow.datagrams)
    conversation = overheard(target, flow.server_port, keys, [chunk.data for chunk in sent])
    if conversation is None:
        return None
    record = HandshakeRecorder(target, "udp", keys)
    t0 = sent[0].t
    icmp = flow.icmp if flow.icmp is not None and _hard(flow.icmp) else None

    def end(t: float, failure: Failure | None) -> HandshakeObservation:
        return record.observation(flow.server, flow.server_port, t0, t, failure)

    for chunk in flow.datagrams:
        if chunk.t - t0 > timeout:
            break
        if icmp is not None and icmp.t < chunk.t:
            return end(icmp.t, icmp_failure(icmp))
        if chunk.from_client:
            record.sent(chunk.t, len(chunk.data))
            continue
        if _over(record, conversation, chunk):
            return end(chunk.t, record.failure)
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
    record = HandshakeRecorder(target, "tcp", keys)

    def end(t: float, failure: Failure | None) -> tuple[Observation, ...]:
        return tcp, record.observation(address, port, t0, t, failure)

    if connect.failure is not None:
        return end(connect.t, connect.failure)
    if conversation_class(target).tls:
        tls = handshake_outcome(conn, timeout, capture_end)
        if tls.failure is not None:
            return end(tls.t, tls.failure)
        if not conn.chunks:
            return ()  # the exchange went encrypted and no key opened it
    conversation = overheard(target, port, keys,
                             [b"".join(chunk.data for chunk in _sent(conn.chunks))])
    if conversation is None:
        return ()
    stops = [(reset.t, Failure.CONNECTION_RESET) for reset in conn.resets if reset.by == "server"]
    if conn.t_fin_server is not None:
        stops.append((conn.t_fin_server, Failure.EOF))
    stop = min(stops, default=None, key=lambda s: s[0])
    limit = connect.t + timeout
    for chunk in conn.chunks:
        if chunk.t > limit or (stop is not None and chunk.t > stop[0]):
            break
        if chunk.from_client:
            record.sent(chunk.t, len(chunk.data))
            continue
        if _over(record, conversation, chunk):
            return end(chunk.t, record.failure)
    if stop is not None and stop[0] <= limit:
        return end(stop[0], stop[1])
    return end(deadline(connect.t, timeout, capture_end), Failure.GENERIC_TIMEOUT)
