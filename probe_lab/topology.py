"""The lab's network: three namespaces on a line, client -- censor -- server.

::

    <prefix>-client            <prefix>-censor                 <prefix>-server
    eth0 198.51.100.2/24  ---  cl0 198.51.100.1/24
         2001:db8:c::2/64          2001:db8:c::1/64
                               sv0 203.0.113.1/24        ---  eth0 203.0.113.53 (DNS)
                                   2001:db8:5::1/64                203.0.113.10-250
                                                                   2001:db8:5::53, ::10-::250

The censor routes between the two links, so every packet of the probe
crosses it, as through a national firewall. Both veth pairs are created
with their ends already inside the lab's namespaces: nothing is added to,
routed through or linked with the host's own namespace.

Every lab has a prefix ``plab-<4 hex>``; its namespaces are
``<prefix>-client``, ``<prefix>-censor`` and ``<prefix>-server``. Teardown
finds labs by that prefix, so a crashed run leaves nothing that
``probe lab down`` cannot remove, and two labs never collide.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.errors import InputError
from probe_lab import addressing as plan

__all__ = [
    "PREFIX",
    "LabError",
    "LabNet",
    "child_env",
    "create",
    "destroy",
    "destroy_all",
    "in_use_elsewhere",
    "lab_prefixes",
    "popen_in",
    "require_root",
    "run_in",
    "state_dir",
]

PREFIX = "plab-"
_PREFIX_RE = re.compile(r"plab-[0-9a-z]{1,8}")
_ROLES = ("client", "censor", "server")
# Where a lab keeps its files (certificates, zone, configs, logs); removed with the lab.
_STATE_ROOT = Path("/run/probe-lab")
# `ip netns exec NS` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf:
# every tool run in the client namespace (curl, `probe run`) uses the lab's resolver.
_NETNS_ETC = Path("/etc/netns")
# Fixed, locally administered MACs (RFC 7042 section 2.1): each link is its
# own segment, so labs side by side may reuse them, and static neighbour
# entries can be written before the links come up.
_MAC = {
    "client/eth0": "02:00:5e:00:01:02",
    "censor/cl0": "02:00:5e:00:01:01",
    "censor/sv0": "02:00:5e:00:02:01",
    "server/eth0": "02:00:5e:00:02:02",
}
_OWNER = "owner.pid"  # in the lab's state directory: the creating process
_GSO_MAX = 1500  # bytes: no packet bigger than the links' MTU (see _up)
_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a lab's processes


class LabError(InputError):
    """The lab cannot be built or used; one line for the user (exit code 2)."""


@dataclass(frozen=True, slots=True)
class LabNet:
    """A running lab's namespaces and the addresses its DNS hands out.

    ``addresses`` maps each lab name to every address served for it, in
    zone order (IPv4 first). The server namespace holds the whole pool
    (see :mod:`probe_lab.addressing`), so a scenario may point a name at
    any pool address; the runner replaces ``addresses`` with the
    scenario's zone before the censor sees it.
    """

    prefix: str
    client_ns: str
    censor_ns: str
    server_ns: str
    addresses: Mapping[str, tuple[str, ...]]


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces): run it as root")
    for tool in ("ip", "nft", "tc"):
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs the {tool!r} command: apt-get install iproute2 nftables")


def state_dir(prefix: str) -> Path:
    """The lab's own folder: certificates, zone file, server configs and logs."""
    return _STATE_ROOT / _checked(prefix)


def create(
    prefix: str | None = None, addresses: Mapping[str, tuple[str, ...]] | None = None
) -> LabNet:
    """Build a lab (namespaces, links, addresses, routes, forwarding).

    ``addresses`` defaults to the plan for every name of the shipped test
    lists. On any failure the half-built lab is removed before raising.
    """
    require_root()
    if prefix is None:
        prefix = _fresh_prefix()
    elif _checked(prefix) in lab_prefixes():
        raise LabError(f"a lab named {prefix} exists already; 'probe lab down' removes it")
    if addresses is None:
        addresses = plan.address_plan(plan.lab_names())
    net = LabNet(
        prefix=prefix,
        client_ns=f"{prefix}-client",
        censor_ns=f"{prefix}-censor",
        server_ns=f"{prefix}-server",
        addresses=dict(addresses),
    )
    try:
        _build(net)
        # Who made it: a test session cleaning up after itself must not
        # remove a lab another live process is still using.
        (state_dir(prefix) / _OWNER).write_text(str(os.getpid()))
    except BaseException:
        destroy(prefix)
        raise
    return net


