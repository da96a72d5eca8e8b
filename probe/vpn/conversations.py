"""Each VPN protocol's first exchange as a conversation: bytes in, what they mean out.

A conversation only knows its protocol (through the codecs in
:mod:`probe.wire`): what to send first, what each datagram or piece of
stream that arrives says, and how to tell its own first message in a
capture. The live driver (:mod:`probe.net.vpn`) owns the sockets, the
clock and the retries; the replay (:mod:`probe.replay.handshake`) feeds
it a capture. A reply *answers* when it proves the server read our
message (it echoes our session id, SPI, index or tunnel id); anything
that is not the protocol at all is *unexpected*. docs/vpn.md describes
each protocol.

Replay hears the captured replies through the same conversations, rebuilt
with the ids the capture shows (``overheard``): ``recognise`` reads the
client's first message for the session id (OpenVPN), initiator SPI
(IKEv2) or tunnel id (L2TP) that the live conversation drew at random,
and these are handed back to it as its "random" draws, so a reply answers
in replay exactly when it answered live. WireGuard is the exception (see
``WireGuard.overheard``).
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from probe.model import Target
from probe.wire import WireError, ikev2, l2tp, openvpn, pptp, sstp, wireguard

__all__ = [
    "L2TP",
    "PPTP",
    "SSTP",
    "Conversation",
    "Heard",
    "IKEv2",
    "OpenVPNOverTCP",
    "OpenVPNOverUDP",
    "Random",
    "WireGuard",
]

# Where a conversation draws its ids, keys and nonces: os.urandom live, a
# seeded generator in tests, the capture's ids in a replay.
Random = Callable[[int], bytes]

# The IKEv2 group offered first: curve25519 (RFC 8031), which strongSwan and
# most current responders accept; one that is not gets INVALID_KE_PAYLOAD,
# which still proves an IKE responder read us.
_IKE_GROUP = ikev2.DH_CURVE25519
# Seconds between two WireGuard timestamps we send: above TAI64N's
# precision as sent (2^24 ns), so a server never sees one repeat.
_STAMP_STEP = 0.02


@dataclass(frozen=True, slots=True)
class Heard:
    """One message that arrived, named, and what it means for the handshake."""

    name: str
    size: int
    answered: bool = False
    unexpected: bool = False
    # Stream protocols with a second step (SSTP): what to send now.
    reply: bytes = b""
    reply_name: str = ""


class Conversation:
    """Base: a first message, and a reader of what comes back."""

    protocol: ClassVar[str]
    transport: ClassVar[str]
    # What the check calls its first message, and every resend of it.
    opening_name: ClassVar[str]
    tls: ClassVar[bool] = False  # SSTP: the exchange runs inside TLS

    @classmethod
    def for_target(cls, target: Target, port: int, keys: Mapping[str, str],
                   random: Random) -> Conversation:
        """The conversation with ``target``'s server on ``port``, with the
        keys it names from ``keys``; WireError when a key does not parse."""
        raise NotImplementedError

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        """The ids a conversation drew for ``data``, by size, when it is
        this conversation's first message (over TCP: what the client sent
        first); WireError when it is not."""
        raise NotImplementedError

    @classmethod
    def overheard(cls, target: Target, port: int, keys: Mapping[str, str],
                  openings: Sequence[bytes]) -> Conversation:
        """The conversation that sent ``openings`` (a capture's client
        messages, the first one first), hearing replies as it did then;
        WireError when the first is not this conversation's opening."""
        return cls.for_target(target, port, keys, _drawn(cls.recognise(openings[0])))

    @classmethod
    def server_name(cls, target: Target) -> str | None:
        """The SNI of the TLS the exchange runs in (``tls`` only)."""
        return None

    def opening(self) -> bytes:
        raise NotImplementedError

    def resend(self) -> bytes:
        """What to send when the opening went unanswered (UDP): the same, by default."""
        return self.opening()

    def hear(self, data: bytes) -> list[Heard]:
        """What ``data`` (one datagram, or the next piece of a stream) says."""
        raise NotImplementedError

    def read(self, message: bytes) -> tuple[str, bool]:
        """One whole message's name, and whether it answers us; WireError
        when it is not the protocol at all."""
        raise NotImplementedError

    def _heard(self, message: bytes) -> Heard:
        try:
            name, answered = self.read(message)
        except WireError:
            return Heard("not " + self.protocol, len(message), unexpected=True)
        return Heard(name, len(message), answered=answered)


def _drawn(ids: Mapping[int, bytes]) -> Random:
    """A conversation's ``random`` that draws the captured ids (by size);
    what nothing reads back (nonces, key shares) comes out as zeros."""
    def draw(size: int) -> bytes:
        return ids.get(size, bytes(size))
    return draw


