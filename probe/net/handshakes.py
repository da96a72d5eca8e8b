"""Each VPN protocol's first exchange as a conversation: bytes in, what they mean out.

The driver (:mod:`probe.net.vpn`) owns the sockets, the clock and the
retries; a conversation only knows the protocol (through the codecs in
:mod:`probe.wire`): what to send first, and what each datagram or piece
of stream that arrives says. A reply *answers* when it proves the server
read our message (it echoes our session id, SPI, index or tunnel id);
anything that is not the protocol at all is *unexpected*. docs/vpn.md
describes each protocol.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from probe.model import Target, TargetKind, key_roles
from probe.wire import WireError, ikev2, l2tp, openvpn, pptp, sstp, wireguard

__all__ = ["Conversation", "Heard", "answerable", "conversation_for"]

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

    protocol: str
    transport: str
    tls: bool = False  # SSTP: the exchange runs inside TLS
    server_name: str | None = None  # the SNI when over TLS
    # False when we lack a key the server demands (tls-auth, a WireGuard
    # peer key): it drops our message by design, so its silence says nothing.
    answerable: bool = True

    def opening(self) -> tuple[str, bytes]:
        raise NotImplementedError

    def resend(self) -> tuple[str, bytes]:
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


class _OpenVPN:
    """The hard reset and the server's reset that names our session."""

    protocol = "openvpn"

    def __init__(self, wrap: openvpn.ControlChannelKey | None, random: Callable[[int], bytes]) -> None:
        self._wrap = wrap
        self._session = random(8)
        # Unique enough for a one-packet session; OpenVPN itself puts its clock there.
        self._packet = openvpn.client_hard_reset(
            self._session, timestamp=int(time.time()) & 0xFFFFFFFF, wrap=wrap
        )

    def name_reply(self, data: bytes) -> tuple[str, bool]:
        if openvpn.parse_header(data).opcode not in _OPENVPN_SERVER_OPCODES:
            raise WireError("not what an OpenVPN server sends first")
        packet = openvpn.parse_packet(data, self._wrap)
        return packet.name, openvpn.answers_reset(packet, self._session)


class OpenVPNOverUDP(_Datagrams, _OpenVPN):
    def __init__(self, wrap: openvpn.ControlChannelKey | None, random: Callable[[int], bytes]) -> None:
        _OpenVPN.__init__(self, wrap, random)

    def opening(self) -> tuple[str, bytes]:
        return "P_CONTROL_HARD_RESET_CLIENT_V2", self._packet

    def read(self, data: bytes) -> tuple[str, bool]:
        return self.name_reply(data)


class OpenVPNOverTCP(_Stream, _OpenVPN):
    def __init__(self, wrap: openvpn.ControlChannelKey | None, random: Callable[[int], bytes]) -> None:
        _Stream.__init__(self)
        _OpenVPN.__init__(self, wrap, random)

    def opening(self) -> tuple[str, bytes]:
        return "P_CONTROL_HARD_RESET_CLIENT_V2", openvpn.tcp_frame(self._packet)

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
    _last_stamp = 0.0  # the latest timestamp sent by any check in this process

    def __init__(self, server_public: bytes, client_private: bytes,
                 random: Callable[[int], bytes]) -> None:
        self._server = server_public
        self._client = client_private
        self._random = random
        self._states: list[wireguard.InitiatorState] = []

    def opening(self) -> tuple[str, bytes]:
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
        return "handshake initiation", message

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


class IKEv2(_Datagrams):
    """IKE_SA_INIT; any response to our SPI (accepting, or a notify such as
    INVALID_KE_PAYLOAD or NO_PROPOSAL_CHOSEN) proves a responder read it."""

    protocol = "ikev2"

    def __init__(self, nat_t: bool, random: Callable[[int], bytes]) -> None:
        self._nat_t = nat_t
        self._spi = random(8)
        self._message = ikev2.ike_sa_init(
            self._spi, nonce=random(32), dh_group=_IKE_GROUP,
            key_exchange=ikev2.key_exchange_for(_IKE_GROUP, random(32)), nat_t=nat_t,
        )

    def opening(self) -> tuple[str, bytes]:
        return "IKE_SA_INIT request", self._message

    def read(self, data: bytes) -> tuple[str, bool]:
        message = ikev2.parse_message(data, nat_t=self._nat_t)
        name = f"{message.exchange_name} {'response' if message.is_response else 'request'}"
        if message.notifies:
            name += " N(" + ", ".join(n for _, n in message.notifies) + ")"
        return name, ikev2.answers(message, self._spi)