def in_use_elsewhere(prefix: str) -> bool:
    """Whether another process that is still running created this lab."""
    try:
        owner = int((state_dir(prefix) / _OWNER).read_text())
    except (OSError, ValueError):
        return False
    return owner != os.getpid() and _alive(owner)


def destroy(prefix: str) -> None:
    """Remove one lab: its processes, namespaces (and so links and rules), and files."""
    prefix = _checked(prefix)
    namespaces = [ns for ns in _namespaces() if ns.rsplit("-", 1)[0] == prefix]
    _kill(pid for ns in namespaces for pid in _pids(ns))
    for ns in namespaces:
        _ip("netns", "delete", ns)
    for role in _ROLES:
        shutil.rmtree(_NETNS_ETC / f"{prefix}-{role}", ignore_errors=True)
    shutil.rmtree(_STATE_ROOT / prefix, ignore_errors=True)


def destroy_all() -> tuple[str, ...]:
    """Remove every lab on this machine (every ``plab-`` namespace); returns their prefixes."""
    require_root()
    prefixes = lab_prefixes()
    for prefix in prefixes:
        destroy(prefix)
    return prefixes


def lab_prefixes() -> tuple[str, ...]:
    """Prefixes of the labs that exist (namespaces or leftover files)."""
    found = {ns.rsplit("-", 1)[0] for ns in _namespaces() if ns.startswith(PREFIX)}
    if _STATE_ROOT.is_dir():
        found.update(p.name for p in _STATE_ROOT.iterdir())
    if _NETNS_ETC.is_dir():
        found.update(p.name.rsplit("-", 1)[0] for p in _NETNS_ETC.iterdir()
                     if p.name.startswith(PREFIX))
    return tuple(sorted(p for p in found if _PREFIX_RE.fullmatch(p)))


def run_in(ns: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` of ``argv`` inside the namespace ``ns`` (see :func:`child_env`)."""
    kw.setdefault("env", child_env())
    return subprocess.run(["ip", "netns", "exec", ns, *argv], **kw)  # noqa: PLW1510 (the caller's)


def popen_in(ns: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` of ``argv`` inside the namespace ``ns`` (see :func:`child_env`)."""
    kw.setdefault("env", child_env())
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for the lab's processes, plus ``extra``.

    ``python -m probe...`` in a namespace must run this very code (a
    source tree under test, not some other installed copy), so the
    directory holding the ``probe`` and ``probe_lab`` packages comes first on PYTHONPATH.
    """
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root, **extra}


# --------------------------------------------------------------------------
# Building


