"""The VPN protocols the probe speaks: one entry each, the single source for
the test-list loader (which keys a target names), the live check and the
replay (which conversation speaks to the server, how its first message is
told in a capture, whether silence means anything) and the lab (which key
to hand a target).

The kinds themselves are :data:`probe.model.VPN_KINDS` (the model stays
free of codecs); a test holds the two to the same set.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from probe.model import Target, TargetKind, VPNOptions
from probe.vpn.conversations import (
    L2TP,
    PPTP,
    SSTP,
    Conversation,
    IKEv2,
    OpenVPNOverTCP,
    OpenVPNOverUDP,
    Random,
    WireGuard,
)
from probe.wire import WireError, openvpn, wireguard
from probe.wire.l2tp import L2TP_PORT
from probe.wire.pptp import PPTP_PORT

__all__ = [
    "PROTOCOLS",
    "KeyRole",
    "KeyUse",
    "VPNProtocol",
    "answerable",
    "conversation_class",
    "conversation_for",
    "key_roles",
    "overheard",
    "protocol",
    "recognises",
]


class KeyRole(enum.StrEnum):
    """What a VPN key is for; its value says so in an error message."""

    WIREGUARD_SERVER = "a WireGuard public key"
    WIREGUARD_CLIENT = "a WireGuard private key"
    TLS_AUTH = "an OpenVPN static key"
    TLS_CRYPT = "an OpenVPN tls-crypt key"

    def parse(self, text: str) -> bytes:
        """The key ``text`` holds; WireError when it is not one."""
        return _KEY_PARSERS[self](text)


_KEY_PARSERS: Mapping[KeyRole, Callable[[str], bytes]] = {
    KeyRole.WIREGUARD_SERVER: wireguard.parse_key,
    KeyRole.WIREGUARD_CLIENT: wireguard.parse_key,
    KeyRole.TLS_AUTH: openvpn.parse_static_key,
    KeyRole.TLS_CRYPT: openvpn.parse_static_key,
}

# A key a target's server demands, by the name the target gives it (None: it names none).
KeyUse = tuple[str | None, KeyRole]


def _no_keys(options: VPNOptions) -> tuple[KeyUse, ...]:
    return ()


def _openvpn_keys(options: VPNOptions) -> tuple[KeyUse, ...]:
    # A server wrapping its control channel drops a reset it cannot verify.
    if options.control == "tls-auth":
        return ((options.key, KeyRole.TLS_AUTH),)
    if options.control == "tls-crypt":
        return ((options.key, KeyRole.TLS_CRYPT),)
    return ()


def _wireguard_keys(options: VPNOptions) -> tuple[KeyUse, ...]:
    # A responder answers only an initiation sealed to its key by a peer it knows.
    return ((options.key, KeyRole.WIREGUARD_SERVER),
            (options.client_key, KeyRole.WIREGUARD_CLIENT))


@dataclass(frozen=True, slots=True)
class VPNProtocol:
    """Everything the probe knows of one VPN protocol."""

    kind: TargetKind
    # The port a target that names none is measured on (IANA's assignment,
    # or what the protocol's servers use in practice: WireGuard's 51820).
    port: int
    # Who speaks it (through its codec in probe.wire), by transport; the
    # first speaks to a target that names no transport.
    conversations: Mapping[str, type[Conversation]]
    # The keys its server demands before it answers.
    keys: Callable[[VPNOptions], tuple[KeyUse, ...]] = _no_keys

    def conversation_class(self, transport: str | None) -> type[Conversation]:
        default = next(iter(self.conversations.values()))
        return self.conversations.get(transport or "", default)


PROTOCOLS: Mapping[TargetKind, VPNProtocol] = MappingProxyType({
    entry.kind: entry for entry in (
        VPNProtocol(TargetKind.OPENVPN, 1194, {"udp": OpenVPNOverUDP, "tcp": OpenVPNOverTCP},
                    _openvpn_keys),
        VPNProtocol(TargetKind.WIREGUARD, 51820, {"udp": WireGuard}, _wireguard_keys),
        VPNProtocol(TargetKind.IKEV2, 500, {"udp": IKEv2}),
        VPNProtocol(TargetKind.PPTP, PPTP_PORT, {"tcp": PPTP}),
        VPNProtocol(TargetKind.L2TP, L2TP_PORT, {"udp": L2TP}),
        VPNProtocol(TargetKind.SSTP, 443, {"tcp": SSTP}),
    )
})


def protocol(kind: TargetKind) -> VPNProtocol:
    """The entry of ``kind``; ValueError when it is not a VPN protocol."""
    entry = PROTOCOLS.get(kind)
    if entry is None:
        raise ValueError(f"{kind} is not a VPN protocol")
    return entry


def conversation_class(target: Target) -> type[Conversation]:
    """Who speaks to ``target``'s server (over its transport)."""
    return protocol(target.kind).conversation_class(target.transport)


def key_roles(target: Target) -> tuple[KeyUse, ...]:
    """The keys a VPN target's server demands before it answers, by the
    name the target gives them (None: it names none)."""
    entry = PROTOCOLS.get(target.kind)
    if target.vpn is None or entry is None:
        return ()
    return entry.keys(target.vpn)


def answerable(target: Target, keys: Mapping[str, str]) -> bool:
    """Whether ``keys`` hold every key the target's server demands before
    it answers (tls-auth/tls-crypt, a WireGuard peer's keys): without one,
    the server drops our message by design, so its silence says nothing."""
    return all(keys.get(name or "") for name, _ in key_roles(target))


def conversation_for(
    target: Target, port: int, keys: Mapping[str, str], random: Random = os.urandom,
) -> Conversation:
    """The conversation for ``target``.

    A key the target names but nobody gave does not stop the check: the
    message goes out without it (a censor may still reset or answer it),
    and the observation says the server could not be expected to answer
    (``answerable``).
    """
    return conversation_class(target).for_target(target, port, keys, random)


def recognises(target: Target, data: bytes) -> bool:
    """Whether ``data`` (a datagram, or what a client sent first over TCP)
    is the first message of ``target``'s conversation."""
    try:
        conversation_class(target).recognise(data)
    except WireError:
        return False
    return True


def overheard(
    target: Target, port: int, keys: Mapping[str, str], openings: Sequence[bytes],
) -> Conversation | None:
    """The conversation that sent ``openings`` (a capture's client
    messages), hearing replies as it did live; None when they are not
    its messages (the first is not its opening, or no client we run
    would make it, such as an all-zero OpenVPN session id)."""
    if not openings:
        return None
    try:
        return conversation_class(target).overheard(target, port, keys, openings)
    except WireError:
        return None
