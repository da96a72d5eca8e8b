"""A censor config as an nftables ruleset and tc commands, for the censor namespace.

Pure: text and argv lists out, nothing run here (``probe_lab.censor.apply``
runs them). All rules live in one table, so removing the censor is one
``nft delete table``.

Where packets meet which rule (the censor only forwards, between ``cl0``
towards the client and ``sv0`` towards the servers):

- nat ``prerouting``: redirects (DNAT). Packets the inspector re-sends
  from the censor itself belong to a connection conntrack already knows,
  so the kernel's NAT hooks (OUTPUT included, once any nat chain exists)
  give them the same translation without a rule of their own.
- regular chain ``drops``: residual 3-tuples, blackholes, partial drops,
  UDP drops, GRE and ESP drops, random loss.
- filter ``forward``: ``drops``, then the hand-off to the inspector
  (client-to-server TCP payload on the inspected ports, and UDP that may
  open an OpenVPN session, is dropped here; the inspector saw a copy on
  ``cl0`` and re-sends what it allows through the raw-socket OUTPUT path,
  which this chain never sees).
- filter ``output``: what the inspector re-sends carries ``RELAY_MARK``
  and meets ``drops`` there, so a datagram the hand-off took is not saved
  from a drop rule by the detour (its forged packets carry no mark).
- filter ``postrouting``: throttled traffic is put in its htb class by
  ``meta priority`` (no tc filter needed: htb classifies by skb priority
  first), which also catches the inspector's re-sent packets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from probe_lab.censor.config import (
    CensorConfig,
    OpenVPNFingerprint,
    Redirect,
    Selector,
    UDPDrop,
)
from probe_lab.censor.fingerprint import FIRST_BYTES

__all__ = [
    "CLIENT_IF",
    "RELAY_MARK",
    "RESIDUAL_SETS",
    "SERVER_IF",
    "TABLE",
    "Zone",
    "ZoneError",
    "inspected_ports",
    "resolve_names",
    "ruleset",
    "tc_commands",
    "tc_teardown",
]

TABLE = "plab_censor"  # in the inet family
CLIENT_IF = "cl0"  # the censor's side of the client link (the lab contract)
SERVER_IF = "sv0"
RESIDUAL_SETS = {4: "residual4", 6: "residual6"}
RELAY_MARK = 0x706C  # "pl": packets the inspector re-sends in the client's name
_GRE, _ESP = 47, 50  # IANA protocol numbers (nft would need /etc/protocols for the names)
# htb classes of throttle rules: 1:10, 1:11 ... (1: is the root).
_FIRST_CLASS = 0x10
# Queue of a throttled class: about this many seconds of traffic at its rate.
_QUEUE_SECONDS = 0.5
_MTU = 1500


class Zone(Protocol):
    """What the rules need from the lab: its names and their addresses."""

    @property
    def addresses(self) -> Mapping[str, Sequence[str]]: ...


class ZoneError(ValueError):
    """The config names a host the lab's zone does not have."""


def inspected_ports(config: CensorConfig) -> tuple[int, ...] | None:
    """TCP ports whose client-to-server payload goes through the inspector (None: every port)."""
    ports = {p for r in config.sni_reset for p in r.ports}
    ports |= {p for r in config.http_host for p in r.ports}
    for rule in config.openvpn_fingerprint:
        if rule.protocol != "udp":
            if not rule.selector.ports:
                return None
            ports |= set(rule.selector.ports)
    return tuple(sorted(ports))


def resolve_names(config: CensorConfig, zone: Zone) -> CensorConfig:
    """The config with its trigger rules' names replaced by addresses: the inspector has no zone."""
    return replace(
        config,
        openvpn_fingerprint=tuple(
            replace(r, selector=_resolve(r.selector, zone)) for r in config.openvpn_fingerprint
        ),
    )


