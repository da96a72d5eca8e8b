"""probe.replay.handshake: VPN first exchanges rebuilt from packet-built captures.

The client's messages are the live conversations' own (probe.vpn.conversations
with a seeded random), the servers' replies are built with the codecs, and
each rebuilt observation must be what the live driver (probe.net.vpn)
records for that exchange: failure, attempts, reply, answerable, messages.
"""

from __future__ import annotations

import base64
import hmac
import random
import struct
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcap_builders import CLIENT, Capture, Conversation, Datagrams, list_yaml
from pcap_scenarios import _lookups

from probe.lists import load_testlist
from probe.model import (
    Failure,
    HandshakeMessage,
    HandshakeObservation,
    Observation,
    Target,
    TargetKind,
    TCPObservation,
    VPNOptions,
)
from probe.replay import replay_report
from probe.replay.handshake import fits, handshake_observations
from probe.replay.records import Chunk, TCPConnection, UDPFlow
from probe.replay.report import default_settings, extract
from probe.vpn.registry import conversation_for
from probe.wire import ikev2, l2tp, openvpn, pptp, wireguard

SETTINGS = default_settings()  # handshake timeout 8 s
SERVER = "198.51.100.40"
RESET = "P_CONTROL_HARD_RESET_CLIENT_V2"
STATIC_KEY = "-----BEGIN OpenVPN Static key V1-----\n" + "ab" * 256 + "\n-----END OpenVPN Static key V1-----\n"
WG_SERVER = wireguard.public_key(bytes(range(1, 33)))
WG_CLIENT = bytes(range(2, 34))


def target(kind: TargetKind, port: int, transport: str, **vpn: object) -> Target:
    return Target(id=f"{kind}://{SERVER}:{port}", kind=kind, host=SERVER, port=port,
                  transport=transport, vpn=VPNOptions(**vpn) if vpn else None)  # type: ignore[arg-type]


def opening(t: Target, keys: Mapping[str, str] = {}, seed: int = 1) -> tuple[bytes, object]:
    """The live conversation's first message, and the conversation."""
    conversation = conversation_for(t, t.port or 0, keys, random.Random(seed).randbytes)
    return conversation.opening(), conversation


def observe(cap: Capture, tmp_path: Path, t: Target,
            keys: Mapping[str, str] = {}) -> tuple[Observation, ...]:
    """The observations replay makes of the target's one flow in ``cap``."""
    records, summary = extract(cap.write(tmp_path / "c.pcap"), SETTINGS, None, ())
    flows = [r for r in records if isinstance(r, UDPFlow | TCPConnection) and fits(t, r)]
    assert len(flows) == 1, flows
    return handshake_observations(t, flows[0], keys, SETTINGS.handshake_timeout, summary.duration)


def only(observations: tuple[Observation, ...]) -> HandshakeObservation:
    (observation,) = observations
    assert isinstance(observation, HandshakeObservation)
    return observation


def shape(observation: HandshakeObservation) -> list[tuple[bool, str, int]]:
    return [(m.sent, m.name, m.size) for m in observation.messages]


def server_reset(ours: bytes, wrap: openvpn.ControlChannelKey | None = None) -> bytes:
    """P_CONTROL_HARD_RESET_SERVER_V2 acking session ``ours`` (ssl_pkt.h layout,
    tls-crypt wrapped as tls_crypt.c does when ``wrap`` is given)."""
    header = bytes([openvpn.P_CONTROL_HARD_RESET_SERVER_V2 << 3]) + b"\x5a" * 8
    control = b"\x01" + struct.pack("!I", 0) + ours + struct.pack("!I", 0)
    if wrap is None:
        return header + control
    cipher_key, hmac_key = wrap.material(sent_by_client=False)
    replay = struct.pack("!II", 1, 0)
    tag = hmac.digest(hmac_key, header + replay + control, "sha256")
    crypt = Cipher(algorithms.AES(cipher_key), modes.CTR(tag[:16])).encryptor()
    return header + replay + tag + crypt.update(control) + crypt.finalize()


# --------------------------------------------------------------------------
# UDP


def sent(t: Target, *times: float) -> tuple[Capture, Datagrams, bytes]:
    """A capture of the client sending the live opening at ``times``."""
    message, _ = opening(t)
    cap = Capture()
    flow = Datagrams(cap, CLIENT, SERVER, t.port or 0)
    for at in times:
        flow.send(at, message)
    return cap, flow, message