class _Datagrams(Conversation):
    """UDP: each datagram is one message."""

    transport = "udp"

    def hear(self, data: bytes) -> list[Heard]:
        return [self._heard(data)]


class _Stream(Conversation):
    """TCP: messages are framed in a byte stream; ``split`` cuts them out."""

    transport = "tcp"

    def __init__(self) -> None:
        self._buffer = b""

    def hear(self, data: bytes) -> list[Heard]:
        self._buffer += data
        try:
            messages, self._buffer = self.split(self._buffer)
        except WireError:
            size, self._buffer = len(self._buffer), b""
            return [Heard("not " + self.protocol, size, unexpected=True)]
        return [self._heard(m) for m in messages]

    def split(self, buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
        raise NotImplementedError


# What a server may send at the start of a session. OpenVPN has no magic
# number: any byte with a known opcode "parses", so data packets and
# client resets from the server's side are taken for what they are, not
# OpenVPN speaking to us.
_OPENVPN_SERVER_OPCODES = frozenset({
    openvpn.P_CONTROL_HARD_RESET_SERVER_V1, openvpn.P_CONTROL_HARD_RESET_SERVER_V2,
    openvpn.P_CONTROL_SOFT_RESET_V1, openvpn.P_CONTROL_V1, openvpn.P_ACK_V1,
})


class _OpenVPN(Conversation):
    """The hard reset and the server's reset that names our session."""

    protocol = "openvpn"
    opening_name = "P_CONTROL_HARD_RESET_CLIENT_V2"

    def __init__(self, wrap: openvpn.ControlChannelKey | None, random: Random) -> None:
        self._wrap = wrap
        self._session = random(openvpn.SESSION_ID_SIZE)
        # Unique enough for a one-packet session; OpenVPN itself puts its clock there.
        self._packet = openvpn.client_hard_reset(
            self._session, timestamp=int(time.time()) & 0xFFFFFFFF, wrap=wrap
        )

    @classmethod
    def for_target(cls, target: Target, port: int, keys: Mapping[str, str],
                   random: Random) -> Conversation:
        options, wrap = target.vpn, None
        text = keys.get(options.key or "") if options is not None else None
        if options is not None and options.control is not None and text:
            wrap = openvpn.ControlChannelKey(options.control, openvpn.parse_static_key(text),
                                             options.key_direction, options.digest)
        return cls(wrap, random)

    @staticmethod
    def _reset_ids(packet: bytes) -> dict[int, bytes]:
        header = openvpn.parse_header(packet)
        if header.opcode != openvpn.P_CONTROL_HARD_RESET_CLIENT_V2:
            raise WireError(f"OpenVPN: {header.name}, not the client's hard reset")
        return {openvpn.SESSION_ID_SIZE: header.session_id}

    def name_reply(self, data: bytes) -> tuple[str, bool]:
        if openvpn.parse_header(data).opcode not in _OPENVPN_SERVER_OPCODES:
            raise WireError("not what an OpenVPN server sends first")
        packet = openvpn.parse_packet(data, self._wrap)
        return packet.name, openvpn.answers_reset(packet, self._session)


class OpenVPNOverUDP(_Datagrams, _OpenVPN):
    def __init__(self, wrap: openvpn.ControlChannelKey | None, random: Random) -> None:
        _OpenVPN.__init__(self, wrap, random)

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        return cls._reset_ids(data)

    def opening(self) -> bytes:
        return self._packet

    def read(self, data: bytes) -> tuple[str, bool]:
        return self.name_reply(data)


class OpenVPNOverTCP(_Stream, _OpenVPN):
    def __init__(self, wrap: openvpn.ControlChannelKey | None, random: Random) -> None:
        _Stream.__init__(self)
        _OpenVPN.__init__(self, wrap, random)

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        packets, _ = openvpn.tcp_unframe(data)
        return cls._reset_ids(packets[0] if packets else b"")

    def opening(self) -> bytes:
        return openvpn.tcp_frame(self._packet)

    def split(self, buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
        return openvpn.tcp_unframe(buffer)

    def read(self, data: bytes) -> tuple[str, bool]:
        return self.name_reply(data)


class WireGuard(_Datagrams):
    """Handshake initiation to the server's key, from the client's key (section 5.4.2).

    A WireGuard responder answers only peers it knows, and only an
    initiation whose timestamp is later than the last it accepted from
    that peer (section 5.1, replay protection). So each resend is a new
    initiation, as WireGuard's own retries are, and timestamps never
    repeat within the process (two addresses of one server are the same
    peer to it, and TAI64N as sent is only precise to about 17 ms).
    """

    protocol = "wireguard"
    opening_name = "handshake initiation"
    _last_stamp = 0.0  # the latest timestamp sent by any check in this process

    def __init__(self, server_public: bytes, client_private: bytes, random: Random) -> None:
        self._server = server_public
        self._client = client_private
        self._random = random
        self._states: list[wireguard.InitiatorState] = []

    @classmethod
    def for_target(cls, target: Target, port: int, keys: Mapping[str, str],
                   random: Random) -> Conversation:
        # Without the keys: a stranger's initiation, which a server drops.
        options = target.vpn
        server = _key_or_random(keys, options.key if options else None, random)
        client = _key_or_random(keys, options.client_key if options else None, random)
        return cls(server, client, random)

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        wireguard.parse_initiation(data)
        return {}

    @classmethod
    def overheard(cls, target: Target, port: int, keys: Mapping[str, str],
                  openings: Sequence[bytes]) -> Conversation:
        """Proving a response genuine takes the initiator's ephemeral
        private key, which never leaves the probe: replay counts a response
        (or cookie reply) to one of our sender indices as the answer, which
        an on-path injector that saw our initiation could fake."""
        first = wireguard.parse_initiation(openings[0])
        return _WireGuardByIndex(frozenset({first, *_sender_indices(openings[1:])}))

    def opening(self) -> bytes:
        stamp = max(time.time(), WireGuard._last_stamp + _STAMP_STEP)
        WireGuard._last_stamp = stamp
        message, state = wireguard.initiation(
            self._server,
            static_private=self._client,
            ephemeral_private=self._random(32),
            sender_index=struct.unpack("<I", self._random(4))[0],
            timestamp=wireguard.tai64n(stamp),
        )
        self._states.append(state)
        return message

    def read(self, data: bytes) -> tuple[str, bool]:
        # The answer may be to any of our initiations (a slow reply to an earlier one).
        for state in reversed(self._states):
            reply = wireguard.parse_reply(data, state)
            if isinstance(reply, wireguard.CookieReply):
                if reply.receiver_index == state.sender_index:
                    # Under load the server asks for mac2 first; it did read us.
                    return "cookie reply", True
            elif reply.authenticated:
                return "handshake response", True
        return ("cookie reply" if data[:1] == b"\x03" else "handshake response"), False


class _WireGuardByIndex(WireGuard):
    """WireGuard's conversation as a replay hears it: a response or cookie
    reply to one of ``indices`` (our sender indices) answers."""

    def __init__(self, indices: frozenset[int]) -> None:
        # Replay never initiates: the keys and the randomness go unused.
        super().__init__(bytes(wireguard.KEY_SIZE), bytes(wireguard.KEY_SIZE), os.urandom)
        self._indices = indices

    def read(self, data: bytes) -> tuple[str, bool]:
        reply = wireguard.parse_reply(data, None)  # WireError: not WireGuard
        name, _ = super().read(data)  # the live check's name for it
        return name, reply.receiver_index in self._indices


def _sender_indices(datagrams: Sequence[bytes]) -> set[int]:
    """The sender indices of the initiations among ``datagrams``."""
    indices = set()
    for data in datagrams:
        try:
            indices.add(wireguard.parse_initiation(data))
        except WireError:
            continue  # another datagram the client sent: no initiation of ours
    return indices


class IKEv2(_Datagrams):
    """IKE_SA_INIT; any response to our SPI (accepting, or a notify such as
    INVALID_KE_PAYLOAD or NO_PROPOSAL_CHOSEN) proves a responder read it."""

    protocol = "ikev2"
    opening_name = "IKE_SA_INIT request"

    def __init__(self, nat_t: bool, random: Random) -> None:
        self._nat_t = nat_t
        self._spi = random(8)
        self._message = ikev2.ike_sa_init(
            self._spi, nonce=random(32), dh_group=_IKE_GROUP,
            key_exchange=ikev2.key_exchange_for(_IKE_GROUP, random(32)), nat_t=nat_t,
        )

    @classmethod
    def for_target(cls, target: Target, port: int, keys: Mapping[str, str],
                   random: Random) -> Conversation:
        # RFC 3948 section 2.2: port 4500 carries IKE behind the non-ESP marker.
        return cls(port == ikev2.NAT_T_PORT, random)

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        # RFC 3948 section 2.2: a zero marker, where an IKE header has its
        # initiator SPI, which is never zero (RFC 7296 section 3.1).
        ike = ikev2.parse_message(data, nat_t=data[:4] == ikev2.NON_ESP_MARKER)
        if ike.is_response or ike.exchange != ikev2.EXCHANGE_IKE_SA_INIT:
            raise WireError(f"IKE: {ike.exchange_name}, not an IKE_SA_INIT request")
        return {len(ike.initiator_spi): ike.initiator_spi}

    def opening(self) -> bytes:
        return self._message

    def read(self, data: bytes) -> tuple[str, bool]:
        message = ikev2.parse_message(data, nat_t=self._nat_t)
        name = f"{message.exchange_name} {'response' if message.is_response else 'request'}"
        if message.notifies:
            name += " N(" + ", ".join(n for _, n in message.notifies) + ")"
        return name, ikev2.answers(message, self._spi)


class L2TP(_Datagrams):
    """SCCRQ; an SCCRP (or StopCCN) to our tunnel id answers (RFC 2661 section 6)."""

    protocol = "l2tp"
    opening_name = "SCCRQ"

    def __init__(self, random: Random) -> None:
        self._tunnel = struct.unpack("!H", random(2))[0] or 1
        self._message = l2tp.sccrq(self._tunnel, host_name="probe")

    @classmethod
    def for_target(cls, target: Target, port: int, keys: Mapping[str, str],
                   random: Random) -> Conversation:
        return cls(random)

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        control = l2tp.parse_message(data)
        if control.message_type != l2tp.SCCRQ or control.assigned_tunnel_id is None:
            raise WireError(f"L2TP: {control.name}, not an SCCRQ")
        return {2: control.assigned_tunnel_id.to_bytes(2, "big")}

    def opening(self) -> bytes:
        return self._message

    def read(self, data: bytes) -> tuple[str, bool]:
        message = l2tp.parse_message(data)
        return message.name, l2tp.answers(message, self._tunnel)


class PPTP(_Stream):
    """Start-Control-Connection-Request; the Reply answers (RFC 2637 section 2.2)."""

    protocol = "pptp"
    opening_name = "Start-Control-Connection-Request"

    @classmethod
    def for_target(cls, target: Target, port: int, keys: Mapping[str, str],
                   random: Random) -> Conversation:
        return cls()

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        messages, _ = pptp.split_messages(data)
        if not messages or pptp.parse_control_message(messages[0]).message_type != (
            pptp.START_CONTROL_CONNECTION_REQUEST
        ):
            raise WireError("PPTP: not a Start-Control-Connection-Request")
        return {}

    def opening(self) -> bytes:
        return pptp.start_control_connection_request()

    def split(self, buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
        return pptp.split_messages(buffer)

    def read(self, data: bytes) -> tuple[str, bool]:
        message = pptp.parse_control_message(data)
        return message.name, pptp.is_start_reply(message)


class SSTP(_Stream):
    """Inside TLS (SNI: the host): SSTP_DUPLEX_POST, then (after HTTP 200)
    CALL_CONNECT_REQUEST; a CALL_CONNECT_ACK or NAK answers ([MS-SSTP]
    section 3.2.5)."""

    protocol = "sstp"
    opening_name = "SSTP_DUPLEX_POST"
    tls = True

    def __init__(self, host: str, random: Random) -> None:
        super().__init__()
        self._host = host
        self._correlation = str(uuid.UUID(bytes=random(16))).upper()
        self._streaming = False  # past the HTTP response

    @classmethod
    def for_target(cls, target: Target, port: int, keys: Mapping[str, str],
                   random: Random) -> Conversation:
        return cls(target.host, random)

    @classmethod
    def recognise(cls, data: bytes) -> dict[int, bytes]:
        if sstp.parse_duplex_post_request(data) is None:
            raise WireError("SSTP: the request head is incomplete")
        return {}

    @classmethod
    def server_name(cls, target: Target) -> str | None:
        return target.host

    def opening(self) -> bytes:
        return sstp.duplex_post_request(self._host, self._correlation)

    def hear(self, data: bytes) -> list[Heard]:
        if self._streaming:
            return super().hear(data)
        self._buffer += data
        try:
            head = sstp.parse_duplex_post_response(self._buffer)
        except WireError:
            return [Heard("not http", len(self._buffer), unexpected=True)]
        if head is None:
            return []
        status, used = head
        if status != 200:
            return [Heard(f"HTTP {status}", used, unexpected=True)]
        self._streaming = True
        rest, self._buffer = self._buffer[used:], b""
        heard = Heard("HTTP 200", used, reply=sstp.call_connect_request(),
                      reply_name="SSTP_MSG_CALL_CONNECT_REQUEST")
        return [heard, *(super().hear(rest) if rest else [])]

    def split(self, buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
        return sstp.split_packets(buffer)

    def read(self, data: bytes) -> tuple[str, bool]:
        packet = sstp.parse_packet(data)
        return packet.name, packet.message_type in (sstp.CALL_CONNECT_ACK, sstp.CALL_CONNECT_NAK)


def _key_or_random(keys: Mapping[str, str], name: str | None, random: Random) -> bytes:
    value = keys.get(name or "")
    return wireguard.parse_key(value) if value else random(wireguard.KEY_SIZE)
