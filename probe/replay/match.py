"""Targets of a test list matched to the flows of a capture.

For each target this rebuilds the observation tuple the live plan
(``probe.net.plan``) would have produced, in the same order, from the
flows that carried that target's traffic. Which lookups, addresses, ports
and URLs a target has are the plan's own rules (``probe.plan``), and URLs
are read and joined as the live client does (``probe.wire.url``):

* dns: the lookup of the target's name and record type;
* tcp / tls: the A lookup (and AAAA after an A that answered or had no
  data), then per address, in the plan's order (A and AAAA interleaved,
  at most ``max_addresses``), the connection to that address and port:
  its connect (and its handshake, for tls);
* http / https: the lookups of the URL's host, the lookups of redirect
  hosts, then one HTTP observation for the fetch and its redirects;
* VPN kinds: the lookups, then per address the handshake: its UDP flow,
  or its TCP connection (connect and handshake), whose client opened with
  the protocol's first message (``probe.replay.handshake``).

Flows are matched by name (DNS question, TLS SNI, HTTP Host) and by
address and port (the addresses the target's lookups returned). A
connection serves one target only; lookups may serve several (targets
on one host share its answers). When the same name was looked up several
times, a target takes the A and AAAA lookups that chain in time to its
first connection as the plan makes them (``_own_lookups``), else the
lookup made last before it, so each target reads the answers its
connections were made with.

Targets are matched in a fixed order, the most particular first
(controls, then dns, tcp, tls, VPN, http/https, each in list order), not in
the order a run happens to measure them: a TLS check's ClientHello
carries exactly the target's ALPN list and its connection never carries
data, so it is told apart from an HTTPS request to the same server
before the request, less particular, takes what is left.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from probe.model import (
    VPN_KINDS,
    DNSObservation,
    Failure,
    Observation,
    Target,
    TargetKind,
)
from probe.plan import (
    ADDRESS_LOOKUPS,
    CheckSettings,
    addresses_to_try,
    next_lookup,
    target_port,
    target_url,
)
from probe.replay import handshake
from probe.replay.observe import (
    FetchRequest,
    Judge,
    dns_observation,
    handshake_outcome,
    http_observation,
    tcp_observation,
    tls_observation,
)
from probe.replay.records import DNSExchange, HTTPExchange, TCPConnection, UDPFlow
from probe.wire import WireError
from probe.wire.http1 import header
from probe.wire.url import URL, is_ip_literal

Flow = TCPConnection | UDPFlow

# The statuses whose Location the live client (httpx) follows (RFC 9110
# section 15.4); tests/replay/test_match.py holds this to httpx's own.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _address(text: str) -> str:
    """One spelling per address (DNS answers and packets format IPv6 apart)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _start(flow: Flow) -> float:
    if isinstance(flow, TCPConnection) and flow.t_syn is not None:
        return flow.t_syn
    return flow.t_first


class FlowIndex:
    """The capture's DNS exchanges, TCP connections and UDP flows, searchable."""

    def __init__(
        self, exchanges: Sequence[DNSExchange], connections: Sequence[TCPConnection],
        settings: CheckSettings, capture_end: float, judge: Judge | None = None,
        datagrams: Sequence[UDPFlow] = (),
    ) -> None:
        self.settings = settings
        self.capture_end = capture_end
        self.judge = judge
        self._lookups: dict[tuple[str, str], list[DNSExchange]] = defaultdict(list)
        for exchange in sorted(exchanges, key=lambda e: e.t0):
            self._lookups[(exchange.name.rstrip(".").lower(), exchange.rtype.upper())].append(
                exchange
            )
        self._connections: dict[tuple[str, int], list[TCPConnection]] = defaultdict(list)
        for conn in sorted(connections, key=_start):
            self._connections[(_address(conn.server), conn.server_port)].append(conn)
        self._datagrams: dict[tuple[str, int], list[UDPFlow]] = defaultdict(list)
        for flow in sorted(datagrams, key=_start):
            self._datagrams[(_address(flow.server), flow.server_port)].append(flow)
        self._claimed: set[int] = set()
        self._claimed_lookups: set[int] = set()

    # -- DNS -----------------------------------------------------------------

    def lookups(self, name: str, rtype: str, *, before: float | None = None,
                after: float | None = None) -> list[DNSExchange]:
        """The lookups of (name, rtype) started between ``after`` and ``before``, in time order."""
        return [
            e for e in self._lookups.get((name.rstrip(".").lower(), rtype.upper()), [])
            if (after is None or e.t0 >= after) and (before is None or e.t0 <= before)
        ]

    def lookup(self, name: str, rtype: str, *, before: float | None = None,
               after: float | None = None) -> DNSExchange | None:
        """The lookup of (name, rtype): the last one started before ``before``
        (and after ``after``) when given, else the first not yet used."""
        found = self.lookups(name, rtype, after=after)
        if before is not None:
            earlier = [e for e in found if e.t0 <= before]
            return earlier[-1] if earlier else None
        for exchange in found:
            if id(exchange) not in self._claimed_lookups:
                self._claimed_lookups.add(id(exchange))
                return exchange
        return found[-1] if found else None

    def answered(self, name: str) -> set[str]:
        """Every address any lookup of ``name`` returned (any response)."""
        key = name.rstrip(".").lower()
        return {
            _address(answer.data)
            for rtype in ("A", "AAAA")
            for exchange in self._lookups.get((key, rtype), [])
            for response in exchange.responses
            for answer in response.answers
            if answer.rtype in ("A", "AAAA")
        }

    def observe_lookup(self, exchange: DNSExchange) -> DNSObservation:
        return dns_observation(exchange, self.settings, self.capture_end)

    # -- TCP -----------------------------------------------------------------

    def connections(self, address: str, port: int) -> list[TCPConnection]:
        return [c for c in self._connections.get((_address(address), port), [])
                if id(c) not in self._claimed]

    def datagrams(self, address: str, port: int) -> list[UDPFlow]:
        """The UDP flows to ``address`` and ``port`` not yet claimed."""
        return [f for f in self._datagrams.get((_address(address), port), [])
                if id(f) not in self._claimed]

    def claim(self, flow: Flow) -> None:
        self._claimed.add(id(flow))


