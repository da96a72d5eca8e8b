"""The lab's namespaces: built as the contract says, removed without a trace."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from environment import in_ci

from probe_lab import addressing, topology
from probe_lab.topology import LabError, LabNet

pytestmark = pytest.mark.usefixtures("lab_host")


def namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def host_links() -> set[str]:
    listing = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                             check=False).stdout
    return {line.split(":")[1].strip() for line in listing.splitlines()}


def in_ns(net: LabNet, ns: str, code: str) -> str:
    result = topology.run_in(ns, [sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def net() -> Iterator[LabNet]:
    lab = topology.create()
    try:
        yield lab
    finally:
        topology.destroy(lab.prefix)


def test_create_builds_three_namespaces_with_the_contract_names(net: LabNet) -> None:
    assert net.prefix.startswith("plab-") and len(net.prefix) == len("plab-") + 4
    assert (net.client_ns, net.censor_ns, net.server_ns) == (
        f"{net.prefix}-client", f"{net.prefix}-censor", f"{net.prefix}-server")
    assert {net.client_ns, net.censor_ns, net.server_ns} <= namespaces()
    assert net.prefix in topology.lab_prefixes()
    # Every shipped list's names have addresses from the server pool.
    assert net.addresses["e1.whatsapp.net"][0].startswith("203.0.113.")
    assert net.addresses["www.example.com"][1].startswith("2001:db8:5::")


def test_addresses_and_routes_are_the_contracts(net: LabNet) -> None:
    client = in_ns(net, net.client_ns, "import subprocess;print(subprocess.run("
                   "['ip','-o','addr','show','dev','eth0'],capture_output=True,text=True).stdout)")
    assert "198.51.100.2/24" in client and "2001:db8:c::2/64" in client
    routes = topology.run_in(net.client_ns, ["ip", "route", "show", "default"],
                             capture_output=True, text=True).stdout
    assert "via 198.51.100.1 dev eth0" in routes
    routes6 = topology.run_in(net.client_ns, ["ip", "-6", "route", "show", "default"],
                              capture_output=True, text=True).stdout
    assert "via 2001:db8:c::1 dev eth0" in routes6
    censor = topology.run_in(net.censor_ns, ["ip", "-o", "addr"], capture_output=True, text=True).stdout
    for address in ("198.51.100.1/24", "2001:db8:c::1/64", "203.0.113.1/24", "2001:db8:5::1/64"):
        assert address in censor
    forwarding = topology.run_in(net.censor_ns, ["sysctl", "-n", "net.ipv4.ip_forward",
                                                 "net.ipv6.conf.all.forwarding"],
                                 capture_output=True, text=True).stdout.split()
    assert forwarding == ["1", "1"]
    server = topology.run_in(net.server_ns, ["ip", "-o", "addr", "show", "dev", "eth0"],
                             capture_output=True, text=True).stdout
    assert f" {addressing.RESOLVER_V4}/24" in server
    assert " 203.0.113.250/24" in server and " 2001:db8:5::250/64" in server
    # Static neighbour entries: no discovery round trip on the first packet.
    neighbours = topology.run_in(net.client_ns, ["ip", "neigh", "show", "dev", "eth0"],
                                 capture_output=True, text=True).stdout
    assert "2001:db8:c::1" in neighbours and "PERMANENT" in neighbours


def test_the_client_reaches_the_servers_only_through_the_censor(net: LabNet) -> None:
    server = topology.popen_in(
        net.server_ns,
        [sys.executable, "-c", ("import socket,time\n"
         "s=socket.create_server(('::',7),family=socket.AF_INET6,dualstack_ipv6=True)\n"
         "print('ready',flush=True)\nc,a=s.accept();c.sendall(a[0].encode());time.sleep(1)")],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        seen = in_ns(net, net.client_ns, "import socket\n"
                     "s=socket.create_connection(('2001:db8:5::42',7),timeout=5)\n"
                     "print(s.recv(100).decode())")
        # The server sees the client's own address: routed, not translated.
        assert seen == addressing.CLIENT_V6
    finally:
        server.kill()
        server.wait()
        assert server.stdout is not None
        server.stdout.close()


def test_nothing_is_added_to_the_host_namespace() -> None:
    before = host_links()
    lab = topology.create()
    try:
        assert host_links() == before
    finally:
        topology.destroy(lab.prefix)


def test_destroy_removes_namespaces_processes_and_files() -> None:
    lab = topology.create()
    sleeper = topology.popen_in(lab.server_ns, ["sleep", "300"])
    directory = topology.state_dir(lab.prefix)
    assert directory.is_dir()
    topology.destroy(lab.prefix)
    assert not any(ns.startswith(lab.prefix + "-") for ns in namespaces())
    assert not directory.exists()
    assert not Path(f"/etc/netns/{lab.prefix}-client").exists()
    assert sleeper.wait(timeout=5) is not None
    assert lab.prefix not in topology.lab_prefixes()
    topology.destroy(lab.prefix)  # a second teardown finds nothing and does not fail


def test_two_labs_never_collide() -> None:
    first = topology.create()
    try:
        second = topology.create()
        try:
            assert first.prefix != second.prefix
            with pytest.raises(LabError, match="exists already"):
                topology.create(first.prefix)
        finally:
            topology.destroy(second.prefix)
        assert first.client_ns in namespaces()
    finally:
        topology.destroy(first.prefix)


def test_a_failed_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ns: str, *settings: str) -> None:
        raise LabError("sysctl failed (on purpose)")

    monkeypatch.setattr(topology, "_sysctl", broken)
    with pytest.raises(LabError, match="on purpose"):
        topology.create("plab-f00d")
    assert "plab-f00d" not in topology.lab_prefixes()
    assert not any(ns.startswith("plab-f00d-") for ns in namespaces())


def test_destroy_all_removes_every_lab() -> None:
    others = topology.lab_prefixes()
    if others and not in_ci():
        # On a developer's machine these may be someone's running labs.
        pytest.skip(f"other labs are running ({', '.join(others)}); not removing them")
    # A lab "left over from a crash": the namespaces and files, no Python object.
    leftover = topology.create()
    removed = topology.destroy_all()
    assert leftover.prefix in removed
    assert not any(ns.startswith("plab-") for ns in namespaces())
    assert topology.lab_prefixes() == ()


def test_bad_prefixes_are_refused() -> None:
    for prefix in ("lab-1", "plab-", "plab-../etc", "plab-UPPER"):
        with pytest.raises(LabError, match="not a lab prefix"):
            topology.destroy(prefix)


def test_a_process_in_a_namespace_runs_this_code() -> None:
    # child_env puts this tree first, so `python -m probe_lab...` in a lab is the code under test.
    root = str(Path(topology.__file__).resolve().parents[1])
    assert topology.child_env()["PYTHONPATH"].split(":")[0] == root
    assert topology.child_env(EXTRA="1")["EXTRA"] == "1"
