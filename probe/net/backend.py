"""httpx over the dialer: an httpcore network backend and a transport.

Left alone, httpx resolves host names with getaddrinfo (unmeasured, and
through the very resolver a censor may poison) and opens its own sockets
(outside PROBE_ALLOW_NETWORKS). httpcore lets a connection pool take a
custom ``AsyncNetworkBackend``; ours maps each host name to an address
that the caller chose (the one the DNS check measured, or a fresh
measured lookup for a redirect's host) and opens the socket with the
dialer. httpx's own ``AsyncHTTPTransport`` does not accept a backend, so
:class:`PoolTransport` is the small adapter from httpx requests to the
httpcore pool (the same steps as httpx's transport, minus proxies).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import httpcore
import httpx

from probe.net.dialer import Dialer, close_stream, send
from probe.wire.http1 import MAX_HEAD
from probe.wire.url import is_ip_literal

Resolve = Callable[[str], Awaitable[str]]

# Replay reads captured responses with h11 too (probe.wire.http1), with this
# same limit, so a head refused live is refused in replay. httpcore takes it
# from a class attribute when it makes each connection, not from the pool.
httpcore.AsyncHTTP11Connection.MAX_INCOMPLETE_EVENT_SIZE = MAX_HEAD


class DialerStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await asyncio.wait_for(self._reader.read(max_bytes), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await asyncio.wait_for(send(self._writer, buffer), timeout)

    async def aclose(self) -> None:
        await close_stream(self._writer)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        await self._writer.start_tls(
            ssl_context, server_hostname=server_hostname, ssl_handshake_timeout=timeout
        )
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        # httpcore asks "is_readable" before reusing an idle connection:
        # readable while idle means the server closed it.
        if info == "is_readable":
            return self._reader.at_eof()
        return self._writer.get_extra_info(info)


class DialerBackend(httpcore.AsyncNetworkBackend):
    """Connects through the dialer; ``resolve`` maps host names to addresses.

    ``resolve`` may be None when every URL has an IP literal host.
    """

    def __init__(self, dialer: Dialer, resolve: Resolve | None) -> None:
        self._dialer = dialer
        self._resolve = resolve
        self.addresses: list[str] = []  # every address dialled, in order

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self._address(host)
        self.addresses.append(address)
        reader, writer = await self._dialer.open_tcp(address, port, timeout)
        return DialerStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _address(self, host: str) -> str:
        if is_ip_literal(host):
            return str(ipaddress.ip_address(host))  # one spelling per address
        if self._resolve is None:
            raise ValueError(f"no resolver for host {host!r}")
        return await self._resolve(host)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: typing.AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()


class PoolTransport(httpx.AsyncBaseTransport):
    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        response = await self._pool.handle_async_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def http_client(
    backend: DialerBackend, ssl_context: ssl.SSLContext, timeout: float
) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through ``backend``.

    HTTP/1.1 only and no environment (proxies, netrc, SSL_CERT_FILE):
    the probe measures the path it was asked to, not one configured
    around it.
    """
    pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context, network_backend=backend, http1=True, http2=False
    )
    return httpx.AsyncClient(
        transport=PoolTransport(pool),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
