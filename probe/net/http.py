"""The HTTP check: one request, its redirects followed by hand.

Redirects are followed here, not by httpx, so that every hop is
recorded (a block page often hides behind a redirect) and so that each
new host is looked up by the caller's measured resolver rather than by
the system's.

Only facts that say what the server served are kept: status, headers,
body length and hash, title. Every IP literal in them is scrubbed unless
it is a server the check dialled (see ``probe.net.scrub``).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from probe.httpbody import content_charset, find_in_body, page_title
from probe.model import Failure, HTTPHop, HTTPObservation, Transfer
from probe.net.backend import DialerBackend, Resolve, http_client
from probe.net.clock import Clock
from probe.net.dialer import Dialer
from probe.net.errors import CheckError, failure_from_exception
from probe.net.scrub import scrub
from probe.net.trust import TrustStore

# Servers and middleboxes treat library user agents differently from
# browsers; the probe measures what a volunteer's browser would get.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
_HEADERS = {
    "user-agent": USER_AGENT,
    "accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    # Bytes as sent (RFC 9110 section 12.5.3): the hash does not depend on
    # a decoder, and no compressed body can expand past body_cap.
    "accept-encoding": "identity",
}


@dataclass(slots=True)
class _Final:
    """What the last response said (mutable while it is being read)."""

    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    charset: str | None = None
    transfer: Transfer | None = None


async def fetch(
    url: str,
    method: str,
    address: str | None,
    dialer: Dialer,
    clock: Clock,
    timeout: float,
    trust: TrustStore,
    body_cap: int = 1 << 20,
    max_redirects: int = 5,
    *,
    resolve: Resolve,
    body_contains: str | None = None,
    download_time: float | None = None,
) -> HTTPObservation:
    """Fetch ``url``; never raises for network trouble.

    The URL's host goes to ``address`` when given (the address the DNS
    check measured); any other host name, from a redirect or when
    ``address`` is None, is looked up with ``resolve``. ``timeout``
    bounds the whole exchange, redirects included. ``body_contains``
    (the target's expectation) is looked for in the final body, as
    UTF-8 bytes, since the body itself is not kept. With
    ``download_time`` the final body is also timed (a throughput
    measurement) and reading stops after that many seconds of it.
    """
    t0 = clock.now()
    # httpcore hands the backend the ASCII (IDNA) form of the host.
    host = httpx.URL(url).raw_host.decode("ascii").lower()

    async def address_for(name: str) -> str:
        if address is not None and name.lower() == host:
            return address
        return await resolve(name)

    backend = DialerBackend(dialer, address_for)
    hops: list[HTTPHop] = []
    final = _Final()
    failure: Failure | None = None
    try:
        async with asyncio.timeout(timeout):
            async with http_client(backend, trust.context(), timeout) as client:
                request = client.build_request(method, url, headers=_HEADERS)
                reader = _BodyReader(clock, body_cap, download_time)
                await _follow(client, request, max_redirects, reader, hops, final)
    except Exception as exc:
        failure = failure_from_exception(exc)
    t = clock.now()

    # The servers we dialled are evidence; our own addresses never are.
    # Known only now: a redirect's IP literal is dialled after its hop.
    keep = set(backend.addresses) - dialer.local_addresses
    body = bytes(final.body)
    # A response whose body was read to its end (or to body_cap).
    received = final.status is not None and failure is None
    return HTTPObservation(
        url=url,
        method=method,
        address=backend.addresses[0] if backend.addresses else address,
        t0=t0,
        t=t,
        failure=failure,
        status=final.status,
        headers=tuple((name, scrub(value, keep)) for name, value in final.headers),
        body_length=len(body) if received else None,
        body_sha256=hashlib.sha256(body).hexdigest() if received else None,
        body_truncated=final.truncated,
        title=page_title(body, final.charset, keep) if received else None,
        body_contains_found=(
            find_in_body(body, body_contains, final.truncated) if received else None
        ),
        transfer=final.transfer if received else None,
        redirects=tuple(
            HTTPHop(scrub(hop.url, keep), hop.status, scrub(hop.location or "", keep))
            for hop in hops
        ),
    )


async def _follow(
    client: httpx.AsyncClient,
    request: httpx.Request,
    max_redirects: int,
    reader: _BodyReader,
    hops: list[HTTPHop],
    final: _Final,
) -> None:
    """Send ``request`` and its redirects, appending hops; fill ``final``."""
    for _ in range(max_redirects + 1):
        response = await client.send(request, stream=True)
        try:
            if response.next_request is None:
                await reader.read(response, final)
                return
            hops.append(
                HTTPHop(str(request.url), response.status_code, response.headers["location"])
            )
            # httpx built the next request (RFC 9110 section 15.4: 303
            # turns into GET, credentials dropped across origins).
            request = response.next_request
        finally:
            await response.aclose()
    raise CheckError(Failure.HTTP_TOO_MANY_REDIRECTS, f"more than {max_redirects} redirects")


@dataclass(frozen=True, slots=True)
class _BodyReader:
    """Reads the final body up to ``body_cap`` bytes; with ``download_time``
    it also times it and stops after that many seconds."""

    clock: Clock
    body_cap: int
    download_time: float | None

    async def read(self, response: httpx.Response, final: _Final) -> None:
        final.status = response.status_code
        final.headers = tuple(response.headers.multi_items())
        final.charset = content_charset(final.headers)
        if self.download_time is None:
            async for _ in self._fill(response, final):
                pass
            return
        _abort_on_close(response)
        start = last = self.clock.now()
        cut = False
        try:
            async with asyncio.timeout(self.download_time):
                async for _ in self._fill(response, final):
                    last = self.clock.now()
        except TimeoutError:
            # The path, not the body, ended the read: the rate is over the
            # whole budget, and the body was not read to its end.
            cut = final.truncated = True
            last = start + self.download_time
        final.transfer = Transfer(len(final.body), round(last - start, 6), cut)

    async def _fill(self, response: httpx.Response, final: _Final) -> AsyncIterator[None]:
        """Append the body's chunks up to the cap, pausing after each."""
        async for chunk in response.aiter_raw():
            room = self.body_cap - len(final.body)
            final.body += chunk[:room]
            final.truncated = len(chunk) > room
            yield
            if final.truncated:
                return


def _abort_on_close(response: httpx.Response) -> None:
    """Make closing the connection send a RST rather than a FIN.

    A download cut short leaves the server pushing the rest of the body
    into a throttled path; after a FIN it keeps retransmitting into the
    queue for a long while, stalling every later connection to that
    address (a RST ends it at once). Set before reading, since httpcore
    closes the connection itself when the read is cancelled. SO_LINGER
    with a zero timeout is the abortive close of RFC 9293 section 3.10.7.1.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
