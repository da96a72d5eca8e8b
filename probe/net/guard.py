"""PROBE_ALLOW_NETWORKS: which destinations the dialer may talk to.

The lab and the tests run the probe on machines whose only permitted
traffic is loopback or the lab's namespaces; this guard makes "never
send a packet elsewhere" a property of the dialer rather than a hope.
Unset means no restriction (a volunteer's normal run).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from probe.errors import InputError
from probe.model import Failure
from probe.net.errors import CheckError

ENV = "PROBE_ALLOW_NETWORKS"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowListError(InputError):
    """PROBE_ALLOW_NETWORKS does not parse; the message is one line."""


class AddressNotAllowedError(CheckError):
    def __init__(self, address: str) -> None:
        super().__init__(Failure.ADDRESS_NOT_ALLOWED, f"{address} is outside {ENV}")


@dataclass(frozen=True, slots=True)
class AllowList:
    """Permitted destination networks; ``None`` permits everything."""

    networks: tuple[Network, ...] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AllowList:
        value = environ.get(ENV)
        return cls() if value is None else cls.parse(value)

    @classmethod
    def parse(cls, value: str) -> AllowList:
        """Comma-separated CIDRs (a bare address means a single host)."""
        networks: list[Network] = []
        for position, entry in enumerate(value.split(","), start=1):
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise AllowListError(
                    f"{ENV}: entry {position} {text!r} is not a network in CIDR "
                    "form (e.g. 127.0.0.0/8,::1/128)"
                ) from None
        return cls(tuple(networks))

    def permits(self, address: str) -> bool:
        """Whether ``address`` (an IP literal) may be dialled."""
        if self.networks is None:
            return True
        ip = ipaddress.ip_address(address)
        # ::ffff:a.b.c.d on an AF_INET6 socket reaches the IPv4 host a.b.c.d.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def check(self, address: str) -> None:
        """Raise :class:`AddressNotAllowedError` unless ``address`` is permitted."""
        if not self.permits(address):
            raise AddressNotAllowedError(address)
