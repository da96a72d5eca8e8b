"""Which answer addresses no public service can have (bogons).

A censor that answers a query with a private, loopback or otherwise
special-purpose address (RFC 6890's registry) sends the client nowhere or
to its own box; no real service publishes such an address in public DNS.
The list author's ``expect.prefixes`` always win: an address inside them is
never a bogon (the lab serves its names from the documentation ranges).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_BOGONS: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(cidr), label)
    for cidr, label in (
        ("0.0.0.0/8", "'this network', RFC 791 §3.2"),
        ("10.0.0.0/8", "private-use, RFC 1918"),
        ("100.64.0.0/10", "shared address space (CGNAT), RFC 6598"),
        ("127.0.0.0/8", "loopback, RFC 1122 §3.2.1.3"),
        ("169.254.0.0/16", "link-local, RFC 3927"),
        ("172.16.0.0/12", "private-use, RFC 1918"),
        ("192.0.0.0/24", "IETF protocol assignments, RFC 6890"),
        ("192.0.2.0/24", "documentation (TEST-NET-1), RFC 5737"),
        ("192.168.0.0/16", "private-use, RFC 1918"),
        ("198.18.0.0/15", "benchmarking, RFC 2544"),
        ("198.51.100.0/24", "documentation (TEST-NET-2), RFC 5737"),
        ("203.0.113.0/24", "documentation (TEST-NET-3), RFC 5737"),
        ("224.0.0.0/4", "multicast, RFC 5771"),
        ("240.0.0.0/4", "reserved, RFC 1112 §4"),
        ("::/128", "unspecified, RFC 4291 §2.5.2"),
        ("::1/128", "loopback, RFC 4291 §2.5.3"),
        ("100::/64", "discard-only, RFC 6666"),
        ("2001:db8::/32", "documentation, RFC 3849"),
        ("fc00::/7", "unique local, RFC 4193"),
        ("fe80::/10", "link-local, RFC 4291 §2.5.6"),
        ("ff00::/8", "multicast, RFC 4291 §2.7"),
    )
)


def parse_address(text: str) -> Address | None:
    """The address in a DNS answer, or None if the data is not one.

    IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2) are unwrapped so that
    ``::ffff:10.0.0.1`` is judged like ``10.0.0.1``.
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def parse_networks(prefixes: Iterable[str]) -> tuple[Network, ...]:
    """The expected prefixes as networks. The test list loader reports a
    malformed prefix with its position; here one is skipped rather than
    crash a run's classification over an expectation."""
    networks: list[Network] = []
    for prefix in prefixes:
        try:
            networks.append(ipaddress.ip_network(prefix, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def within(address: Address, networks: Iterable[Network]) -> bool:
    return any(
        address.version == network.version and address in network
        for network in networks
    )


def bogon_label(address: Address, expected: Iterable[Network]) -> str | None:
    """Why ``address`` cannot be a public service's, or None if it can."""
    if within(address, expected):
        return None
    for network, label in _BOGONS:
        if address.version == network.version and address in network:
            return f"{network}: {label}"
    return None


def family(address: Address | None) -> str:
    if address is None:
        return "unparsed"
    return f"IPv{address.version}"


def endpoint(address: str, port: int) -> str:
    """``addr:port``, with IPv6 literals bracketed (RFC 3986 §3.2.2)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