def ruleset(config: CensorConfig, zone: Zone) -> str:
    """The whole ``inet plab_censor`` table, for ``nft -f -``."""
    redirects = [line for r in config.redirect for line in _redirect(r, zone)]
    drops = [
        *_residual(),
        *(line for r in config.blackhole for line in _drop(_resolve(r.selector, zone), r.protocol)),
        *(line for r in config.partial for line in _partial(r.names, r.drop, r.ports, zone)),
        *(line for r in config.udp_drop for line in _udp_drop(r, zone)),
        *(line for r in config.gre_drop for line in _protocol_drop(_GRE, r.selector, zone)),
        *(line for r in config.esp_drop for line in _protocol_drop(_ESP, r.selector, zone)),
        *(line for r in config.loss for line in _loss(r.percent, _resolve(r.selector, zone))),
    ]
    openvpn = resolve_names(config, zone).openvpn_fingerprint
    forward = [
        "jump drops",
        *_handoff(inspected_ports(config)),
        *(line for r in openvpn for line in _udp_handoff(r)),
    ]
    # First matching throttle rule wins: ``accept`` ends the chain.
    postrouting = [
        line
        for i, r in enumerate(config.throttle)
        for line in _both_ways(
            _resolve(r.selector, zone), "any", f"meta priority set {_classid(i)} accept"
        )
    ]
    out = [f"table inet {TABLE} {{"]
    for version, name in RESIDUAL_SETS.items():
        kind = "ipv4_addr" if version == 4 else "ipv6_addr"
        out.append(
            f"\tset {name} {{ type {kind} . {kind} . inet_proto . inet_service; flags timeout; }}"
        )
    if redirects:
        out += _chain("prerouting", "type nat hook prerouting priority dstnat", redirects)
    out += _chain("drops", None, drops)
    out += _chain("forward", "type filter hook forward priority filter", forward)
    if config.needs_daemon:
        relayed = [f"meta mark {RELAY_MARK:#x} jump drops"]
        out += _chain("output", "type filter hook output priority filter", relayed)
    if postrouting:
        out += _chain("postrouting", "type filter hook postrouting priority filter", postrouting)
    out.append("}")
    return "\n".join(out) + "\n"


def tc_commands(config: CensorConfig) -> list[list[str]]:
    """htb on both censor interfaces: one class per throttle rule, the rest unshaped.

    htb's default class 0 sends unclassified packets straight out, so only
    the packets marked in ``postrouting`` are shaped (no netem here).
    """
    commands: list[list[str]] = []
    if not config.throttle:
        return commands
    for dev in (CLIENT_IF, SERVER_IF):
        commands.append(["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb"])
        for i, rule in enumerate(config.throttle):
            classid = _classid(i)
            rate = f"{rule.rate}bit"
            commands.append(
                ["tc", "class", "add", "dev", dev, "parent", "1:", "classid", classid, "htb",
                 "rate", rate, "ceil", rate, "quantum", str(_MTU + 14)]
            )  # fmt: skip
            limit = max(10, int(rule.rate * _QUEUE_SECONDS / 8 / _MTU))
            commands.append(
                ["tc", "qdisc", "add", "dev", dev, "parent", classid, "pfifo", "limit", str(limit)]
            )
    return commands


def _classid(index: int) -> str:
    return f"1:{_FIRST_CLASS + index:x}"


def tc_teardown(config: CensorConfig) -> list[list[str]]:
    if not config.throttle:
        return []
    return [["tc", "qdisc", "del", "dev", dev, "root"] for dev in (CLIENT_IF, SERVER_IF)]


# --------------------------------------------------------------------------
# Pieces


def _chain(name: str, hook: str | None, rules: Iterable[str]) -> list[str]:
    """A base chain (with its hook), or a regular one that others jump to (None)."""
    return [
        f"\tchain {name} {{",
        *([f"\t\t{hook}; policy accept;"] if hook else []),
        *(f"\t\t{r}" for r in rules),
        "\t}",
    ]


def _resolve(selector: Selector, zone: Zone) -> Selector:
    """The selector with its names replaced by their lab addresses."""
    if not selector.names:
        return selector
    addresses = list(selector.addresses)
    for name in selector.names:
        addresses += [a for a in _zone_addresses(name, zone) if a not in addresses]
    return Selector(tuple(addresses), (), selector.ports)


def _zone_addresses(name: str, zone: Zone) -> Sequence[str]:
    found = zone.addresses.get(name)
    if not found:
        raise ZoneError(f"censor names {name}, which has no address in the lab's zone")
    return found


def _by_family(addresses: Iterable[str]) -> dict[str, list[str]]:
    """Addresses grouped under their nftables family keyword, ip then ip6."""
    groups: dict[str, list[str]] = {}
    for a in addresses:
        version = ipaddress.ip_network(a).version
        groups.setdefault("ip" if version == 4 else "ip6", []).append(a)
    return dict(sorted(groups.items()))


def _set(items: Iterable[object]) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"


def _matches(selector: Selector, protocol: str, way: str, *, but: bool = False) -> list[str]:
    """nftables match expressions for one direction: ``to`` (daddr/dport) or ``from``.

    One expression per address family; a selector without addresses gives
    one family-less expression ("" when it selects everything). ``but``:
    every port except the selector's.
    """
    side = "d" if way == "to" else "s"
    if selector.ports:
        l4 = (
            f"{protocol} {side}port"
            if protocol != "any"
            else f"meta l4proto {{ tcp, udp }} th {side}port"
        )
        l4 += f" {'!= ' if but else ''}{_set(selector.ports)}"
    else:
        l4 = "" if protocol == "any" else f"meta l4proto {protocol}"
    if not selector.addresses:
        return [l4]
    return [
        " ".join(filter(None, (f"{family} {side}addr {_set(addresses)}", l4)))
        for family, addresses in _by_family(selector.addresses).items()
    ]


