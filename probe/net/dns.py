"""The DNS check: one query, every response recorded.

Over UDP, TCP or HTTPS, as the resolver string says (``probe.resolver``).
Over UDP the check keeps listening for ``window`` seconds after the first
response that matches the query: injectors race the real server with
forged answers, and only the whole sequence tells that story.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver

from probe.dnsanswers import answer_chain
from probe.errors import InputError
from probe.model import DNSObservation, DNSResponse, Failure
from probe.net.backend import DialerBackend, http_client
from probe.net.clock import Clock
from probe.net.dialer import Dialer, close_stream, send
from probe.net.errors import CheckError, failure_from_exception
from probe.net.trust import TrustStore
from probe.resolver import ResolverSpec
from probe.wire.url import url_host

# RFC 8484 section 6: the media type of a DNS message over HTTPS.
DNS_MESSAGE = "application/dns-message"
# The largest DNS message (a 16-bit length, RFC 1035 section 4.2.2).
_MAX_MESSAGE = 65535
# EDNS0 buffer size recommended by DNS flag day 2020: avoids fragments.
_EDNS_PAYLOAD = 1232


async def resolve(
    name: str,
    rtype: str,
    resolver: ResolverSpec,
    dialer: Dialer,
    clock: Clock,
    timeout: float,
    window: float,
    *,
    trust: TrustStore | None = None,
) -> DNSObservation:
    """Query ``name``/``rtype``; never raises for network trouble.

    ``trust`` verifies a DoH server (default: the system store). A name
    or type that cannot be put in a query is a caller's bug: ValueError.
    """
    query = _make_query(name, rtype, resolver)
    t0 = clock.now()
    responses: list[DNSResponse] = []
    failure: Failure | None
    try:
        await _exchange(query, resolver, dialer, clock, timeout, window,
                        trust or TrustStore(), responses)
        failure = responses[0].stub_failure(dns.rdatatype.to_text(query.question[0].rdtype))
    except Exception as exc:
        failure = failure_from_exception(exc)
    return DNSObservation(
        query=name,
        rtype=rtype,
        resolver=resolver.text,
        t0=t0,
        t=clock.now(),
        failure=failure,
        responses=tuple(responses),
    )


def _make_query(name: str, rtype: str, resolver: ResolverSpec) -> dns.message.QueryMessage:
    try:
        query = dns.message.make_query(
            name, dns.rdatatype.from_text(rtype), use_edns=0, payload=_EDNS_PAYLOAD
        )
    except dns.exception.DNSException as exc:
        raise InputError(f"cannot query {name!r} {rtype}: {exc}") from None
    if resolver.protocol == "https":
        query.id = 0  # RFC 8484 section 4.1: ID 0 keeps answers cacheable
    return query


async def _exchange(
    query: dns.message.QueryMessage,
    resolver: ResolverSpec,
    dialer: Dialer,
    clock: Clock,
    timeout: float,
    window: float,
    trust: TrustStore,
    responses: list[DNSResponse],
) -> None:
    """Run the exchange, appending what arrives to ``responses``.

    Returns with at least one response, or raises.
    """

    def record(message: dns.message.Message) -> None:
        responses.append(_response(message, query, clock.now()))

    if resolver.protocol in ("system", "udp"):
        address, port = _udp_server(resolver)
        await _udp(query, address, port, dialer, timeout, window, record)
        return
    async with asyncio.timeout(timeout):
        if resolver.protocol == "tcp":
            assert resolver.address is not None
            message = await _tcp(query, resolver.address, resolver.port, dialer, timeout)
        else:
            message = await _https(query, resolver, dialer, timeout, trust)
    record(message)


def _udp_server(resolver: ResolverSpec) -> tuple[str, int]:
    if resolver.protocol == "udp":
        assert resolver.address is not None
        return resolver.address, resolver.port
    try:
        # Reads the file only; dnspython sends nothing when configuring.
        nameservers = dns.resolver.Resolver(filename=resolver.resolv_conf).nameservers
    except dns.resolver.NoResolverConfiguration as exc:
        raise CheckError(Failure.DNS_NO_RESOLVER, str(exc)) from None
    return str(nameservers[0]), 53


# Seconds before the first resend of an unanswered UDP query; it doubles.
FIRST_RESEND = 1.0


async def _udp(
    query: dns.message.QueryMessage,
    address: str,
    port: int,
    dialer: Dialer,
    timeout: float,
    window: float,
    record: Callable[[dns.message.Message], None],
) -> None:
    loop = asyncio.get_running_loop()
    endpoint = await dialer.open_udp(address, port)
    answered = False
    ignored = False  # something arrived that was not an answer to us
    wire = query.to_wire()
    try:
        endpoint.send(wire)
        deadline = loop.time() + timeout
        # Until the first answer, resend the same query (same id) with a
        # doubling interval, as stub resolvers do (RFC 1035 section 4.2.1):
        # one datagram lost on a noisy network must not read as a block.
        interval = FIRST_RESEND
        resend_at = loop.time() + interval
        while (remaining := deadline - loop.time()) > 0:
            wait = remaining if answered else min(remaining, resend_at - loop.time())
            try:
                data = await endpoint.recv(max(wait, 0.0))
            except TimeoutError:
                if answered or loop.time() >= deadline:
                    break
                endpoint.send(wire)
                interval *= 2
                resend_at = loop.time() + interval
                continue
            except OSError:
                if answered:
                    break  # an ICMP error after an answer changes nothing
                raise
            message = _parse(data, query)
            if message is None:
                ignored = True
                continue
            record(message)
            if not answered:
                answered = True
                deadline = loop.time() + window
    finally:
        endpoint.close()
    if not answered:
        if ignored:
            raise CheckError(Failure.DNS_SERVER_MISBEHAVING, "no valid response")
        raise TimeoutError(f"no response from {address} in {timeout} s")


async def _tcp(
    query: dns.message.QueryMessage, address: str, port: int, dialer: Dialer, timeout: float
) -> dns.message.Message:
    reader, writer = await dialer.open_tcp(address, port, timeout)
    try:
        wire = query.to_wire()
        # RFC 1035 section 4.2.2 / RFC 7766: a two-byte length prefix.
        await send(writer, len(wire).to_bytes(2, "big") + wire)
        length = int.from_bytes(await reader.readexactly(2), "big")
        return _expect(await reader.readexactly(length), query)
    finally:
        await close_stream(writer)


async def _https(
    query: dns.message.QueryMessage,
    resolver: ResolverSpec,
    dialer: Dialer,
    timeout: float,
    trust: TrustStore,
) -> dns.message.Message:
    assert resolver.address is not None and resolver.host is not None
    # The URL carries the address we were told to use; the name goes in
    # the Host header and SNI, and the certificate is checked against it.
    url = f"https://{url_host(resolver.address)}:{resolver.port}{resolver.path}"
    port = "" if resolver.port == 443 else f":{resolver.port}"
    headers = {
        "host": url_host(resolver.host) + port,
        "content-type": DNS_MESSAGE,
        "accept": DNS_MESSAGE,
    }
    async with http_client(DialerBackend(dialer, None), trust.context(), timeout) as client:
        async with client.stream(
            "POST", url, content=query.to_wire(), headers=headers,
            extensions={"sni_hostname": resolver.host},
        ) as response:
            if response.status_code != 200:
                raise CheckError(Failure.DNS_SERVER_MISBEHAVING,
                                 f"DoH status {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > _MAX_MESSAGE:
                    raise CheckError(Failure.DNS_SERVER_MISBEHAVING, "DoH body too long")
    return _expect(bytes(body), query)


def _parse(data: bytes, query: dns.message.QueryMessage) -> dns.message.Message | None:
    """The response to ``query`` in ``data``; None for anything else."""
    try:
        message = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError):
        return None
    # Same ID, QR set, same question (dnspython's Message.is_response).
    return message if query.is_response(message) else None


def _expect(data: bytes, query: dns.message.QueryMessage) -> dns.message.Message:
    message = _parse(data, query)
    if message is None:
        raise CheckError(Failure.DNS_SERVER_MISBEHAVING, "not a response to our query")
    return message


def _response(message: dns.message.Message, query: dns.message.QueryMessage,
              t: float) -> DNSResponse:
    question = query.question[0]
    return DNSResponse(
        t=t,
        rcode=dns.rcode.to_text(message.rcode()),
        answers=answer_chain(message, question.name, question.rdtype),
    )