def test_every_send_is_an_attempt_and_only_our_session_answers(tmp_path: Path) -> None:
    t = target(TargetKind.OPENVPN, 1194, "udp")
    message, _ = opening(t)
    ours = openvpn.parse_header(message).session_id
    cap = Capture()
    flow = Datagrams(cap, CLIENT, SERVER, 1194)
    flow.send(0.0, message)
    flow.send(1.0, message)
    flow.receive(1.01, server_reset(b"\x07" * 8))  # another session's: waited past
    flow.receive(1.02, server_reset(ours))
    observation = only(observe(cap, tmp_path, t))
    assert (observation.failure, observation.attempts, observation.reply) == (
        None, 2, "P_CONTROL_HARD_RESET_SERVER_V2")
    assert observation.transport == "udp" and observation.answerable
    assert (observation.t0, observation.t) == (0.0, 1.02)
    assert shape(observation) == [(True, RESET, 14), (True, RESET, 14),
                                  (False, "P_CONTROL_HARD_RESET_SERVER_V2", 26),
                                  (False, "P_CONTROL_HARD_RESET_SERVER_V2", 26)]


def test_a_tls_crypt_reply_is_read_with_the_key_only(tmp_path: Path) -> None:
    t = target(TargetKind.OPENVPN, 1196, "udp", key="tc", control="tls-crypt")
    keys = {"tc": STATIC_KEY}
    message, _ = opening(t, keys)
    ours = openvpn.parse_header(message).session_id
    wrap = openvpn.ControlChannelKey("tls-crypt", openvpn.parse_static_key(STATIC_KEY))
    cap = Capture()
    flow = Datagrams(cap, CLIENT, SERVER, 1196)
    flow.send(0.0, message)
    flow.receive(0.01, server_reset(ours, wrap))
    with_key = only(observe(cap, tmp_path, t, keys))
    assert with_key.failure is None and with_key.answerable
    # Without it, the reply's echo of our session is unreadable, as it
    # would have been live: an answer to nobody, then a server that could
    # not be expected to answer.
    without = only(observe(cap, tmp_path, t))
    assert without.reply is None and not without.answerable


def test_silence_is_a_timeout_after_every_resend(tmp_path: Path) -> None:
    t = target(TargetKind.L2TP, 1701, "udp")
    cap, _, message = sent(t, 0.0, 1.0, 3.0, 7.0)
    Datagrams(cap, CLIENT, "198.51.100.99", 9).send(12.0, b"later")  # the capture goes on
    observation = only(observe(cap, tmp_path, t))
    assert (observation.failure, observation.attempts, observation.t) == (
        Failure.GENERIC_TIMEOUT, 4, 8.0)
    assert shape(observation) == [(True, "SCCRQ", len(message))] * 4


def test_a_capture_that_ends_first_ends_the_wait(tmp_path: Path) -> None:
    t = target(TargetKind.L2TP, 1701, "udp")
    cap, _, _ = sent(t, 0.0, 1.0)
    Datagrams(cap, CLIENT, "198.51.100.99", 9).send(2.5, b"last packet")
    observation = only(observe(cap, tmp_path, t))
    assert (observation.failure, observation.attempts, observation.t) == (
        Failure.GENERIC_TIMEOUT, 2, 2.5)


def test_port_unreachable_refuses_and_host_unreachable_is_waited_past(tmp_path: Path) -> None:
    t = target(TargetKind.L2TP, 1701, "udp")
    cap, flow, _ = sent(t, 0.0)
    flow.unreachable(0.01)
    refused = only(observe(cap, tmp_path, t))
    assert (refused.failure, refused.attempts, refused.t) == (Failure.CONNECTION_REFUSED, 1, 0.01)
    # A connected UDP socket does not report host unreachable (a soft error).
    cap, flow, message = sent(t, 0.0)
    flow.unreachable(0.01, code=1)
    flow.send(1.0, message)
    flow.receive(1.1, b"\xff\xff garbage")
    waited = only(observe(cap, tmp_path, t))
    assert (waited.failure, waited.attempts) == (Failure.UNEXPECTED_REPLY, 2)
    assert shape(waited)[-1] == (False, "not l2tp", 10)


def test_l2tp_is_answered_to_our_tunnel_id(tmp_path: Path) -> None:
    t = target(TargetKind.L2TP, 1701, "udp")
    message, _ = opening(t, seed=7)
    ours = l2tp.parse_message(message).assigned_tunnel_id
    assert ours is not None
    cap = Capture()
    flow = Datagrams(cap, CLIENT, SERVER, 1701)
    flow.send(0.0, message)
    flow.receive(0.02, l2tp.control_message(tunnel_id=ours, avps=[l2tp.message_type_avp(l2tp.SCCRP)]))
    observation = only(observe(cap, tmp_path, t))
    assert (observation.failure, observation.reply) == (None, "SCCRP")