def _drop(selector: Selector, protocol: str) -> list[str]:
    # Towards the servers only: a SYN that never arrives already kills a
    # connection, and it is what a blackhole looks like from the client.
    return [f"{m} drop".lstrip() for m in _matches(selector, protocol, "to")]


def _both_ways(selector: Selector, protocol: str, action: str) -> list[str]:
    if not (selector.addresses or selector.ports):
        return [action]
    return [f"{m} {action}" for way in ("to", "from") for m in _matches(selector, protocol, way)]


def _udp_drop(rule: UDPDrop, zone: Zone) -> list[str]:
    selector = _resolve(rule.selector, zone)
    if not rule.except_ports:
        return _drop(selector, "udp")
    # By the flow's first destination port (conntrack): a DNS answer comes
    # *from* 53 to any port and must pass too. Not "udp dport != .. udp
    # sport != ..": nft merges adjacent port matches into one comparison,
    # which then spares only packets with both ports excepted.
    spared = f"ct original proto-dst != {_set(rule.except_ports)}"
    return [f"{m} {spared} drop" for m in _matches(replace(selector, ports=()), "udp", "to")]


def _protocol_drop(protocol: int, selector: Selector, zone: Zone) -> list[str]:
    return _both_ways(_resolve(selector, zone), "any", f"meta l4proto {protocol} drop")


def _loss(percent: int, selector: Selector) -> list[str]:
    return _both_ways(selector, "any", f"numgen random mod 100 < {percent} drop")


def _partial(names: Sequence[str], drop: int, ports: Sequence[int], zone: Zone) -> list[str]:
    chosen: list[str] = []
    for name in names:
        for family in _by_family(_zone_addresses(name, zone)).values():
            chosen += family[:drop]
    return _drop(Selector(tuple(chosen), (), tuple(ports)), "any")


def _redirect(rule: Redirect, zone: Zone) -> list[str]:
    selector = _resolve(rule.selector, zone)
    lines = []
    targets = {("ip" if ipaddress.ip_address(t).version == 4 else "ip6"): t for t in rule.to}
    for family, addresses in _by_family(selector.addresses).items():
        target = targets.get(family)
        if target is None:
            continue  # no address of this family to send it to: left alone
        for port in selector.ports:
            to_port = rule.to_port or port
            destination = f"{target}:{to_port}" if family == "ip" else f"[{target}]:{to_port}"
            lines.append(
                f"{family} daddr {_set(addresses)} meta l4proto {{ tcp, udp }} th dport {port} "
                f"dnat {family} to {destination}"
            )
    return lines


def _residual() -> list[str]:
    # Filled by the inspector after a trigger (``nft add element``, with the
    # rule's timeout). Only the client-to-server direction: no SYN gets through.
    return [
        f"{family} saddr . {family} daddr . meta l4proto . th dport @{RESIDUAL_SETS[v]} drop"
        for v, family in ((4, "ip"), (6, "ip6"))
    ]


def _handoff(ports: Sequence[int] | None) -> list[str]:
    """Drop client-to-server TCP segments that carry payload on the inspected ports (None: all).

    nftables cannot subtract header lengths, so there is one rule per TCP
    data offset (RFC 9293 section 3.1: 5 to 15 words): payload is present
    when the packet is longer than the IP header plus that offset. IPv4
    with options and IPv6 with extension headers are not handed off (the
    lab's stacks send neither).
    """
    if ports == ():
        return []
    dport = "" if ports is None else f"tcp dport {_set(ports)} "
    lines = []
    for ip_header, condition in ((20, "ip hdrlength 5"), (40, "ip6 nexthdr tcp")):
        for offset in range(5, 16):
            lines.append(
                f'iifname "{CLIENT_IF}" {condition} {dport}'
                f"tcp doff {offset} meta length > {ip_header + 4 * offset} drop"
            )
    return lines


def _udp_handoff(rule: OpenVPNFingerprint) -> list[str]:
    """Drop client-to-server UDP that may open an OpenVPN session, for the inspector to judge.

    Only datagrams whose first payload byte is a client reset's (the UDP
    payload starts 64 bits into the transport header): everything else on
    the watched ports never leaves the kernel.
    """
    if rule.protocol == "tcp":
        return []
    first = f"@th,64,8 {_set(f'{b:#04x}' for b in sorted(FIRST_BYTES))}"
    return [f'iifname "{CLIENT_IF}" {m} {first} drop' for m in _matches(rule.selector, "udp", "to")]
