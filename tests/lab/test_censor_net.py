"""The censor with real traffic: a lab, a peer server, client programs, one behaviour at a time.

Needs root, nftables and network namespaces (the ``lab_host`` fixture:
in CI a lab that cannot start fails the tests; elsewhere they skip).

This file is also the program that runs inside the namespaces
(``python test_censor_net.py peer|client ...``): the peer serves TLS, HTTP,
plain TCP, bulk data and UDP echo on every server address and writes what
reaches it to a record file; each client command prints one JSON line.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TLS_PORT, HTTP_PORT, PLAIN_PORT, ALT_PORT, BULK_PORT, SINK_PORT = 443, 80, 5222, 5223, 9000, 9001
UDP_PORTS = (5000, 5001)
BULK_BYTES = 100_000
HERE = Path(__file__).resolve()


# --------------------------------------------------------------------------
# Inside the namespaces


def peer(record: str, cert: str, key: str) -> None:
    """Every server of the tests, on every address of the server namespace."""
    lock = threading.Lock()

    def note(*words: object) -> None:
        with lock, open(record, "a") as out:
            out.write(" ".join(str(w) for w in words) + "\n")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def tls(conn: socket.socket, port: int) -> None:
        # Peek first: the record must say whether any byte (the ClientHello) arrived.
        if not conn.recv(1, socket.MSG_PEEK):
            note(port, "eof")
            return
        note(port, "data")
        with context.wrap_socket(conn, server_side=True) as wrapped:
            wrapped.sendall(b"hello")

    def http(conn: socket.socket, port: int) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                note(port, "eof")
                return
            head += chunk
        note(port, "data")
        body = b"<html><head><title>real page</title></head></html>"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(body), body))  # fmt: skip

    def plain(conn: socket.socket, port: int) -> None:
        address = conn.getsockname()
        conn.sendall(f"{address[0]} {address[1]}\n".encode())

    def bulk(conn: socket.socket, port: int) -> None:
        conn.sendall(b"x" * BULK_BYTES)

    def sink(conn: socket.socket, port: int) -> None:
        digest = hashlib.sha256()
        while chunk := conn.recv(65536):
            digest.update(chunk)
        conn.sendall(f"{digest.hexdigest()} {conn.getsockname()[0]}".encode())

    handlers = {
        TLS_PORT: tls,
        HTTP_PORT: http,
        PLAIN_PORT: plain,
        ALT_PORT: plain,
        BULK_PORT: bulk,
        SINK_PORT: sink,
    }

    def serve(listener: socket.socket, port: int) -> None:
        while True:
            conn, address = listener.accept()
            note(port, "accept", address[0])
            threading.Thread(target=handle, args=(conn, port), daemon=True).start()

    def handle(conn: socket.socket, port: int) -> None:
        conn.settimeout(5)
        with conn:
            try:
                handlers[port](conn, port)
            except OSError as exc:
                note(port, type(exc).__name__)

    def echo(sock: socket.socket) -> None:
        while True:
            data, address = sock.recvfrom(2048)
            sock.sendto(data, address)

    for family, anywhere in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for port in handlers:
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind((anywhere, port))
            listener.listen(64)
            threading.Thread(target=serve, args=(listener, port), daemon=True).start()
        for port in UDP_PORTS:
            udp = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            udp.bind((anywhere, port))
            threading.Thread(target=echo, args=(udp,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def client(op: str, *args: str) -> dict[str, Any]:
    """One client action; network failures are results, named by exception type."""
    try:
        return _client(op, *args)
    except TimeoutError:
        return {"error": "timeout"}
    except OSError as exc:
        return {"error": type(exc).__name__}


def _client(op: str, *args: str) -> dict[str, Any]:
    if op == "dns":
        return _dns(*args)
    if op == "udp":
        host, port, count = args[0], int(args[1]), int(args[2])
        # Not connected: the echo comes from the server's primary address
        # (it listens on the wildcard), not from the one dialled.
        with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            for i in range(count):
                sock.sendto(str(i).encode(), (host, port))
            received: set[bytes] = set()
            try:
                while len(received) < count:
                    received.add(sock.recv(64))
            except TimeoutError:
                pass
        return {"received": len(received)}
    if op == "datagram":  # one datagram of these bytes (hex); how many echoes of it came back
        host, port, payload = args[0], int(args[1]), bytes.fromhex(args[2])
        with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            sock.sendto(payload, (host, port))
            echoes = 0
            try:
                while True:
                    echoes += sock.recv(2048) == payload
            except TimeoutError:
                pass
        return {"received": echoes}
    host, port, timeout = args[0], int(args[1]), float(args[2])
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if op == "tls":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            with context.wrap_socket(sock, server_hostname=args[3]) as wrapped:
                return {"data": _read_all(wrapped).decode()}
        if op in ("upload", "send"):  # send: these bytes (hex)
            data = random.randbytes(int(args[3])) if op == "upload" else bytes.fromhex(args[3])
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            digest, at = _read_all(sock).decode().split()
            return {"intact": digest == hashlib.sha256(data).hexdigest(), "at": at}
        if op == "http":
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {args[3]}\r\n\r\n".encode())
            return {"data": _read_all(sock).decode(errors="replace")}
        data = _read_all(sock)
        return {"data": data.decode() if op == "tcp" else len(data),
                "seconds": time.monotonic() - started}  # fmt: skip


def _dns(server: str, name: str, rtype: str, window: str) -> dict[str, Any]:
    import dns.message
    import dns.rdatatype

    query = dns.message.make_query(name, rtype)
    answers = []
    with socket.socket(_family(server), socket.SOCK_DGRAM) as sock:
        sock.sendto(query.to_wire(), (server, 53))
        deadline = time.monotonic() + float(window)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                wire = sock.recv(4096)
            except TimeoutError:
                break
            response = dns.message.from_wire(wire)
            answers.append(sorted(r.to_text() for rrset in response.answer for r in rrset))
    return {"answers": answers}


def _read_all(sock: socket.socket | ssl.SSLSocket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


if __name__ == "__main__":
    if sys.argv[1] == "peer":
        peer(*sys.argv[2:])
    else:
        print(json.dumps(client(*sys.argv[2:])), flush=True)
    sys.exit(0)


# --------------------------------------------------------------------------
# The tests (pytest imports only from here on)

import pytest
from test_censor_fingerprint import FIRST, client_hello

from probe_lab import topology
from probe_lab.censor import BLOCKPAGE_TITLE, apply_censor, parse_censor
from probe_lab.censor.apply import CensorError, CensorHandle
from probe_lab.servers.ready import wait_ready
from probe_lab.zone import Zone

# Lab names of these tests and their addresses (from the server pool).
NAMES = {
    "blocked.test": ("203.0.113.10", "2001:db8:5::10"),
    "open.test": ("203.0.113.11", "2001:db8:5::11"),
    "split.test": ("203.0.113.12", "203.0.113.13", "2001:db8:5::12", "2001:db8:5::13"),
    "slow.test": ("203.0.113.14", "2001:db8:5::14"),
}
BLOCKED, OPEN = NAMES["blocked.test"], NAMES["open.test"]
RESOLVER = "203.0.113.53"


@dataclass
class Censored:
    net: topology.LabNet
    record: Path
    workdir: Path

    def run(self, *args: str) -> dict[str, Any]:
        argv = [sys.executable, str(HERE), "client", *args]
        done = topology.run_in(self.net.client_ns, argv, capture_output=True, text=True,
                               timeout=30, env=_env())  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def censor(self, censor: dict[str, Any]) -> CensorHandle:
        return apply_censor(self.net, parse_censor(censor, "test"), self.workdir)

    def seen(self, port: int, at_least: int = 0) -> list[str]:
        """What the peer recorded for ``port`` since the last call (wait for ``at_least`` lines)."""
        deadline = time.monotonic() + 2
        while True:
            lines = self.record.read_text().splitlines() if self.record.exists() else []
            found = [line.split(" ", 1)[1] for line in lines if line.startswith(f"{port} ")]
            if len(found) >= at_least or time.monotonic() > deadline:
                self.record.write_text("")
                return found
            time.sleep(0.02)


def _env() -> dict[str, str]:
    root = str(HERE.parent.parent.parent)
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )


@pytest.fixture(scope="module")
def lab(lab_host: None, tmp_path_factory: pytest.TempPathFactory, certs: Any) -> Iterator[Censored]:
    """One lab for the module, with the DNS server and the peer; each test brings its censor."""
    workdir = tmp_path_factory.mktemp("censor")
    net = topology.create(addresses=NAMES)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        zone = workdir / "zone.json"
        zone.write_text(Zone.from_plan(NAMES).to_json())
        record = workdir / "record.txt"
        for argv in (
            [sys.executable, "-m", "probe_lab.servers.dns", "--zone", str(zone)],
            [sys.executable, str(HERE), "peer", str(record), *map(str, certs.good)],
        ):
            process = topology.popen_in(net.server_ns, argv, stdout=subprocess.PIPE, env=_env())
            processes.append(process)
            assert wait_ready(process, 20), f"{argv[1:3]} did not start"
        yield Censored(net, record, workdir)
    finally:
        for process in processes:
            process.kill()
            process.wait()
        topology.destroy(net.prefix)


# -------------------------------------------------------------------- DNS


def test_dns_injection_answers_first_and_the_real_answer_still_arrives(lab: Censored) -> None:
    forged = {"names": ["*.test"], "answers": ["198.51.100.66", ["203.0.113.77", "2001:db8:66::1"]]}
    with lab.censor({"dns_inject": forged}):
        answers = lab.run("dns", RESOLVER, "blocked.test", "A", "0.3")["answers"]
        aaaa = lab.run("dns", RESOLVER, "blocked.test", "AAAA", "0.3")["answers"]
    assert answers == [["198.51.100.66"], ["203.0.113.77"], [BLOCKED[0]]]
    assert aaaa == [["2001:db8:66::1"], [BLOCKED[1]]]  # the first entry has no IPv6 address


def test_dns_injection_leaves_other_names_alone(lab: Censored) -> None:
    with lab.censor({"dns_inject": {"names": ["blocked.test"], "answers": ["198.51.100.66"]}}):
        assert lab.run("dns", RESOLVER, "open.test", "A", "0.3")["answers"] == [[OPEN[0]]]


# -------------------------------------------------------------------- SNI


@pytest.mark.parametrize("address", [BLOCKED[0], BLOCKED[1]], ids=["ipv4", "ipv6"])
def test_sni_reset_resets_the_client_and_the_server_never_sees_the_hello(
    lab: Censored, address: str
) -> None:
    with lab.censor({"sni_reset": {"sni": ["blocked.test"]}}):
        lab.seen(TLS_PORT)
        blocked = lab.run("tls", address, str(TLS_PORT), "2", "blocked.test")
        allowed = lab.run("tls", address, str(TLS_PORT), "2", "open.test")
        seen = lab.seen(TLS_PORT, at_least=4)
    assert blocked == {"error": "ConnectionResetError"}
    assert allowed == {"data": "hello"}
    # Two connections accepted; bytes arrived on one only (the allowed one),
    # and the blocked one was reset by the censor's RST, not by a timeout.
    assert sorted(seen) == sorted(
        [f"accept {lab_client(address)}"] * 2 + ["data", "ConnectionResetError"]
    )


def lab_client(address: str) -> str:
    return "2001:db8:c::2" if ":" in address else "198.51.100.2"


def test_an_allowed_flow_keeps_every_byte_through_the_inspector(lab: Censored) -> None:
    # The client's stack hands the veth segments far larger than the MTU
    # (GSO); the inspector re-sends each in MTU-sized pieces.
    with lab.censor({"sni_reset": {"sni": ["blocked.test"], "ports": [SINK_PORT]}}) as handle:
        for address in OPEN:
            result = lab.run("upload", address, str(SINK_PORT), "10", "3000000")
            assert result == {"intact": True, "at": address}
    assert "Traceback" not in handle.log.read_text()


def test_sni_reset_with_residual_blocks_the_three_tuple_for_a_while(lab: Censored) -> None:
    with lab.censor({"sni_reset": {"sni": ["blocked.test"], "residual": 1.5}}):
        triggered = time.monotonic()
        assert lab.run("tls", BLOCKED[0], str(TLS_PORT), "2", "blocked.test") == {
            "error": "ConnectionResetError"
        }
        during = lab.run("tls", BLOCKED[0], str(TLS_PORT), "0.5", "open.test")
        other_port = lab.run("tcp", BLOCKED[0], str(PLAIN_PORT), "2")
        time.sleep(max(0.0, triggered + 1.7 - time.monotonic()))
        after = lab.run("tls", BLOCKED[0], str(TLS_PORT), "2", "open.test")
    assert during == {"error": "timeout"}  # even an allowed SNI: the 3-tuple is penalised
    assert other_port["data"] == f"{BLOCKED[0]} {PLAIN_PORT}\n"
    assert after == {"data": "hello"}


# ------------------------------------------------------------------- HTTP


def test_http_host_blockpage_answers_in_the_servers_name(lab: Censored) -> None:
    with lab.censor({"http_host": {"hosts": ["blocked.test"], "action": "blockpage"}}):
        lab.seen(HTTP_PORT)
        blocked = lab.run("http", OPEN[0], str(HTTP_PORT), "2", "blocked.test")
        allowed = lab.run("http", OPEN[0], str(HTTP_PORT), "2", "open.test")
        seen = lab.seen(HTTP_PORT, at_least=4)
    assert blocked["data"].startswith("HTTP/1.1 403 Forbidden\r\n")
    assert f"<title>{BLOCKPAGE_TITLE}</title>" in blocked["data"]
    assert "<title>real page</title>" in allowed["data"]
    assert seen.count("data") == 1  # only the allowed request reached the server


@pytest.mark.parametrize(
    ("action", "error"), [("rst", "ConnectionResetError"), ("drop", "timeout")]
)
def test_http_host_rst_and_drop(lab: Censored, action: str, error: str) -> None:
    with lab.censor({"http_host": {"hosts": ["blocked.test"], "action": action}}):
        assert lab.run("http", OPEN[1], str(HTTP_PORT), "1", "blocked.test") == {"error": error}
        assert "real page" in lab.run("http", OPEN[1], str(HTTP_PORT), "2", "open.test")["data"]


# ------------------------------------------------------------- nftables


def test_blackhole_by_name_times_out_both_families(lab: Censored) -> None:
    with lab.censor({"blackhole": {"names": ["blocked.test"]}}):
        for address in BLOCKED:
            assert lab.run("tcp", address, str(PLAIN_PORT), "0.5") == {"error": "timeout"}
        assert lab.run("tcp", OPEN[1], str(PLAIN_PORT), "2")["data"] == f"{OPEN[1]} {PLAIN_PORT}\n"


def test_partial_drops_the_first_address_of_each_family(lab: Censored) -> None:
    with lab.censor({"partial": {"names": ["split.test"], "drop": 1}}):
        results = [lab.run("tcp", a, str(PLAIN_PORT), "0.5") for a in NAMES["split.test"]]
    assert [r.get("error") for r in results] == ["timeout", None, "timeout", None]


def test_udp_drop_by_port(lab: Censored) -> None:
    with lab.censor({"udp_drop": {"ports": [UDP_PORTS[0]]}}):
        assert lab.run("udp", OPEN[0], str(UDP_PORTS[0]), "5") == {"received": 0}
        assert lab.run("udp", OPEN[0], str(UDP_PORTS[1]), "5") == {"received": 5}


def test_loss_drops_about_the_given_share(lab: Censored) -> None:
    # 30% of the datagrams to OPEN[0] are lost; the echoes come back from the
    # server's primary address, which the rule does not select. 400 trials:
    # 280 expected, 9 standard deviation; the bounds are 4 of them away.
    with lab.censor({"loss": {"percent": 30, "addresses": [OPEN[0]]}}):
        lossy = lab.run("udp", OPEN[0], str(UDP_PORTS[0]), "400")["received"]
        clean = lab.run("udp", BLOCKED[0], str(UDP_PORTS[0]), "50")["received"]
    assert 0.61 * 400 < lossy < 0.79 * 400
    assert clean == 50


def test_throttle_limits_the_rate_of_one_address(lab: Censored) -> None:
    with lab.censor({"throttle": {"rate": "800kbit", "names": ["slow.test"]}}):
        slow = lab.run("bulk", NAMES["slow.test"][0], str(BULK_PORT), "10")
        fast = lab.run("bulk", OPEN[0], str(BULK_PORT), "10")
    assert slow["data"] == fast["data"] == BULK_BYTES
    expected = BULK_BYTES * 8 / 800_000  # 1 s
    assert 0.6 * expected < slow["seconds"] < 2 * expected
    assert fast["seconds"] < 0.3 * expected


def test_redirect_sends_a_port_to_another_server(lab: Censored) -> None:
    rule = {"names": ["blocked.test"], "ports": [PLAIN_PORT], "to": list(OPEN), "to_port": ALT_PORT}
    with lab.censor({"redirect": rule}):
        for address, target in zip(BLOCKED, OPEN, strict=True):
            assert lab.run("tcp", address, str(PLAIN_PORT), "2")["data"] == f"{target} {ALT_PORT}\n"


def test_redirect_also_applies_to_what_the_inspector_resends(lab: Censored) -> None:
    # The inspected payload leaves through OUTPUT, not FORWARD: conntrack
    # must translate it like the SYN that prerouting redirected.
    censor = {
        "sni_reset": {"sni": ["blocked.test"], "ports": [SINK_PORT]},
        "redirect": {"names": ["blocked.test"], "ports": [SINK_PORT], "to": list(OPEN)},
    }
    with lab.censor(censor):
        for address, target in zip(BLOCKED, OPEN, strict=True):
            result = lab.run("upload", address, str(SINK_PORT), "5", "100000")
            assert result == {"intact": True, "at": target}


# ---------------------------------------------------------------- OpenVPN


def test_openvpn_fingerprint_resets_tcp_drops_udp_and_spares_other_traffic(lab: Censored) -> None:
    censor = {"openvpn_fingerprint": {"residual": 60}, "udp_drop": {"ports": [UDP_PORTS[1]]}}
    # A datagram that nftables hands to the inspector (a reset's first byte)
    # but that is no reset: a DNS query whose id starts with 0x38.
    not_reset = bytes.fromhex("38aa010000010000000000000376706e076578616d706c650000010001")
    hello = client_hello("open.test")
    with lab.censor(censor) as handle:
        # TCP: every port is watched; only OpenVPN's reset is reset.
        tls = lab.run("send", OPEN[0], str(SINK_PORT), "2", hello.hex())
        openvpn_tcp = lab.run("send", OPEN[0], str(SINK_PORT), "2", FIRST["openvpn tcp"].hex())
        # UDP: the same port carries other traffic, each datagram exactly once;
        # udp_drop still holds for what the inspector relays.
        wireguard = lab.run("datagram", BLOCKED[0], str(UDP_PORTS[0]),
                            FIRST["wireguard initiation"].hex())  # fmt: skip
        relayed = lab.run("datagram", BLOCKED[1], str(UDP_PORTS[0]), not_reset.hex())
        kept_dropped = lab.run("datagram", BLOCKED[0], str(UDP_PORTS[1]), not_reset.hex())
        names = ("openvpn udp tls-auth", "openvpn udp tls-crypt-v2")
        resets = [
            lab.run("datagram", address, str(UDP_PORTS[0]), FIRST[name].hex())
            for name, address in zip(names, BLOCKED, strict=True)
        ]
        # The penalty: BLOCKED's port is closed to the client for 60 s, OPEN's is not.
        penalised = lab.run("datagram", BLOCKED[0], str(UDP_PORTS[0]), not_reset.hex())
        other_server = lab.run("datagram", OPEN[0], str(UDP_PORTS[0]), not_reset.hex())
        log = handle.log.read_text()
    assert tls == {"intact": True, "at": OPEN[0]}  # every byte through the inspector
    assert openvpn_tcp == {"error": "ConnectionResetError"}
    assert [wireguard, relayed, kept_dropped] == [{"received": 1}, {"received": 1},
                                                  {"received": 0}]  # fmt: skip
    assert resets == [{"received": 0}] * 2
    assert [penalised, other_server] == [{"received": 0}, {"received": 1}]
    assert "-> 203.0.113.10:5000 udp P_CONTROL_HARD_RESET_CLIENT_V2 (tls-auth): drop" in log
    assert "-> [2001:db8:5::10]:5000 udp P_CONTROL_HARD_RESET_CLIENT_V3 (tls-crypt-v2): drop" in log
    assert "203.0.113.11:9001 tcp P_CONTROL_HARD_RESET_CLIENT_V2 (none): rst" in log
    assert "Traceback" not in log


def test_gre_drop_and_a_port_blackhole(lab: Censored) -> None:
    with lab.censor({"gre_drop": True, "blackhole": {"ports": [PLAIN_PORT], "protocol": "tcp"}}):
        rules = topology.run_in(lab.net.censor_ns, ["nft", "list", "chain", "inet", "plab_censor",
                                "drops"], capture_output=True, text=True).stdout  # fmt: skip
        blocked = lab.run("tcp", OPEN[0], str(PLAIN_PORT), "0.5")
        other = lab.run("tcp", OPEN[0], str(ALT_PORT), "2")
    assert "meta l4proto gre drop" in rules
    assert blocked == {"error": "timeout"}
    assert other["data"] == f"{OPEN[0]} {ALT_PORT}\n"


def test_stop_removes_every_rule_and_the_daemon(lab: Censored) -> None:
    handle = lab.censor({"sni_reset": {"sni": ["blocked.test"]}, "throttle": {"rate": "1mbit"}})
    assert handle.daemon is not None and handle.daemon.poll() is None
    with pytest.raises(CensorError, match="has a censor already; stop it first$"):
        lab.censor({"loss": {"percent": 1}})
    handle.stop()
    assert handle.daemon.poll() is not None
    tables = topology.run_in(
        lab.net.censor_ns, ["nft", "list", "tables"], capture_output=True, text=True
    )
    assert "plab_censor" not in tables.stdout
    qdiscs = topology.run_in(lab.net.censor_ns, ["tc", "qdisc", "show", "dev", "cl0"],
                             capture_output=True, text=True)  # fmt: skip
    assert "htb" not in qdiscs.stdout
    assert lab.run("tls", BLOCKED[0], str(TLS_PORT), "2", "blocked.test") == {"data": "hello"}
