"""What the lab needs from its machine, in one table: Debian packages and kernel features.

``probe lab doctor`` checks every row; the lab finds its programs through
:func:`find_program`, which names the package to install when one is missing;
the lab tests skip (or in CI, fail) without :func:`lab_commands`; and
.ci/run installs exactly :data:`PACKAGES` (a test compares them).

A package is present when every command it provides is found on PATH
(then in /usr/sbin and /sbin, which a non-root PATH may lack) and every
file it provides exists. A kernel feature is present when a small use of
it succeeds inside a throwaway network namespace (``unshare --net``): the
namespace, and whatever the check made in it, vanish with the process, so
checking changes nothing on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "KERNEL",
    "PACKAGES",
    "Check",
    "KernelFeature",
    "Package",
    "check_kernel",
    "check_packages",
    "find_program",
    "install_command",
    "lab_commands",
    ]

_SBIN = "/usr/sbin:/sbin"
_CHECK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Package:
    name: str  # the Debian package
    commands: tuple[str, ...]  # programs it provides, looked up on PATH
    purpose: str
    files: tuple[str, ...] = ()  # absolute paths it provides (programs off PATH, plugins)
    tests_only: bool = False  # used by the test suite's interop checks, not by a lab


@dataclass(frozen=True, slots=True)
class KernelFeature:
    name: str
    script: str  # sh, run as root in a fresh network namespace; exit 0: it works
    purpose: str
    commands: tuple[str, ...] = ()  # what the script runs (unshare aside)


PACKAGES: tuple[Package, ...] = (
    Package("iproute2", ("ip", "ss", "tc"),
            "namespaces, links, addresses and routes; listening ports; rate limits"),
    Package("procps", ("sysctl",), "forwarding and IPv6 settings in each namespace"),
    Package("nftables", ("nft",), "the censor's rules and the servers' own"),
    Package("util-linux", ("unshare",),
            "the WireGuard servers' private mounts; the doctor's kernel checks"),
    Package("mount", ("mount",), "the WireGuard servers' private /run"),
    Package("tcpdump", ("tcpdump",), "captures of the client's interface (--capture, agreement)"),
    Package("nginx", ("nginx",), "the HTTP and HTTPS servers"),
    Package("openvpn", ("openvpn",), "the OpenVPN servers"),
    Package("wireguard-go", ("wireguard-go",), "the WireGuard servers"),
    Package("charon-systemd", ("charon-systemd",), "the IKEv2 server"),
    Package("strongswan-swanctl", ("swanctl",), "loads the IKEv2 server's connection"),
    Package("libstrongswan-standard-plugins", (), "the IKEv2 server's openssl plugin",
            files=("/usr/lib/ipsec/plugins/libstrongswan-openssl.so",)),
    Package("pptpd", ("pptpd",), "the PPTP server"),
    Package("ppp", ("pppd",), "the PPP behind the PPTP and L2TP servers"),
    Package("xl2tpd", ("xl2tpd",), "the L2TP server"),
    Package("tshark", ("tshark",), "replay's cross-check against Wireshark", tests_only=True),
    Package("wireguard-tools", ("wg",), "the WireGuard codec's interop test", tests_only=True),
    Package("strongswan-charon", (), "the IKEv2 codec's interop test",
            files=("/usr/lib/ipsec/charon",), tests_only=True),
    Package("sstp-client", ("sstpc",), "the SSTP codec's interop test", tests_only=True),
)

_VETH = "ip link add doctor0 type veth peer name doctor1"
KERNEL: tuple[KernelFeature, ...] = (
    KernelFeature("network namespaces", "true", "client, censor and servers apart"),
    KernelFeature("veth pairs", _VETH, "the links between the namespaces", ("ip",)),
    KernelFeature("tun devices", "ip tuntap add dev doctor0 mode tun",
                  "the OpenVPN and WireGuard servers' devices", ("ip",)),
    KernelFeature(
        "nftables",
        "nft add table inet doctor && "
        "nft add chain inet doctor forward '{ type filter hook forward priority 0; }' && "
        "nft add rule inet doctor forward numgen random mod 100 '<' 3 drop",
        "the censor's drops, redirects, marks and random loss", ("nft",)),
    KernelFeature(
        "htb and pfifo qdiscs",
        f"{_VETH} && tc qdisc add dev doctor0 root handle 1: htb && "
        "tc class add dev doctor0 parent 1: classid 1:10 htb rate 64kbit && "
        "tc qdisc add dev doctor0 parent 1:10 pfifo limit 100",
        "the censor's throttling (this lab uses no netem)", ("ip", "tc")),
)


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the doctor's answer."""

    name: str
    purpose: str
    present: bool
    detail: str = ""  # what is missing, or why a feature was not checked


def find_program(name: str) -> str:
    """The path of one of :data:`PACKAGES`' commands; LookupError naming the
    package that provides it."""
    found = _which(name)
    if found is None:
        package = next(p.name for p in PACKAGES if name in p.commands)
        raise LookupError(f"the lab needs {name}: {install_command([package])}")
    return found


def lab_commands() -> tuple[str, ...]:
    """Every command a lab runs (the test suite's own tools left out)."""
    return tuple(c for p in PACKAGES if not p.tests_only for c in p.commands)


def install_command(packages: Iterable[str]) -> str:
    return "apt-get install -y " + " ".join(packages)


def check_packages() -> list[Check]:
    checks = []
    for package in PACKAGES:
        missing = [c for c in package.commands if _which(c) is None]
        missing += [f for f in package.files if not os.path.exists(f)]
        checks.append(Check(package.name, package.purpose, not missing, ", ".join(missing)))
    return checks


def check_kernel() -> list[Check]:
    """Root, then each feature of :data:`KERNEL` (not checked without root or their commands)."""
    root = os.geteuid() == 0
    checks = [Check("root", "creating namespaces, links and rules", root,
                    "" if root else "run as root")]
    for feature in KERNEL:
        absent = [c for c in ("unshare", *feature.commands) if _which(c) is None]
        if not root or absent:
            why = "needs root" if not root else f"needs {', '.join(absent)}"
            checks.append(Check(feature.name, feature.purpose, False, f"not checked: {why}"))
            continue
        checks.append(Check(feature.name, feature.purpose, *_try(feature.script)))
    return checks


def _try(script: str) -> tuple[bool, str]:
    argv = [find_program("unshare"), "--net", "--", "/bin/sh", "-ec", script]
    env = {**os.environ, "PATH": _search_path()}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=_CHECK_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if done.returncode:
        said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return False, said[-1] if said else f"exit status {done.returncode}"
    return True, ""


def _which(name: str) -> str | None:
    return shutil.which(name, path=_search_path())


def _search_path() -> str:
    # /usr/sbin may be missing from a non-root PATH; the lab runs as root anyway.
    return os.pathsep.join(p for p in (os.environ.get("PATH", ""), _SBIN) if p)
