"""The per-target plan's rules, without I/O: what a check does, decided once.

The live checks (``probe.net.plan.Measurer``) follow these rules on the
network; replay (``probe.replay.match``) follows them through a capture to
find the flows a check made. Both call the functions here, so the two
cannot drift:

* the settings a check runs with (``CheckSettings``);
* which lookups a connecting target makes, and when they stop
  (``next_lookup``);
* which addresses it then tries, in which order, and how many
  (``addresses_to_try``);
* the port and URL a target without them gets (``target_port``,
  ``target_url``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, zip_longest

from probe.model import DNSObservation, Failure, Target, TargetKind
from probe.resolver import ResolverSpec
from probe.wire.url import url_host

# RFC 8305 section 3: ask for both families, A first.
ADDRESS_LOOKUPS = ("A", "AAAA")
_DEFAULT_PORTS = {TargetKind.TLS: 443}
# Defaults that replay's extraction (probe.replay.engine) shares: how long
# a query waits for responses, and how many HTTP body bytes are kept.
DNS_TIMEOUT = 5.0
BODY_CAP = 1 << 20


@dataclass(frozen=True, slots=True)
class CheckSettings:
    resolver: ResolverSpec
    dns_timeout: float = DNS_TIMEOUT
    dns_window: float = 0.5  # seconds to keep listening after the first answer
    tcp_timeout: float = 8.0
    tls_timeout: float = 8.0
    http_timeout: float = 15.0
    body_cap: int = BODY_CAP
    max_redirects: int = 5
    # Seconds of body a throughput target reads at most: enough for a
    # rate, short enough that a throttled path does not hold up the run.
    download_time: float = 3.0
    # A VPN handshake with one address, resends included (probe.net.vpn).
    handshake_timeout: float = 8.0
    max_addresses: int = 4

    def timeouts(self) -> dict[str, float]:
        """The stage timeouts, as reports record them (live and replay alike)."""
        return {
            "dns": self.dns_timeout,
            "dns_window": self.dns_window,
            "tcp": self.tcp_timeout,
            "tls": self.tls_timeout,
            "http": self.http_timeout,
            "download": self.download_time,
            "handshake": self.handshake_timeout,
        }


def next_lookup(made: Sequence[DNSObservation]) -> str | None:
    """The record type to ask for after the lookups ``made`` so far, or
    None when the lookups are over.

    A name without A records may still have AAAA ones, so a lookup that
    answered or had no data goes on; any other failure (NXDOMAIN,
    timeout ...) would only repeat itself.
    """
    if len(made) == len(ADDRESS_LOOKUPS):
        return None
    if made and made[-1].failure not in (None, Failure.DNS_NO_ANSWER):
        return None
    return ADDRESS_LOOKUPS[len(made)]


def addresses_to_try(lookups: Sequence[DNSObservation], limit: int) -> tuple[str, ...]:
    """The addresses a target's checks go to, in order: A and AAAA answers
    interleaved (RFC 8305 section 4), each once, at most ``limit``."""
    found = [lookup.addresses() if lookup.failure is None else () for lookup in lookups]
    mixed = (a for a in chain.from_iterable(zip_longest(*found)) if a is not None)
    return tuple(dict.fromkeys(mixed))[:limit]


def target_port(target: Target) -> int | None:
    """The port a tcp or tls target connects to; None when it has none."""
    return target.port or _DEFAULT_PORTS.get(target.kind)


def target_url(target: Target) -> str:
    """The URL an http or https target fetches: its own, else the root of its host."""
    return target.url or f"{target.kind}://{url_host(target.host)}/"
