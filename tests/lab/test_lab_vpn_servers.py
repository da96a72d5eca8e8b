"""The lab's VPN servers answer each protocol's first message, as a client
in the client namespace sees them (with the probe's own codecs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from probe.wire import openvpn
from probe_lab import addressing, topology
from probe_lab.certs import make_lab_certs
from probe_lab.servers import LabServers, start_servers
from probe_lab.servers.openvpn import write_static_key
from probe_lab.servers.ready import listening
from probe_lab.servers.vpn import redirect_ruleset
from probe_lab.topology import LabError, LabNet
from probe_lab.zone import Answer, Zone, ZoneEntry

V4, V6 = "203.0.113.210", "2001:db8:5::210"
SSTP_V4, SSTP_V6 = "203.0.113.220", "2001:db8:5::220"

# Runs in the client namespace: {check: what came back} as JSON on stdout.
# Every UDP socket is connected, so only the address written to can answer.
CLIENT = r"""
import json, os, socket, ssl, sys, time, uuid
from probe.wire import ikev2, l2tp, openvpn, pptp, sstp, wireguard
args = json.loads(sys.argv[1])
out = {}

def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET

def udp(address, port, payload):
    with socket.socket(family(address), socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect((address, port))
        s.send(payload)
        return s.recv(65535)

def stream(conn, split):
    buffer = b""
    while True:
        items, _ = split(buffer)
        if items:
            return items[0]
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk

def check(name, probe, *arguments):
    try:
        out[name] = probe(*arguments)
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"

def openvpn_reply(data, wrap, session):
    reply = openvpn.parse_packet(data, wrap)
    return reply.name if openvpn.answers_reset(reply, session) else f"unrelated {reply.name}"

def openvpn_udp(address, port, wrap):
    session = os.urandom(8)
    request = openvpn.client_hard_reset(session, wrap=wrap, timestamp=int(time.time()))
    return openvpn_reply(udp(address, port, request), wrap, session)

def openvpn_tcp(address):
    session = os.urandom(8)
    with socket.create_connection((address, 1194), timeout=3) as conn:
        conn.sendall(openvpn.tcp_frame(openvpn.client_hard_reset(session)))
        return openvpn_reply(stream(conn, openvpn.tcp_unframe), None, session)

def wireguard_handshake(address, port):
    # A server takes at most one initiation per peer every 20 ms, each
    # with a newer timestamp (wireguard-go's ConsumeMessageInitiation).
    time.sleep(0.05)
    message, state = wireguard.initiation(
        wireguard.parse_key(args["wireguard_public_key"]),
        static_private=wireguard.parse_key(args["wireguard_client_key"]),
        ephemeral_private=os.urandom(32), sender_index=int.from_bytes(os.urandom(4), "little"),
        timestamp=wireguard.tai64n(time.time()))
    reply = wireguard.parse_reply(udp(address, port, message), state)
    return type(reply).__name__ + (" authenticated" if reply.authenticated else "")

def ike(address, port, group):
    spi, nat_t = os.urandom(8), port == 4500
    request = ikev2.ike_sa_init(spi, nonce=os.urandom(32), dh_group=group, nat_t=nat_t,
                                key_exchange=ikev2.key_exchange_for(group, os.urandom(32)))
    reply = ikev2.parse_message(udp(address, port, request), nat_t=nat_t)
    return {"answers": ikev2.answers(reply, spi), "payloads": list(reply.payloads),
            "group": reply.dh_group}

def pptp_start(address):
    with socket.create_connection((address, 1723), timeout=3) as conn:
        conn.sendall(pptp.start_control_connection_request(hostname="probe"))
        return pptp.parse_control_message(stream(conn, pptp.split_messages)).name

def l2tp_start(address):
    tunnel = int.from_bytes(os.urandom(2), "big") or 1
    reply = l2tp.parse_message(udp(address, 1701, l2tp.sccrq(tunnel, host_name="probe")))
    return reply.name if l2tp.answers(reply, tunnel) else f"unrelated {reply.name}"

def sstp_start(address, port):
    context = ssl.create_default_context(cafile=args["ca"])
    with socket.create_connection((address, port), timeout=3) as raw:
        with context.wrap_socket(raw, server_hostname=args["sstp_host"]) as conn:
            conn.sendall(sstp.duplex_post_request(args["sstp_host"], str(uuid.uuid4())))
            buffer = b""
            while (head := sstp.parse_duplex_post_response(buffer)) is None:
                chunk = conn.recv(4096)
                if not chunk:
                    return "closed"
                buffer += chunk
            status, used = head
            if status != 200:
                return f"HTTP {status}"
            conn.sendall(sstp.call_connect_request())
            packets, rest = sstp.split_packets(buffer[used:])
            while not packets:
                chunk = conn.recv(4096)
                if not chunk:
                    return "closed after 200"
                packets, rest = sstp.split_packets(rest + chunk)
            return sstp.parse_packet(packets[0]).name

auth = openvpn.ControlChannelKey("tls-auth", openvpn.parse_static_key(open(args["tls_auth_key"]).read()),
                                 direction=args["tls_auth_direction"])
crypt = openvpn.ControlChannelKey("tls-crypt", openvpn.parse_static_key(open(args["tls_crypt_key"]).read()))
for address in args["addresses"]:
    check(f"openvpn udp {address}", openvpn_udp, address, 1194, None)
    check(f"openvpn tcp {address}", openvpn_tcp, address)
    check(f"openvpn tls-auth {address}", openvpn_udp, address, 1195, auth)
    check(f"openvpn tls-crypt {address}", openvpn_udp, address, 1196, crypt)
    for port in (2408, 51820):
        check(f"wireguard {port} {address}", wireguard_handshake, address, port)
    for port in (500, 4500):
        check(f"ikev2 {port} {address}", ike, address, port, ikev2.DH_CURVE25519)
    check(f"sstp 4443 {address}", sstp_start, address, 4443)
for group in ikev2.DH_GROUPS:
    check(f"ikev2 group {group}", ike, args["addresses"][0], 500, group)
check("pptp", pptp_start, args["addresses"][0])
check("l2tp", l2tp_start, args["addresses"][0])
for address in args["sstp_addresses"]:
    check(f"sstp 443 {address}", sstp_start, address, 443)
check("https 443 elsewhere", sstp_start, args["addresses"][0], 443)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Running:
    net: LabNet
    servers: LabServers
    ca: str


@contextmanager
def _network() -> Iterator[LabNet]:
    net = topology.create()
    try:
        yield net
    finally:
        topology.destroy(net.prefix)


def _start(net: LabNet, sstp_addresses: tuple[str, ...] = ()) -> tuple[LabServers, str]:
    plan = addressing.address_plan(addressing.lab_names())
    zone = Zone({name: ZoneEntry(Answer.ADDRESSES, a) for name, a in plan.items()}, 0.02)
    directory = topology.state_dir(net.prefix)
    certs = make_lab_certs(directory / "certs", sorted(plan))
    servers = start_servers(net, zone, certs, directory / "servers", sstp_addresses)
    return servers, str(certs.ca)


@pytest.fixture(scope="module")
def running(lab_host: None) -> Iterator[Running]:
    with _network() as net:
        servers, ca = _start(net, (SSTP_V4, SSTP_V6))
        yield Running(net, servers, ca)
        servers.stop()


@pytest.fixture(scope="module")
def seen(running: Running) -> dict[str, Any]:
    vpn = running.servers.vpn
    args = {
        "addresses": [V4, V6], "sstp_addresses": [SSTP_V4, SSTP_V6], "ca": running.ca,
        # Any lab name: the lab leaf names them all.
        "sstp_host": min(addressing.lab_names()),
        "wireguard_public_key": vpn.wireguard_public_key,
        "wireguard_client_key": vpn.wireguard_client_key,
        "tls_auth_key": str(vpn.tls_auth_key), "tls_auth_direction": vpn.tls_auth_direction,
        "tls_crypt_key": str(vpn.tls_crypt_key),
    }
    result = topology.run_in(running.net.client_ns,
                             [sys.executable, "-c", CLIENT, json.dumps(args)],
                             capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("address", [V4, V6])
def test_openvpn_servers_answer_the_hard_reset(seen: dict[str, Any], address: str) -> None:
    for flavour in ("udp", "tcp", "tls-auth", "tls-crypt"):
        assert seen[f"openvpn {flavour} {address}"] == "P_CONTROL_HARD_RESET_SERVER_V2", flavour


@pytest.mark.parametrize("address", [V4, V6])
def test_wireguard_servers_answer_the_lab_client_key(seen: dict[str, Any], address: str) -> None:
    assert seen[f"wireguard 2408 {address}"] == "HandshakeResponse authenticated"
    assert seen[f"wireguard 51820 {address}"] == "HandshakeResponse authenticated"


@pytest.mark.parametrize("address", [V4, V6])
def test_ikev2_answers_ike_sa_init_on_both_ports(seen: dict[str, Any], address: str) -> None:
    for port in (500, 4500):
        reply = seen[f"ikev2 {port} {address}"]
        assert isinstance(reply, dict), reply
        assert reply["answers"] and reply["payloads"][:3] == ["SA", "KE", "Nr"], port


def test_ikev2_takes_each_common_group_without_a_round_trip(seen: dict[str, Any]) -> None:
    for group in (31, 19, 14):  # curve25519, ECP-256, MODP-2048
        assert seen[f"ikev2 group {group}"]["group"] == group


def test_pptp_and_l2tp_answer_the_control_connection_start(seen: dict[str, Any]) -> None:
    assert seen["pptp"] == "Start-Control-Connection-Reply"
    assert seen["l2tp"] == "SCCRP"


def test_sstp_answers_on_443_where_redirected_and_nginx_elsewhere(seen: dict[str, Any]) -> None:
    for address in (SSTP_V4, SSTP_V6):
        assert seen[f"sstp 443 {address}"] == "SSTP_MSG_CALL_CONNECT_ACK"
    assert seen[f"sstp 4443 {V4}"] == seen[f"sstp 4443 {V6}"] == "SSTP_MSG_CALL_CONNECT_ACK"
    # nginx refuses the request: the redirect is per address.
    assert seen["https 443 elsewhere"].startswith("HTTP 4")


def test_the_vpn_keys_stay_in_the_lab(running: Running, seen: dict[str, Any]) -> None:
    vpn = running.servers.vpn
    for path in (vpn.tls_auth_key, vpn.tls_crypt_key):
        assert path.is_relative_to(topology.state_dir(running.net.prefix))
    assert vpn.tls_auth_direction == 1
    assert running.servers.failed() is None


def test_a_server_that_cannot_start_is_named_with_its_log(lab_host: None) -> None:
    with _network() as net:
        # Something else holds PPTP's port: pptpd cannot bind it, and the
        # port alone must not pass for pptpd being up.
        blocker = topology.popen_in(
            net.server_ns, [sys.executable, "-m", "probe_lab.servers.hold", "--port=1723"],
            stdout=subprocess.PIPE)
        assert blocker.stdout is not None and blocker.stdout.readline() == b"ready\n"
        with pytest.raises(LabError) as caught:
            _start(net)
        message = str(caught.value)
        assert message.startswith("the lab's pptp server exited") and "\n" not in message
        # Everything that did start was stopped again.
        pids = subprocess.run(["ip", "netns", "pids", net.server_ns], capture_output=True,
                              text=True, check=True).stdout.split()
        assert pids == [str(blocker.pid)]
        blocker.stdout.close()


# -- without a lab ---------------------------------------------------------


def test_listening_reads_tcp_listeners_and_udp_sockets_with_their_processes() -> None:
    output = (
        'udp UNCONN 0 0 *:1194 *:* users:(("openvpn",pid=41,fd=4))\n'
        'tcp LISTEN 0 511 0.0.0.0:443 0.0.0.0:* users:(("nginx",pid=7,fd=8),("nginx",pid=6,fd=8))\n'
        'udp UNCONN 0 0 [2001:db8:5::53]:53 [::]:* users:(("python",pid=9,fd=8))\n'
        "tcp LISTEN 0 4096 [::]:8443 [::]:*\n"  # a socket of no process we can see
    )
    assert listening(output) == {("udp", 1194, 41), ("tcp", 443, 7), ("tcp", 443, 6),
                                 ("udp", 53, 9)}


def test_the_sstp_redirect_sends_only_those_addresses_to_the_responder() -> None:
    rules = redirect_ruleset(["203.0.113.220", "2001:db8:5::220", "203.0.113.221"], port=4443)
    assert "ip daddr { 203.0.113.220, 203.0.113.221 } tcp dport 443 redirect to :4443" in rules
    assert "ip6 daddr { 2001:db8:5::220 } tcp dport 443 redirect to :4443" in rules
    assert "ip6" not in redirect_ruleset(["203.0.113.220"])
    with pytest.raises(ValueError):
        redirect_ruleset(["not-an-address"])


def test_static_keys_are_what_openvpn_and_the_probe_read(tmp_path: Path) -> None:
    first = openvpn.parse_static_key(write_static_key(tmp_path / "a.key").read_text())
    second = openvpn.parse_static_key(write_static_key(tmp_path / "b.key").read_text())
    assert len(first) == len(second) == openvpn.STATIC_KEY_SIZE and first != second
    assert (tmp_path / "a.key").stat().st_mode & 0o077 == 0