def addresses_for(
    index: FlowIndex, host: str, first: Flow | None, out: list[Observation],
    after: float | None = None,
) -> tuple[str, ...]:
    """``probe.net.plan.Measurer._addresses`` replayed: the lookups are
    appended to ``out``, the addresses come back in the plan's order.

    ``first``: the check's first connection, made after its lookups;
    ``after``: the first lookups after that time; neither: the first not
    yet used.
    """
    if is_ip_literal(host):
        return (host,)
    lookups = _own_lookups(index, host, first) if first is not None else []
    if not lookups:
        anchor = _start(first) if first is not None else None
        while (rtype := next_lookup(lookups)) is not None:
            exchange = index.lookup(host, rtype, before=anchor, after=after)
            if exchange is None:
                break
            lookups.append(index.observe_lookup(exchange))
            after = exchange.t0
    out.extend(lookups)
    return addresses_to_try(lookups, index.settings.max_addresses)


def _own_lookups(index: FlowIndex, host: str, first: Flow) -> list[DNSObservation]:
    """The lookups a check made before its ``first`` connection.

    The plan asks A, then AAAA once the A lookup is over (its listening
    window included), then connects, first to the first address, once the
    AAAA lookup is over. Checks of one name run side by side (other ports,
    dns targets) and their lookups interleave; of the chains that fit
    those times, the latest whose first address is the one ``first``
    went to is the check's own (a name's answers may come in another order
    each time). Empty when no chain fits.
    """
    anchor = _start(first)
    fitting: list[list[DNSObservation]] = []
    first_type, second_type = ADDRESS_LOOKUPS
    for exchange in reversed(index.lookups(host, first_type, before=anchor)):
        lookup = index.observe_lookup(exchange)
        if lookup.t > anchor:
            continue
        if next_lookup([lookup]) is None:
            fitting.append([lookup])
            continue
        for following in index.lookups(host, second_type, before=anchor, after=lookup.t):
            second = index.observe_lookup(following)
            if second.t <= anchor:
                fitting.append([lookup, second])
    leading = _address(first.server)
    limit = index.settings.max_addresses
    return next(
        (c for c in fitting if [_address(a) for a in addresses_to_try(c, limit)[:1]] == [leading]),
        fitting[0] if fitting else [],
    )


# A VPN handshake's flow is recognised by its first message, an HTTPS
# fetch's by a server name an SSTP handshake may share: VPN goes first.
_MATCHING_ORDER = {
    TargetKind.DNS: 0, TargetKind.TCP: 1, TargetKind.TLS: 2,
    **{kind: 3 for kind in VPN_KINDS},
    TargetKind.HTTP: 4, TargetKind.HTTPS: 4,
}


