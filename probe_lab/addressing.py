"""The lab's address plan: which documentation address each lab name gets.

Only documentation ranges are used (RFC 5737 for IPv4, RFC 3849 for IPv6),
inside namespaces the lab creates, so nothing here can reach or shadow a
real host. The client side is 198.51.100.0/24 and 2001:db8:c::/64, the
server side 203.0.113.0/24 and 2001:db8:5::/64.

Server addresses come from a pool of host numbers 10-250, the same digits
in both families (203.0.113.42 and 2001:db8:5::42), so a capture is easy
to read. Lab names get numbers from 10 up in name order; 200-250 are never
handed out, so a scenario can name them (e.g. a second address for a name)
without colliding with a name that a future test list adds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

from probe.errors import InputError
from probe.lists import default_testlists, example_testlists, load_testlist

__all__ = [
    "CENSOR_CLIENT_V4",
    "CENSOR_CLIENT_V6",
    "CENSOR_SERVER_V4",
    "CENSOR_SERVER_V6",
    "CLIENT_V4",
    "CLIENT_V6",
    "LAB_ALLOW_NETWORKS",
    "LAB_PREFIXES",
    "POOL",
    "RESOLVER_V4",
    "RESOLVER_V6",
    "SPARE",
    "address_plan",
    "lab_names",
    "pool_addresses",
    "server_address",
]

CLIENT_V4, CLIENT_V6 = "198.51.100.2", "2001:db8:c::2"
CENSOR_CLIENT_V4, CENSOR_CLIENT_V6 = "198.51.100.1", "2001:db8:c::1"
CENSOR_SERVER_V4, CENSOR_SERVER_V6 = "203.0.113.1", "2001:db8:5::1"
RESOLVER_V4, RESOLVER_V6 = "203.0.113.53", "2001:db8:5::53"
CLIENT_PREFIX_LEN_V4, CLIENT_PREFIX_LEN_V6 = 24, 64

_RESOLVER_HOST = 53
# Host numbers of the server namespace's pool; the resolver's number is kept apart.
POOL = tuple(n for n in range(10, 251) if n != _RESOLVER_HOST)
# Never given to a name by the plan: free for scenarios to use.
SPARE = tuple(n for n in POOL if n >= 200)
_NAMED = tuple(n for n in POOL if n < 200)

# What the probe inside the lab may dial (its PROBE_ALLOW_NETWORKS).
LAB_ALLOW_NETWORKS = "198.51.100.0/24,203.0.113.0/24,2001:db8::/32"
# The lab's server ranges, given to the probe as expected prefixes: lab
# answers are documentation addresses, which are bogons otherwise.
LAB_PREFIXES = "203.0.113.0/24,2001:db8:5::/64"


def server_address(host: int, version: int) -> str:
    """Pool address ``host`` of the given IP version (4 or 6)."""
    if version == 4:
        return f"203.0.113.{host}"
    return str(ipaddress.IPv6Address(f"2001:db8:5::{host}"))


def pool_addresses() -> tuple[str, ...]:
    """Every address the server namespace holds (resolver first)."""
    hosts = (_RESOLVER_HOST, *POOL)
    return tuple(server_address(h, v) for h in hosts for v in (4, 6))


def lab_lists() -> tuple[Path, ...]:
    """The lists every lab serves and every scenario judges: the shipped ones
    and the shipped templates (own-vpn.yaml names one server per VPN protocol)."""
    return (*default_testlists(), *example_testlists())


def lab_names(extra_lists: Iterable[str] = ()) -> tuple[str, ...]:
    """Every host name of the lab's lists and ``extra_lists``, controls included, sorted."""
    paths = [*lab_lists(), *extra_lists]
    names: set[str] = set()
    for path in paths:
        testlist = load_testlist(path)
        targets = [*testlist.controls, *(t for f in testlist.features for t in f.targets)]
        names.update(t.host for t in targets)
    return tuple(sorted(names))


def address_plan(names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Name -> (IPv4, IPv6) from the pool, in name order; ValueError if the pool runs out."""
    ordered = sorted(set(names))
    if len(ordered) > len(_NAMED):
        raise InputError(f"the lab has addresses for {len(_NAMED)} names, not {len(ordered)}")
    return {
        name: (server_address(host, 4), server_address(host, 6))
        for name, host in zip(ordered, _NAMED, strict=False)
    }
