"""probe.vpn: one registry entry per VPN protocol, and one recorder, that the
test-list loader, the live check, the replay and the lab all consult."""

from __future__ import annotations

import ast
import base64
import random
from pathlib import Path

import pytest

import probe.lists.overrides as loader
import probe.net.vpn as live
import probe.replay.handshake as replay
from probe.model import VPN_KINDS, Target, TargetKind, VPNOptions
from probe.vpn import conversations, recorder, registry
from probe.vpn.registry import PROTOCOLS, KeyRole
from probe.wire import WireError, wireguard

ROOT = Path(__file__).resolve().parents[2]
WG_KEY = base64.b64encode(wireguard.public_key(bytes(range(1, 33)))).decode()
STATIC_KEY = ("-----BEGIN OpenVPN Static key V1-----\n" + "ab" * 256
              + "\n-----END OpenVPN Static key V1-----\n")


def target(kind: TargetKind, transport: str, **vpn: object) -> Target:
    port = 4500 if kind is TargetKind.IKEV2 else 1000
    return Target(f"{kind}://vpn.test", kind, "vpn.test", port, transport=transport,
                  vpn=VPNOptions(**vpn))  # type: ignore[arg-type]


EVERY_SPEAKER = [(kind, transport) for kind, entry in PROTOCOLS.items()
                 for transport in entry.conversations]


def test_one_entry_per_vpn_kind() -> None:
    assert set(PROTOCOLS) == VPN_KINDS
    for kind, entry in PROTOCOLS.items():
        assert entry.kind is kind
        for transport, speaker in entry.conversations.items():
            assert (speaker.protocol, speaker.transport) == (str(kind), transport)
    with pytest.raises(ValueError, match="not a VPN protocol"):
        registry.protocol(TargetKind.TLS)


def test_live_and_replay_consult_the_registry_and_share_the_recorder() -> None:
    assert live.conversation_for is registry.conversation_for
    assert replay.recognises is registry.recognises
    assert replay.overheard is registry.overheard
    assert live.HandshakeRecorder is replay.HandshakeRecorder is recorder.HandshakeRecorder
    assert loader.key_roles is registry.key_roles


@pytest.mark.parametrize(("kind", "transport"), EVERY_SPEAKER)
def test_replay_recognises_what_the_live_check_sends_first(kind: TargetKind,
                                                           transport: str) -> None:
    t = target(kind, transport)
    conversation = registry.conversation_for(t, t.port or 0, {}, random.Random(7).randbytes)
    first = conversation.opening()
    assert type(conversation) is registry.conversation_class(t)
    assert registry.recognises(t, first)
    assert not registry.recognises(t, first[:3])
    rebuilt = registry.overheard(t, t.port or 0, {}, [first, conversation.resend()])
    assert type(rebuilt).opening_name == type(conversation).opening_name


def test_rebuilt_conversations_draw_the_ids_the_opening_carries() -> None:
    # Each conversation's recogniser reads back what its constructor drew
    # (the nonces and key shares that nothing reads back come out as zeros).
    for speaker in (conversations.OpenVPNOverTCP, conversations.L2TP, conversations.IKEv2):
        t = target(TargetKind(speaker.protocol), speaker.transport)
        sent = registry.conversation_for(t, t.port or 0, {}, random.Random(3).randbytes)
        ids = speaker.recognise(sent.opening())
        assert ids and all(any(value) for value in ids.values())
        rebuilt = registry.overheard(t, t.port or 0, {}, [sent.opening()])
        assert rebuilt is not None and speaker.recognise(rebuilt.opening()) == ids


def test_key_roles_and_answerable_come_from_the_entries() -> None:
    wg = target(TargetKind.WIREGUARD, "udp", key="server", client_key="client")
    assert registry.key_roles(wg) == (("server", KeyRole.WIREGUARD_SERVER),
                                      ("client", KeyRole.WIREGUARD_CLIENT))
    assert not registry.answerable(wg, {"server": WG_KEY})
    assert registry.answerable(wg, {"server": WG_KEY, "client": WG_KEY})
    tls_auth = target(TargetKind.OPENVPN, "udp", key="ta", control="tls-auth")
    assert registry.key_roles(tls_auth) == (("ta", KeyRole.TLS_AUTH),)
    assert registry.key_roles(target(TargetKind.OPENVPN, "tcp")) == ()
    assert registry.key_roles(target(TargetKind.IKEV2, "udp")) == ()
    assert KeyRole.TLS_AUTH.parse(STATIC_KEY)
    assert len(KeyRole.WIREGUARD_SERVER.parse(WG_KEY)) == wireguard.KEY_SIZE
    with pytest.raises(WireError):
        KeyRole.TLS_CRYPT.parse(WG_KEY)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names}


def test_the_vpn_package_is_pure_and_replay_does_not_reach_into_net() -> None:
    for module in (ROOT / "probe" / "vpn").glob("*.py"):
        assert all(m == "probe.model" or m.startswith(("probe.wire", "probe.vpn"))
                   for m in _imports(module) if m.startswith("probe.")), module
        assert not _imports(module) & {"asyncio", "socket", "ssl"}, module
    assert not any(m.startswith("probe.net") for m in _imports(ROOT / "probe/replay/handshake.py"))
    assert not any(m.startswith("probe.vpn") or m.startswith("probe.wire")
                   for m in _imports(ROOT / "probe/model.py"))