def test_ikev2_behind_the_nat_t_marker_is_answered_to_our_spi(tmp_path: Path) -> None:
    t = target(TargetKind.IKEV2, 4500, "udp")
    message, _ = opening(t)
    assert message[:4] == ikev2.NON_ESP_MARKER
    # The responder's answer: our SPI, its own, the Response flag (RFC 7296 3.1).
    response = bytearray(message[4:])
    response[8:16] = b"\x42" * 8
    response[19] = ikev2.FLAG_RESPONSE
    cap = Capture()
    flow = Datagrams(cap, CLIENT, SERVER, 4500)
    flow.send(0.0, message)
    flow.receive(0.02, ikev2.NON_ESP_MARKER + bytes(response))
    observation = only(observe(cap, tmp_path, t))
    assert observation.failure is None
    assert shape(observation)[0] == (True, "IKE_SA_INIT request", len(message))
    assert observation.reply is not None and observation.reply.startswith("IKE_SA_INIT response")


def test_wireguard_counts_a_response_to_any_of_our_indices(tmp_path: Path) -> None:
    t = target(TargetKind.WIREGUARD, 51820, "udp", key="wg", client_key="client")
    keys = {"wg": base64.b64encode(WG_SERVER).decode(),
            "client": base64.b64encode(WG_CLIENT).decode()}
    _, live = opening(t, keys)
    first, second = live.opening(), live.resend()  # type: ignore[attr-defined]
    index = wireguard.parse_initiation(first)

    def response(receiver: int) -> bytes:
        return struct.pack("<III", wireguard.HANDSHAKE_RESPONSE, 99, receiver) + bytes(80)

    cap = Capture()
    flow = Datagrams(cap, CLIENT, SERVER, 51820)
    flow.send(0.0, first)
    flow.send(1.0, second)
    flow.receive(1.01, response(index ^ 1))  # nobody's
    flow.receive(1.02, response(index))  # the first initiation's, late
    observation = only(observe(cap, tmp_path, t, keys))
    assert (observation.failure, observation.attempts, observation.reply) == (
        None, 2, "handshake response")
    assert shape(observation) == [(True, "handshake initiation", 148)] * 2 + [
        (False, "handshake response", 92)] * 2
    assert live.opening_name == "handshake initiation"  # type: ignore[attr-defined]
    # Without the client's key the server could not be expected to answer.
    assert not only(observe(cap, tmp_path, t, {"wg": keys["wg"]})).answerable


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from([TargetKind.OPENVPN, TargetKind.WIREGUARD, TargetKind.IKEV2,
                             TargetKind.L2TP]),
       replies=st.lists(st.binary(max_size=200), max_size=4), first=st.binary(max_size=200))
def test_hostile_datagrams_never_raise(kind: TargetKind, replies: list[bytes], first: bytes) -> None:
    t = target(kind, 4500 if kind is TargetKind.IKEV2 else 1194, "udp")
    message, _ = opening(t, {})
    for client in (message, first):
        chunks = (Chunk(0.0, True, client),
                  *(Chunk(0.1 * (i + 1), False, reply) for i, reply in enumerate(replies)))
        flow = UDPFlow(CLIENT, 40000, SERVER, t.port or 0, 0.0, 1.0, 1, len(replies),
                       len(client), sum(map(len, replies)), None, chunks)
        if fits(t, flow):
            (observed,) = handshake_observations(t, flow, {}, SETTINGS.handshake_timeout, 10.0)
            assert isinstance(observed, HandshakeObservation) and observed.attempts == 1
        else:
            assert client is first  # the live opening always fits


# --------------------------------------------------------------------------
# TCP


def opened(t: Target) -> tuple[Capture, Conversation]:
    """A capture of the connect (at 0, SYN-ACK at 0.001) and the client's first message (at 0.01)."""
    cap = Capture()
    conn = Conversation(cap, CLIENT, SERVER, t.port or 0)
    conn.handshake(0.0)
    conn.send(0.01, opening(t)[0])
    return cap, conn


def test_openvpn_over_tcp_reset_after_our_message(tmp_path: Path) -> None:
    t = target(TargetKind.OPENVPN, 1194, "tcp")
    cap, conn = opened(t)
    conn.server_reset(0.02)
    tcp, handshake = observe(cap, tmp_path, t)
    assert tcp == TCPObservation(SERVER, 1194, 0.0, 0.001, None)
    assert isinstance(handshake, HandshakeObservation)
    assert (handshake.failure, handshake.attempts, handshake.t) == (Failure.CONNECTION_RESET, 1, 0.02)
    assert handshake.messages == (HandshakeMessage(0.01, True, RESET, 16),)