def _build(net: LabNet) -> None:
    for ns in (net.client_ns, net.censor_ns, net.server_ns):
        _ip("netns", "add", ns)
        # Before the links exist, so they inherit it: no router solicitations
        # and no duplicate address detection (RFC 4862 section 5.4) on the
        # lab's links, hence no stray packets in captures and no stall.
        _sysctl(ns, *(f"net.ipv6.conf.{which}.{key}=0" for which in ("all", "default")
                      for key in ("router_solicitations", "accept_dad")))
    # Each veth pair is born with its ends inside the lab (the `netns`
    # attribute of RTM_NEWLINK), under their final names.
    _ip("link", "add", "eth0", "netns", net.client_ns, "address", _MAC["client/eth0"],
        "type", "veth", "peer", "name", "cl0", "netns", net.censor_ns,
        "address", _MAC["censor/cl0"])
    _ip("link", "add", "eth0", "netns", net.server_ns, "address", _MAC["server/eth0"],
        "type", "veth", "peer", "name", "sv0", "netns", net.censor_ns,
        "address", _MAC["censor/sv0"])
    pool = plan.pool_addresses()
    _batch(net.client_ns, [
        *_up("lo", "eth0"),
        f"address add {plan.CLIENT_V4}/24 dev eth0",
        f"address add {plan.CLIENT_V6}/64 dev eth0 nodad",
        f"route add default via {plan.CENSOR_CLIENT_V4}",
        f"route add ::/0 via {plan.CENSOR_CLIENT_V6}",
        *_neighbours("eth0", _MAC["censor/cl0"], (plan.CENSOR_CLIENT_V4, plan.CENSOR_CLIENT_V6)),
    ])
    _batch(net.censor_ns, [
        *_up("lo", "cl0", "sv0"),
        f"address add {plan.CENSOR_CLIENT_V4}/24 dev cl0",
        f"address add {plan.CENSOR_CLIENT_V6}/64 dev cl0 nodad",
        f"address add {plan.CENSOR_SERVER_V4}/24 dev sv0",
        f"address add {plan.CENSOR_SERVER_V6}/64 dev sv0 nodad",
        *_neighbours("cl0", _MAC["client/eth0"], (plan.CLIENT_V4, plan.CLIENT_V6)),
        *_neighbours("sv0", _MAC["server/eth0"], pool),
    ])
    _batch(net.server_ns, [
        *_up("lo", "eth0"),
        *(f"address add {a}/{24 if '.' in a else 64} dev eth0" + ("" if "." in a else " nodad")
          for a in pool),
        f"route add default via {plan.CENSOR_SERVER_V4}",
        f"route add ::/0 via {plan.CENSOR_SERVER_V6}",
        *_neighbours("eth0", _MAC["censor/sv0"], (plan.CENSOR_SERVER_V4, plan.CENSOR_SERVER_V6)),
    ])
    _sysctl(net.censor_ns, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    state_dir(net.prefix).mkdir(parents=True, exist_ok=True)
    etc = _NETNS_ETC / net.client_ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"# the lab's resolver\nnameserver {plan.RESOLVER_V4}\n")


def _up(*links: str) -> Iterator[str]:
    # gso_max_size: hosts hand veth whole 64 KiB TCP super-segments (TSO/GSO),
    # which a censor's queue would count as one packet each: ten of them in
    # a 64 kbit/s throttle are 80 s of backlog. Wire-sized packets, as on a
    # real path.
    for link in links:
        yield f"link set {link} up" + ("" if link == "lo" else f" gso_max_size {_GSO_MAX}")


def _neighbours(link: str, mac: str, addresses: Sequence[str]) -> Iterator[str]:
    # Static entries: no ARP/ND round trip, and no IPv6 first-packet stall
    # while neighbour discovery runs (RFC 4861 section 7.2).
    return (f"neighbour replace {a} lladdr {mac} dev {link} nud permanent" for a in addresses)


def _batch(ns: str, commands: Sequence[str]) -> None:
    _ip("-n", ns, "-batch", "-", stdin="\n".join(commands) + "\n")


def _sysctl(ns: str, *settings: str) -> None:
    result = run_in(ns, ["sysctl", "-q", "-w", *settings], capture_output=True, text=True,
                    check=False)
    if result.returncode:
        raise LabError(f"sysctl in {ns}: {_one_line(result.stderr)}")


def _ip(*args: str, stdin: str | None = None) -> str:
    try:
        result = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LabError("the lab needs the 'ip' command: apt-get install iproute2") from None
    if result.returncode:
        raise LabError(f"ip {' '.join(args[:4])}: {_one_line(result.stderr)}")
    return result.stdout


# --------------------------------------------------------------------------
# Teardown


def _namespaces() -> list[str]:
    try:
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return []
    # Lines read "NAME" or "NAME (id: N)".
    return [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]


def _pids(ns: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(word) for word in result.stdout.split() if word.isdigit()]


def _kill(pids: Iterator[int]) -> None:
    """SIGTERM the lab's own processes (servers, censor, probe), then SIGKILL stragglers.

    Only processes living in the lab's namespaces are touched, by pid.
    """
    pending = set(pids)
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + _KILL_GRACE
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if _alive(pid)}
        time.sleep(0.02)
    for pid in pending:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        # A zombie child of ours still has a pid; reap it if it is ours.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fresh_prefix() -> str:
    existing = set(lab_prefixes())
    while True:
        prefix = PREFIX + secrets.token_hex(2)
        if prefix not in existing:
            return prefix


def _checked(prefix: str) -> str:
    if not _PREFIX_RE.fullmatch(prefix):
        raise LabError(f"{prefix!r} is not a lab prefix (plab- and up to 8 letters or digits)")
    return prefix


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"