class ReplayMeasurer:
    """The runner's ``Measurer`` for a capture: each target's observations
    come from the flows instead of the network.

    ``targets`` (controls first) are matched at once, in the module's
    fixed order; ``measure`` hands out the result for each. ``keys`` are
    the list's VPN keys, as the live run had them.
    """

    def __init__(self, index: FlowIndex, targets: Iterable[Target],
                 keys: Mapping[str, str] | None = None) -> None:
        self._index = index
        self._keys = keys or {}
        ordered = sorted(enumerate(targets), key=lambda it: (_MATCHING_ORDER[it[1].kind], it[0]))
        self._observed = {id(target): self.observations(target) for _, target in ordered}

    async def measure(self, target: Target) -> tuple[Observation, ...]:
        return self._observed[id(target)]

    def observations(self, target: Target) -> tuple[Observation, ...]:
        out: list[Observation] = []
        if target.kind is TargetKind.DNS:
            exchange = self._index.lookup(target.host, target.rtype)
            if exchange is not None:
                out.append(self._index.observe_lookup(exchange))
        elif target.kind in (TargetKind.HTTP, TargetKind.HTTPS):
            self._http(target, out)
        elif target.kind in (TargetKind.TCP, TargetKind.TLS):
            self._connect(target, out)
        else:
            self._handshakes(target, out)
        return tuple(out)

    # -- tcp / tls / VPN -----------------------------------------------------------

    def _connect(self, target: Target, out: list[Observation]) -> None:
        index = self._index
        port = target_port(target)
        if port is None:
            return
        sni = target.sni or target.host
        fits = _fits_tls(sni, target.alpn) if target.kind is TargetKind.TLS else _fits_tcp

        def observe(conn: Flow) -> Sequence[Observation]:
            assert isinstance(conn, TCPConnection)
            if target.kind is TargetKind.TCP:
                return (tcp_observation(conn, index.settings, index.capture_end),)
            return tls_observation(conn, sni, target.alpn, index.settings, index.capture_end,
                                   index.judge)

        self._per_address(
            target, lambda address: [c for c in index.connections(address, port) if fits(c)],
            observe, out,
        )

    def _handshakes(self, target: Target, out: list[Observation]) -> None:
        index = self._index
        port = target.port
        if port is None:
            return
        flows = index.datagrams if target.transport == "udp" else index.connections

        def observe(flow: Flow) -> Sequence[Observation]:
            return handshake.handshake_observations(
                target, flow, self._keys, index.settings.handshake_timeout, index.capture_end)

        self._per_address(
            target,
            lambda address: [f for f in flows(address, port) if handshake.fits(target, f)
                             and (not isinstance(f, TCPConnection) or _opened(f))],
            observe, out,
        )

    def _per_address(
        self, target: Target, candidates: Callable[[str], Sequence[Flow]],
        observe: Callable[[Flow], Sequence[Observation]], out: list[Observation],
    ) -> None:
        """The plan's lookups, then per address the flow that fits the
        target (``candidates``) and what the check made of it (``observe``)."""
        index = self._index
        possible = (
            {target.host} if is_ip_literal(target.host) else index.answered(target.host)
        )
        first = min(
            (c for address in possible for c in candidates(address)), key=_start, default=None
        )
        addresses = addresses_for(index, target.host, first, out)
        # The plan connects after its lookups, to one address after the other.
        since = max((o.t0 for o in out), default=0.0)
        for address in addresses:
            flow = next((c for c in candidates(address) if _start(c) >= since), None)
            if flow is None:
                continue  # not in the capture (the guard, or a capture filter)
            index.claim(flow)
            since = _start(flow)
            out.extend(observe(flow))

    # -- http / https ------------------------------------------------------------

    def _http(self, target: Target, out: list[Observation]) -> None:
        index = self._index
        url = target_url(target)
        parsed = URL.parse(url)
        host = parsed.host
        first = self._first_request(parsed, host, _port(parsed))
        lookups: list[Observation] = []
        addresses = addresses_for(index, host, first, lookups)
        out.extend(lookups)
        if not addresses or first is None or _address(first.server) != _address(addresses[0]):
            return
        hops, failure = self._follow(parsed, first, host, addresses[0], out)
        if hops and not self._opaque(hops[-1]):
            out.append(http_observation(
                url, target.method, hops, index.settings, index.capture_end,
                target.expect.body_contains, failure, index.judge,
                index.settings.download_time if target.throughput else None,
            ))

    def _opaque(self, hop: FetchRequest) -> bool:
        """An HTTPS request whose handshake worked but whose HTTP is
        encrypted (no key log): what the server answered is unknown, so
        no HTTP observation is made rather than a wrong one."""
        if not hop.tls or hop.exchange is not None:
            return False
        index = self._index
        return handshake_outcome(hop.conn, index.settings.http_timeout,
                                 index.capture_end, index.judge).failure is None

    def _first_request(self, url: URL, host: str, port: int) -> TCPConnection | None:
        index = self._index
        possible = {host} if is_ip_literal(host) else index.answered(host)
        candidates = [
            c for address in possible for c in index.connections(address, port)
            if _fits_request(c, url)
        ]
        return min(candidates, key=_start, default=None)

    def _follow(
        self, url: URL, conn: TCPConnection, host: str, address: str,
        out: list[Observation],
    ) -> tuple[list[FetchRequest], Failure | None]:
        """The hops of a fetch: each request, and the redirect it got.

        Redirects are followed as ``probe.net.http`` follows them: a new
        host is looked up (those lookups join ``out``), the original host
        keeps its address, and a connection the server kept open may
        carry the next request. The failure is one the redirects caused
        (too many, or a Location the client refuses), else None.
        """
        index = self._index
        hops: list[FetchRequest] = []
        exchange = _exchange_for(conn, url)
        for _ in range(index.settings.max_redirects + 1):
            index.claim(conn)
            hops.append(FetchRequest(str(url), conn, exchange, url.scheme == "https"))
            location = header(exchange.headers, "location") if exchange else None
            if exchange is None or exchange.status not in _REDIRECTS or not location:
                return hops, None
            try:
                url = url.join(location)
            except WireError:
                # The client refuses it too: RemoteProtocolError, in the live check.
                return hops, Failure.HTTP_INVALID_RESPONSE
            port = _port(url)
            new_host = url.host
            if new_host.lower() != host.lower():
                lookups: list[Observation] = []
                found = addresses_for(index, new_host, None, lookups,
                                      after=exchange.t_response)
                out.extend(lookups)
                if not found:
                    return hops, None
                address = found[0]
            same = (_address(conn.server), conn.server_port) == (_address(address), port)
            reused = _exchange_for(conn, url, after=exchange.t_request) if same else None
            if reused is not None:
                exchange = reused
                continue
            later = [c for c in index.connections(address, port)
                     if _start(c) >= _start(conn) and _fits_request(c, url)]
            if not later:
                return hops, None  # the next request is not in the capture
            conn = later[0]
            exchange = _exchange_for(conn, url)
        return hops, Failure.HTTP_TOO_MANY_REDIRECTS


