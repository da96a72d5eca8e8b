"""The lab's real servers answer inside the lab, as a client in the client namespace sees them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from probe_lab import addressing, topology
from probe_lab.certs import LabCerts, make_lab_certs
from probe_lab.servers import LabServers, start_servers
from probe_lab.servers.web import INTERCEPT_PORT, INTERCEPTED_TITLE, page_title
from probe_lab.topology import LabNet
from probe_lab.zone import Answer, Zone, ZoneEntry

pytestmark = pytest.mark.usefixtures("lab_host")

DELAY = 0.05

# Runs in the client namespace: one JSON object per question on stdout.
CLIENT = r"""
import json, socket, ssl, sys, time
import dns.message, dns.query, dns.rcode
import httpx
ca, intercept_ca = sys.argv[1], sys.argv[2]
out = {}

def lookup(name, rtype, tcp=False):
    q = dns.message.make_query(name, rtype)
    start = time.monotonic()
    try:
        r = (dns.query.tcp if tcp else dns.query.udp)(q, "203.0.113.53", timeout=1.5)
    except dns.exception.Timeout:
        return {"timeout": True}
    return {"rcode": dns.rcode.to_text(r.rcode()), "elapsed": time.monotonic() - start,
            "data": sorted(x.to_text() for rr in r.answer for x in rr)}

out["a"] = lookup("e1.whatsapp.net", "A")
out["aaaa"] = lookup("e1.whatsapp.net", "AAAA")
out["tcp"] = lookup("v.whatsapp.net", "A", tcp=True)
for name in ("nx.lab.test", "fail.lab.test", "empty.lab.test", "silent.lab.test", "nowhere.example"):
    out[name] = lookup(name, "A")

def get(url, address, verify):
    with httpx.Client(verify=verify) as client:
        host = httpx.URL(url).host
        r = client.request("GET", url.replace(host, address), headers={"Host": host},
                           extensions={"sni_hostname": host})
        return {"status": r.status_code, "body": r.text}

out["https"] = get("https://v.whatsapp.net/v2/register", "[2001:db8:5::10]", ca)
out["http"] = get("http://web.whatsapp.com/", "203.0.113.11", False)
out["intercept_page"] = get("https://mmg.whatsapp.net:PORT/x", "203.0.113.20", intercept_ca)

def handshake(port, cafile):
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("203.0.113.20", port), timeout=3) as raw:
            with context.wrap_socket(raw, server_hostname="mmg.whatsapp.net") as tls:
                return {"ok": True, "issuer": dict(x[0] for x in tls.getpeercert()["issuer"])["commonName"]}
    except ssl.SSLCertVerificationError as exc:
        return {"ok": False, "error": exc.verify_message}

out["tls"] = handshake(443, ca)
out["intercept_untrusted"] = handshake(PORT, ca)
out["intercept_trusted"] = handshake(PORT, intercept_ca)

held = {}
for address, port in (("203.0.113.30", 5222), ("2001:db8:5::30", 5222), ("203.0.113.31", 9001)):
    s = socket.create_connection((address, port), timeout=3)
    s.settimeout(0.5)
    try:
        held[f"{address} {port}"] = "closed" if s.recv(10) == b"" else "data"
    except socket.timeout:
        held[f"{address} {port}"] = "open"
    s.close()
out["hold"] = held
print(json.dumps(out))
""".replace("PORT", str(INTERCEPT_PORT))


@dataclass(frozen=True)
class Running:
    net: LabNet
    certs: LabCerts
    servers: LabServers


@pytest.fixture(scope="module")
def running(lab_host: None) -> Iterator[Running]:
    net = topology.create()
    try:
        plan = addressing.address_plan(addressing.lab_names())
        entries = {name: ZoneEntry(Answer.ADDRESSES, a) for name, a in plan.items()}
        entries["e1.whatsapp.net"] = ZoneEntry(
            Answer.ADDRESSES, ("203.0.113.201", "203.0.113.202", "2001:db8:5::201"))
        entries["nx.lab.test"] = ZoneEntry(Answer.NXDOMAIN)
        entries["fail.lab.test"] = ZoneEntry(Answer.SERVFAIL)
        entries["empty.lab.test"] = ZoneEntry(Answer.NO_ANSWER)
        entries["silent.lab.test"] = ZoneEntry(Answer.DROP)
        directory = topology.state_dir(net.prefix)
        certs = make_lab_certs(directory / "certs", sorted(plan))
        servers = start_servers(net, Zone(entries, DELAY), certs, directory / "servers")
        try:
            yield Running(net, certs, servers)
        finally:
            servers.stop()
    finally:
        topology.destroy(net.prefix)


@pytest.fixture(scope="module")
def seen(running: Running) -> dict[str, Any]:
    result = topology.run_in(
        running.net.client_ns,
        [sys.executable, "-c", CLIENT, str(running.certs.ca), str(running.certs.intercept_ca)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_dns_answers_the_zone_after_the_delay(seen: dict[str, Any]) -> None:
    assert seen["a"]["data"] == ["203.0.113.201", "203.0.113.202"]
    assert seen["aaaa"]["data"] == ["2001:db8:5::201"]
    assert seen["a"]["elapsed"] >= DELAY  # the injector's head start
    assert seen["tcp"]["rcode"] == "NOERROR" and len(seen["tcp"]["data"]) == 1


def test_dns_per_name_failures(seen: dict[str, Any]) -> None:
    assert seen["nx.lab.test"]["rcode"] == "NXDOMAIN"
    assert seen["nowhere.example"]["rcode"] == "NXDOMAIN"
    assert seen["fail.lab.test"]["rcode"] == "SERVFAIL"
    assert seen["empty.lab.test"] == {**seen["empty.lab.test"], "rcode": "NOERROR", "data": []}
    assert seen["silent.lab.test"] == {"timeout": True}


def test_https_and_http_answer_any_path_for_every_name(seen: dict[str, Any]) -> None:
    assert seen["https"]["status"] == 200
    assert f"<title>{page_title('v.whatsapp.net')}</title>" in seen["https"]["body"]
    assert seen["http"]["status"] == 200
    assert page_title("web.whatsapp.com") in seen["http"]["body"]


def test_the_lab_ca_signs_the_servers_and_not_the_interceptor(seen: dict[str, Any]) -> None:
    assert seen["tls"] == {"ok": True, "issuer": "Probe Lab CA"}
    assert seen["intercept_untrusted"]["ok"] is False
    assert seen["intercept_trusted"] == {"ok": True, "issuer": "Lab Censor Interception CA"}


def test_the_hold_service_accepts_and_keeps_connections_open(seen: dict[str, Any]) -> None:
    assert seen["hold"] == {"203.0.113.30 5222": "open", "2001:db8:5::30 5222": "open",
                            "203.0.113.31 9001": "open"}


def test_the_interception_server_serves_its_own_page(seen: dict[str, Any]) -> None:
    assert seen["intercept_page"]["status"] == 200
    assert f"<title>{INTERCEPTED_TITLE}</title>" in seen["intercept_page"]["body"]


def test_servers_keep_running(running: Running, seen: dict[str, Any]) -> None:
    assert running.servers.failed() is None