class L2TP(_Datagrams):
    """SCCRQ; an SCCRP (or StopCCN) to our tunnel id answers (RFC 2661 section 6)."""

    protocol = "l2tp"

    def __init__(self, random: Callable[[int], bytes]) -> None:
        self._tunnel = struct.unpack("!H", random(2))[0] or 1
        self._message = l2tp.sccrq(self._tunnel, host_name="probe")

    def opening(self) -> tuple[str, bytes]:
        return "SCCRQ", self._message

    def read(self, data: bytes) -> tuple[str, bool]:
        message = l2tp.parse_message(data)
        return message.name, l2tp.answers(message, self._tunnel)


class PPTP(_Stream):
    """Start-Control-Connection-Request; the Reply answers (RFC 2637 section 2.2)."""

    protocol = "pptp"

    def opening(self) -> tuple[str, bytes]:
        return "Start-Control-Connection-Request", pptp.start_control_connection_request()

    def split(self, buffer: bytes) -> tuple[tuple[bytes, ...], bytes]:
        return pptp.split_messages(buffer)

    def read(self, data: bytes) -> tuple[str, bool]:
        message = pptp.parse_control_message(data)
        return message.name, pptp.is_start_reply(message)


class SSTP(_Stream):
    """Inside TLS: SSTP_DUPLEX_POST, then (after HTTP 200) CALL_CONNECT_REQUEST;
    a CALL_CONNECT_ACK or NAK answers ([MS-SSTP] section 3.2.5)."""

    protocol = "sstp"
    tls = True

    def __init__(self, host: str, random: Callable[[int], bytes]) -> None:
        super().__init__()
        self._host = self.server_name = host
        self._correlation = str(uuid.UUID(bytes=random(16))).upper()
        self._streaming = False  # past the HTTP response

    def opening(self) -> tuple[str, bytes]:
        return "SSTP_DUPLEX_POST", sstp.duplex_post_request(self._host, self._correlation)

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


def conversation_for(
    target: Target, port: int, keys: Mapping[str, str],
    random: Callable[[int], bytes] = os.urandom,
) -> Conversation:
    """The conversation for ``target``.

    A key the target names but nobody gave does not stop the check: the
    message goes out without it (a censor may still reset or answer it),
    and the conversation is marked not ``answerable``.
    """
    conversation = _build(target, port, keys, random)
    conversation.answerable = answerable(target, keys)
    return conversation


def answerable(target: Target, keys: Mapping[str, str]) -> bool:
    """Whether ``keys`` hold every key the target's server demands before
    it answers (tls-auth/tls-crypt, a WireGuard peer's keys); a replay
    judges a capture by the same rule."""
    return all(keys.get(name or "") for name, _ in key_roles(target))


def _build(
    target: Target, port: int, keys: Mapping[str, str], random: Callable[[int], bytes]
) -> Conversation:
    options = target.vpn
    if target.kind is TargetKind.OPENVPN:
        wrap = None
        text = keys.get(options.key or "") if options is not None else None
        if options is not None and options.control is not None and text:
            wrap = openvpn.ControlChannelKey(options.control, openvpn.parse_static_key(text),
                                             options.key_direction, options.digest)
        if target.transport == "tcp":
            return OpenVPNOverTCP(wrap, random)
        return OpenVPNOverUDP(wrap, random)
    if target.kind is TargetKind.WIREGUARD:
        # Without the keys: a stranger's initiation, which a server drops.
        server = _key_or_random(keys, options.key if options else None, random)
        client = _key_or_random(keys, options.client_key if options else None, random)
        return WireGuard(server, client, random)
    if target.kind is TargetKind.IKEV2:
        # RFC 3948 section 2.2: port 4500 carries IKE behind the non-ESP marker.
        return IKEv2(port == 4500, random)
    if target.kind is TargetKind.L2TP:
        return L2TP(random)
    if target.kind is TargetKind.PPTP:
        return PPTP()
    if target.kind is TargetKind.SSTP:
        return SSTP(target.host, random)
    raise ValueError(f"{target.kind} is not a VPN protocol")


def _key_or_random(keys: Mapping[str, str], name: str | None,
                   random: Callable[[int], bytes]) -> bytes:
    value = keys.get(name or "")
    return wireguard.parse_key(value) if value else random(wireguard.KEY_SIZE)