def _opened(conn: TCPConnection) -> bool:
    """The capture saw the client open it. A connection without a SYN is
    no check's: the end of one begun before the capture, or packets of a
    closed one (a throttled server still retransmitting into a reset)."""
    return conn.t_syn is not None


def _fits_tcp(conn: TCPConnection) -> bool:
    """The TCP check connects and closes without sending a byte."""
    return _opened(conn) and conn.bytes_client == 0


def _fits_tls(sni: str, alpn: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The TLS check offers exactly the target's ALPN list (none when it
    has none) and sends no application data."""
    def fits(conn: TCPConnection) -> bool:
        if not _opened(conn):
            return False
        if conn.tls is None or conn.tls.client_hello is None:
            return conn.bytes_client == 0  # a connect that failed, or no hello
        hello = conn.tls.client_hello
        return ((hello.sni or "").lower() == sni.lower() and hello.alpn == tuple(alpn)
                and conn.tls.app_bytes_client == 0)
    return fits


def _port(url: URL) -> int:
    """The port a fetch of ``url`` connects to (the live client refuses
    schemes other than http and https: such a hop is not in a capture)."""
    return url.port or (443 if url.scheme == "https" else 80)


def _fits_request(conn: TCPConnection, url: URL) -> bool:
    host = url.host.lower()
    if conn.bytes_client == 0:
        return True  # the connect (or the handshake) failed
    if url.scheme == "https":
        tls = conn.tls
        hello = tls.client_hello if tls is not None else None
        if hello is None or (hello.sni or "").lower() != host:
            return False
        # A handshake after which the client sent nothing was a TLS check:
        # a fetch sends its request as soon as the handshake is done.
        assert tls is not None
        return tls.t_done is None or tls.app_bytes_client > 0
    return _exchange_for(conn, url) is not None


def _exchange_for(
    conn: TCPConnection, url: URL, after: float | None = None
) -> HTTPExchange | None:
    """The first request on ``conn`` for ``url`` (after ``after``)."""
    target = url.target
    host = url.host.lower()
    for exchange in conn.http:
        if after is not None and exchange.t_request <= after:
            continue
        sent = (exchange.host or "").lower()
        sent_host = sent[1:].partition("]")[0] if sent.startswith("[") else sent.split(":")[0]
        if exchange.target == target and sent_host == host:
            return exchange
    return None
