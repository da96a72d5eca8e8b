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
further runs: the DNS failure is the finding. Which lookups, addresses,
ports and URL are the plan's rules in ``probe.plan``, which replay follows
too; this module carries them out on the network.
"""

from __future__ import annotations

from collections.abc import Mapping

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
from probe.net.dialer import Dialer
from probe.net.errors import CheckError
from probe.net.trust import TrustStore
from probe.plan import (
    CheckSettings,
    addresses_to_try,
    next_lookup,
    target_port,
    target_url,
)
from probe.wire.url import URL, is_ip_literal


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
        port = target_port(target)
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
        url = target_url(target)
        addresses = await self._addresses(URL.parse(url).host, out)
        if not addresses:
            return

        async def resolve(name: str) -> str:
            found = await self._addresses(name, out)
            if not found:
                last = out[-1]
                raise CheckError(last.failure or Failure.DNS_NO_ANSWER,
                                 f"{name} did not resolve")
            return found[0]

        s = self._settings
        out.append(await http.fetch(
            url, target.method, addresses[0], self._dialer, self._clock, s.http_timeout,
            self._trust, s.body_cap, s.max_redirects,
            resolve=resolve, body_contains=target.expect.body_contains,
            download_time=s.download_time if target.throughput else None,
        ))

    async def _addresses(self, host: str, out: list[Observation]) -> tuple[str, ...]:
        """The addresses of ``host`` the plan tries, recording its lookups."""
        if is_ip_literal(host):
            return (host,)
        lookups: list[DNSObservation] = []
        while (rtype := next_lookup(lookups)) is not None:
            lookups.append(await self._lookup(host, rtype))
        out.extend(lookups)
        return addresses_to_try(lookups, self._settings.max_addresses)

    async def _lookup(self, name: str, rtype: str) -> DNSObservation:
        s = self._settings
        return await dns.resolve(name, rtype, s.resolver, self._dialer, self._clock,
                                 s.dns_timeout, s.dns_window, trust=self._trust)