def test_pptp_reply_answers_and_a_fin_alone_is_eof(tmp_path: Path) -> None:
    t = target(TargetKind.PPTP, 1723, "tcp")
    cap, conn = opened(t)
    reply = pptp.start_control_connection_reply()
    conn.receive(0.02, reply[:100])  # a message split across segments
    conn.receive(0.03, reply[100:])
    handshake = only(observe(cap, tmp_path, t)[1:])
    assert (handshake.failure, handshake.reply, handshake.t) == (
        None, "Start-Control-Connection-Reply", 0.03)
    assert shape(handshake) == [(True, "Start-Control-Connection-Request", 156),
                                (False, "Start-Control-Connection-Reply", 156)]
    cap, conn = opened(t)
    conn.cap.add(0.5, conn._s("FA"))
    assert only(observe(cap, tmp_path, t)[1:]).failure is Failure.EOF


def test_other_bytes_in_the_stream_are_an_unexpected_reply(tmp_path: Path) -> None:
    t = target(TargetKind.PPTP, 1723, "tcp")
    cap, conn = opened(t)
    conn.receive(0.02, b"HTTP/1.1 403 Forbidden\r\n\r\n")
    handshake = only(observe(cap, tmp_path, t)[1:])
    assert handshake.failure is Failure.UNEXPECTED_REPLY
    assert shape(handshake)[-1] == (False, "not pptp", 26)


def test_a_connect_that_times_out_is_recorded_with_its_handshake(tmp_path: Path) -> None:
    t = target(TargetKind.PPTP, 1723, "tcp")
    cap = Capture()
    conn = Conversation(cap, CLIENT, SERVER, 1723)
    for retry in (0.0, 1.0, 3.0, 7.0):
        conn.syn(retry)
    Datagrams(cap, CLIENT, "198.51.100.99", 9).send(20.0, b"later")
    tcp, handshake = observe(cap, tmp_path, t)
    assert tcp == TCPObservation(SERVER, 1723, 0.0, 8.0, Failure.GENERIC_TIMEOUT)
    assert handshake == HandshakeObservation(
        "pptp", "tcp", SERVER, 1723, 0.0, 8.0, Failure.GENERIC_TIMEOUT, attempts=1)


# --------------------------------------------------------------------------
# Through the whole replay: lookups, matching, verdicts


VPN_LIST = list_yaml("vpn-replay", """\
keys:
  tc: {source: "a tls-crypt key, given at run time"}
controls:
  - {kind: dns, host: ok.example, expect: {prefixes: lab}}
  - {kind: tcp, host: ok.example, port: 443, expect: {prefixes: lab}}
features:
  - id: openvpn
    name: OpenVPN
    targets:
      - {kind: openvpn, host: vpn.example, port: 1196, control: tls-crypt, key: tc, expect: {prefixes: lab}}
  - id: pptp
    name: PPTP
    targets: [{kind: pptp, host: vpn.example, port: 1723, expect: {prefixes: lab}}]
""")


def test_a_replayed_run_reads_its_vpn_verdicts(tmp_path: Path) -> None:
    (tmp_path / "vpn.yaml").write_text(VPN_LIST)
    testlist = load_testlist(tmp_path / "vpn.yaml")
    keys = {"tc": STATIC_KEY}
    ovpn, pptp_target = (f.targets[0] for f in testlist.features)
    message, _ = opening(ovpn, keys)
    wrap = openvpn.ControlChannelKey("tls-crypt", openvpn.parse_static_key(STATIC_KEY))
    cap = Capture()
    t = _lookups(cap, 0.0, "ok.example", "198.51.100.10")
    control = Conversation(cap, CLIENT, "198.51.100.10", 443)
    control.handshake(t)
    control.close(t + 0.01)
    t = _lookups(cap, 2.0, "vpn.example", SERVER)
    flow = Datagrams(cap, CLIENT, SERVER, 1196)
    flow.send(t, message)
    flow.receive(t + 0.01, server_reset(openvpn.parse_header(message).session_id, wrap))
    t = _lookups(cap, 4.0, "vpn.example", SERVER)
    conn = Conversation(cap, CLIENT, SERVER, 1723)
    conn.handshake(t)
    conn.send(t + 0.01, opening(pptp_target)[0])
    conn.server_reset(t + 0.02)
    pcap = cap.write(tmp_path / "vpn.pcap")
    report = replay_report(pcap, testlist, vpn_keys=keys).report
    features = {f["id"]: (f["verdict"], f["method"]) for f in report["features"]}
    assert features == {"openvpn": ("reachable", "ok"), "pptp": ("blocked", "handshake-reset")}
    assert report["config"]["vpn_keys_given"] == ["tc"]  # the name, never the value
    assert STATIC_KEY.split("\n")[1] not in str(report)
    # Without the key the server's reply cannot be told from another's.
    again = replay_report(pcap, testlist).report
    assert {f["id"]: f["method"] for f in again["features"]}["openvpn"] != "ok"
