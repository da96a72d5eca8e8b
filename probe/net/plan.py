"""Per-target plan: which checks run, in which order, on which addresses.

One target in, its observations out, in the order they happened:

* dns: one lookup of the target's record type;
* tcp: A (and AAAA) lookups, then a connect to each address;
* tls: the lookups, then per address one connection carrying the
  handshake (recorded as its connect and its handshake);
* http/https: the lookups, then one fetch pinned to the first address
  (a redirect's new host gets its own, recorded, lookups);
* VPN kinds: the lookups, then per address the protocol's first exchange
  (over TCP: its connect, then the exchange; see probe.net.vpn).

An IP literal host skips DNS. When the lookups give no address, nothing
further runs: the DNS failure is the finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain, zip_longest

import httpx

from probe.model import (
    VPN_KINDS,
    DNSObservation,
    Failure,
    Observation,
    Target,
    TargetKind,
)
from probe.net import dns, http, tcp, tls, vpn
from probe.net.clock import Clock
from probe.net.dialer import Dialer, is_ip_literal, url_host
from probe.net.errors import CheckError
from probe.net.trust import TrustStore

_DEFAULT_PORTS = {TargetKind.TLS: 443}


@dataclass(frozen=True, slots=True)
class CheckSettings:
    resolver: dns.ResolverSpec
    dns_timeout: float = 5.0
    dns_window: float = 0.5  # seconds to keep listening after the first answer
    tcp_timeout: float = 8.0
    tls_timeout: float = 8.0
    http_timeout: float = 15.0
    body_cap: int = 1 << 20
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


class Measurer:
    def __init__(
        self, settings: CheckSettings, dialer: Dialer, clock: Clock, trust: TrustStore,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._dialer = dialer
        self._clock = clock
        self._trust = trust
        self._keys = keys or {}  # the test list's VPN keys, by name

    async def measure(self, target: Target) -> tuple[Observation, ...]:
        """Run the target's checks; network trouble becomes observations."""
        out: list[Observation] = []
        if target.kind is TargetKind.DNS:
            out.append(await self._lookup(target.host, target.rtype))
        elif target.kind in (TargetKind.HTTP, TargetKind.HTTPS):
            await self._http(target, out)
        elif target.kind in VPN_KINDS:
            await self._handshakes(target, out)
        else:
            await self._connect(target, out)
        return tuple(out)

    async def _connect(self, target: Target, out: list[Observation]) -> None:
        s = self._settings
        port = target.port or _DEFAULT_PORTS.get(target.kind)
        if port is None:
            raise ValueError(f"target {target.id}: a {target.kind} target needs a port")
        for address in await self._addresses(target.host, out):
            if target.kind is TargetKind.TCP:
                out.append(await tcp.connect(address, port, self._dialer, self._clock,
                                             s.tcp_timeout))
            else:
                out.extend(await tls.connect_and_handshake(
                    address, port, target.sni or target.host, target.alpn,
                    self._dialer, self._clock, s.tls_timeout, self._trust,
                ))

    async def _handshakes(self, target: Target, out: list[Observation]) -> None:
        assert target.port is not None  # the loader gives every VPN target its port
        for address in await self._addresses(target.host, out):
            out.extend(await vpn.handshake(
                target, address, target.port, self._keys, self._dialer, self._clock,
                self._settings.handshake_timeout,
            ))

    async def _http(self, target: Target, out: list[Observation]) -> None:
        url = target.url or f"{target.kind}://{url_host(target.host)}/"
        host = httpx.URL(url).raw_host.decode("ascii")
        addresses = await self._addresses(host, out)
        if not addresses:
            return

        async def resolve(name: str) -> str:
            found = await self._addresses(name, out)
            if not found:
                last = out[-1]
                raise CheckError(last.failure or Failure.DNS_NO_ANSWER,
                                 f"{name} did not resolve")
            return found[0]

        out.append(await http.fetch(
            url, target.method, addresses[0], self._dialer, self._clock,
            self._settings.http_timeout, self._trust, self._settings.body_cap,
            resolve=resolve, body_contains=target.expect.body_contains,
            download_time=self._settings.download_time if target.throughput else None,
        ))

    async def _addresses(self, host: str, out: list[Observation]) -> tuple[str, ...]:
        """Addresses of ``host``, recording the lookups; A and AAAA
        interleaved (RFC 8305 section 4) and capped at max_addresses."""
        if is_ip_literal(host):
            return (host,)
        found: list[tuple[str, ...]] = []
        for rtype in ("A", "AAAA"):
            lookup = await self._lookup(host, rtype)
            out.append(lookup)
            found.append(lookup.addresses() if lookup.failure is None else ())
            # A name without A records may still have AAAA ones; any other
            # failure (NXDOMAIN, timeout...) would only repeat itself.
            if lookup.failure not in (None, Failure.DNS_NO_ANSWER):
                break
        mixed = (a for a in chain.from_iterable(zip_longest(*found)) if a is not None)
        return tuple(dict.fromkeys(mixed))[: self._settings.max_addresses]

    async def _lookup(self, name: str, rtype: str) -> DNSObservation:
        s = self._settings
        return await dns.resolve(name, rtype, s.resolver, self._dialer, self._clock,
                                 s.dns_timeout, s.dns_window, trust=self._trust)
